"""Module bundles: one archive, the right .ko for every kernel of a fleet.

Build side (``write_bundle``): gathers the compiled modules of some probes
for some kernels from the artifact store, with a manifest that identifies
each kernel by release AND build string (``uname -v``). A rebuilt kernel
keeps its release but not its build string, so a stale module is never
picked. The archive is reproducible: sorted members, zero times and owners,
gzip without a timestamp.

Host side (``select_module``/``main``): needs only Python's standard
library. It reads the manifest, picks the module for the running kernel,
checks its sha256 and runs it with stapbuild.runner.

    python3 -m stapbuild.bundle run iotop.stpbundle [--probe P] [--workload CMD] [--duration S]
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

BUNDLE_SCHEMA = "stapbuild.bundle/1"
MANIFEST = "manifest.json"


class BundleError(Exception):
    """A bundle that cannot be used here; the message says why."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------ writing
def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def pack(manifest: dict[str, Any], files: dict[str, bytes]) -> bytes:
    """The archive bytes: deterministic for the same manifest and files."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        _tar_member(tar, MANIFEST,
                    (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
        for name in sorted(files):
            _tar_member(tar, name, files[name])
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def sign_module(data: bytes, build_dir: Path, key: Path, cert: Path) -> bytes:
    """Append a module signature with the kernel's own scripts/sign-file, as
    `make modules_sign` would. The key and certificate are the user's."""
    import subprocess
    sign_file = build_dir / "scripts" / "sign-file"
    if not sign_file.exists():
        raise BundleError(f"{sign_file}: missing; cannot sign modules for this kernel")
    with tempfile.TemporaryDirectory(prefix="stapbuild-sign-") as tmp:
        ko = Path(tmp) / "m.ko"
        ko.write_bytes(data)
        r = subprocess.run([str(sign_file), "sha256", str(key), str(cert), str(ko)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BundleError(f"sign-file failed: {(r.stderr or r.stdout).strip()}")
        return ko.read_bytes()


def cert_fingerprint(cert: Path) -> str:
    """sha256 of the certificate's DER form (what `openssl x509 -fingerprint` shows)."""
    import base64
    import re as _re
    text = cert.read_text()
    m = _re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, _re.S)
    der = base64.b64decode("".join(m.group(1).split())) if m else cert.read_bytes()
    return _sha256(der)


def write_bundle(probes: list[str], releases: list[str], out: Path,
                 sign: Optional[tuple[Path, Path]] = None) -> Path:
    """Bundle what the store holds for probes × releases (build them first).
    sign=(key, cert) signs every module with kbuild's sign-file."""
    from stapbuild import kernels, store
    from stapbuild.kbuild import modinfo_vermagic
    from stapbuild.version import stapbuild_version

    entries: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    sources: dict[str, str] = {}
    for probe in probes:
        for release in releases:
            refs = {kind: json.loads(store.ref_path(probe, release, kind).read_text())
                    for kind in ("parse", "elaborate", "translate", "compile")}
            ko = store.artifacts_root() / refs["compile"]["artifact"]
            data = ko.read_bytes()
            module = refs["compile"]["module"]
            k = kernels.provision(release, {"headers", "image"})
            signature = None
            if sign is not None:
                data = sign_module(data, k.build_dir, *sign)
                signature = {"hash": "sha256", "cert_sha256": cert_fingerprint(sign[1])}
            member = f"modules/{probe}/{release}/{module}.ko"
            files[member] = data
            parse_inputs = refs["parse"].get("inputs", {})
            script_digest = next((d for name, d in parse_inputs.items()
                                  if name.endswith(".stp") and not name.startswith("tapsets/")),
                                 None)
            sources[probe] = script_digest or ""
            entries.append({
                "probe": probe, "release": release,
                "build_string": kernels.image_build_string(k),
                "vermagic": modinfo_vermagic(ko), "module": module,
                "path": member, "sha256": _sha256(data), "signature": signature,
                "passes": {kind: refs[kind]["key"] for kind in refs},
            })
    manifest = {"schema": BUNDLE_SCHEMA, "stapbuild_version": stapbuild_version(),
                "probes": [{"name": p, "source_sha256": sources[p]} for p in probes],
                "modules": entries}
    data = pack(manifest, files)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return out


# ------------------------------------------------------------------ reading
@dataclass
class Chosen:
    entry: dict[str, Any]
    data: bytes


def read_manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    try:
        member = tar.extractfile(MANIFEST)
    except KeyError:
        member = None
    if member is None:
        raise BundleError("not a stapbuild bundle: no manifest.json")
    manifest = json.loads(member.read())
    if manifest.get("schema") != BUNDLE_SCHEMA:
        raise BundleError(f"unsupported bundle schema {manifest.get('schema')!r}")
    return manifest


def select_module(bundle: Path, release: str, build_string: str,
                  probe: Optional[str] = None) -> Chosen:
    """The module for this kernel, its bytes verified against the manifest."""
    try:
        tar = tarfile.open(bundle, "r:gz")
    except (OSError, tarfile.TarError) as e:
        raise BundleError(f"cannot read bundle {bundle}: {e}")
    with tar:
        manifest = read_manifest(tar)
        names = [p["name"] for p in manifest["probes"]]
        if probe is None:
            if len(names) != 1:
                raise BundleError(f"the bundle holds several probes ({', '.join(names)}): "
                                  "choose one with --probe")
            probe = names[0]
        elif probe not in names:
            raise BundleError(f"no probe '{probe}' in the bundle (it has {', '.join(names)})")
        mods = [m for m in manifest["modules"] if m["probe"] == probe]
        same_release = [m for m in mods if m["release"] == release]
        match = [m for m in same_release if m["build_string"] == build_string]
        if not match:
            have = "; ".join(f"{m['release']} {m['build_string']}" for m in mods)
            if same_release:
                raise BundleError(
                    f"no module for this kernel build: {release} is in the bundle but was "
                    f"built as '{same_release[0]['build_string']}', and this kernel is "
                    f"'{build_string}' (a rebuilt kernel needs a rebuilt module). "
                    f"Bundle kernels: {have}")
            raise BundleError(f"no module for kernel {release} ({build_string}). "
                              f"Bundle kernels: {have}")
        entry = match[0]
        member = tar.extractfile(entry["path"])
        if member is None:
            raise BundleError(f"bundle is missing {entry['path']}")
        data = member.read()
    if _sha256(data) != entry["sha256"]:
        raise BundleError(f"{entry['path']}: sha256 mismatch (the bundle was altered); "
                          "refusing to load it")
    return Chosen(entry, data)


def run_bundle(bundle: Path, probe: Optional[str] = None, workload: Optional[str] = None,
               duration: Optional[float] = None) -> int:
    """Pick, verify and run the module for the running kernel."""
    from stapbuild import runner
    u = os.uname()
    try:
        chosen = select_module(bundle, u.release, u.version, probe)
    except BundleError as e:
        sys.stderr.write(f"ERROR: {e}\n")
        return 1
    e = chosen.entry
    sys.stderr.write(f"bundle: running {e['module']} ({e['probe']}) built for "
                     f"{e['release']} {e['build_string']}\n")
    sys.stderr.flush()
    with tempfile.TemporaryDirectory(prefix="stapbuild-bundle-") as tmp:
        ko = Path(tmp) / f"{chosen.entry['module']}.ko"
        ko.write_bytes(chosen.data)
        return runner.run(ko, workload=workload, duration=duration)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m stapbuild.bundle")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the bundle's module for this kernel")
    r.add_argument("bundle", type=Path)
    r.add_argument("--probe")
    r.add_argument("--workload")
    r.add_argument("--duration", type=float)
    s = sub.add_parser("show", help="print the manifest")
    s.add_argument("bundle", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "show":
        try:
            with tarfile.open(args.bundle, "r:gz") as tar:
                print(json.dumps(read_manifest(tar), indent=1, sort_keys=True))
        except (OSError, tarfile.TarError, BundleError) as e:
            sys.stderr.write(f"ERROR: {e}\n")
            return 1
        return 0
    return run_bundle(args.bundle, args.probe, args.workload, args.duration)


if __name__ == "__main__":
    sys.exit(main())
