"""The content-addressed artifact store and the per-(probe, kernel) refs.

Every pass output is stored once under ``artifacts/store/<pass>/<key>.<ext>``
where *key* is the sha256 of everything the pass read (its inputs' digests,
schema versions, the compiler's own source). A pass whose key is already
stored is a cache hit and does no work, whoever asks: a doit task, the
``stapbuild`` command, or another probe that happens to share the result.

doit tracks small, stable *ref* files, ``artifacts/refs/<probe>/<kernel>/
<pass>.json``, that name the artifact a (probe, kernel) currently uses. A
ref is rewritten only when its content changes, so doit's md5 check gives
early cutoff: an input edit that leaves an artifact identical stops there.

All writes are atomic (temporary file + rename): a killed build never
leaves a half-written artifact that a later run would trust.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

REF_SCHEMA = "stapbuild.ref/1"


def project_root() -> Path:
    """The checkout: where probes/, tapsets/, runtime_c/ and codegen/ live."""
    return Path(__file__).resolve().parent.parent


def artifacts_root() -> Path:
    env = os.environ.get("STAPBUILD_ARTIFACTS")
    return Path(env) if env else project_root() / "artifacts"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_FILE_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """Digest of a file, memoised per (path, mtime, size, inode) in-process."""
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size, st.st_ino)
    digest = _FILE_DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digest = _FILE_DIGESTS[key] = h.hexdigest()
    return digest


def key_of(parts: dict[str, Any]) -> str:
    """The content key of a pass: a hash of its canonical JSON inputs."""
    return sha256_bytes(json.dumps(parts, sort_keys=True).encode())


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_if_changed(path: Path, data: bytes) -> bool:
    """Keep the old file (and its mtime) when the bytes are the same."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    atomic_write(path, data)
    return True


@dataclass(frozen=True)
class Artifact:
    kind: str           # parse, elaborate, translate, compile
    key: str
    path: Path

    def read_json(self) -> Any:
        return json.loads(self.path.read_text())


def artifact_path(kind: str, key: str, ext: str) -> Path:
    return artifacts_root() / "store" / kind / key[:2] / f"{key}.{ext}"


def digest_path(path: Path) -> Path:
    """The sidecar that records an artifact's content digest."""
    return path.with_name(path.name + ".sha256")


def seal(path: Path) -> None:
    """Record the content digest of an artifact that was just written."""
    atomic_write(digest_path(path), (sha256_file(path) + "\n").encode())


def verify(path: Path) -> bool:
    """Is the artifact there and intact? The store may be a directory that
    several machines share, so a reader checks what it is about to trust. A
    corrupt artifact is removed, so that its pass simply runs again."""
    if not path.exists():
        return False
    try:
        expected = digest_path(path).read_text().strip()
    except OSError:
        seal(path)          # written before digests were recorded
        return True
    if sha256_file(path) == expected:
        return True
    for p in (path, digest_path(path)):
        try:
            p.unlink()
        except FileNotFoundError:
            pass
    return False


def lookup(kind: str, key: str, ext: str) -> Optional[Artifact]:
    path = artifact_path(kind, key, ext)
    return Artifact(kind, key, path) if verify(path) else None


def put_bytes(kind: str, key: str, ext: str, data: bytes) -> Artifact:
    path = artifact_path(kind, key, ext)
    if not verify(path):
        atomic_write(path, data)
        seal(path)
    return Artifact(kind, key, path)


def put_json(kind: str, key: str, doc: Any) -> Artifact:
    return put_bytes(kind, key, "json", _json_bytes(doc))


def _json_bytes(doc: Any) -> bytes:
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


def put_json_by_content(kind: str, doc: Any) -> Artifact:
    """Store a JSON artifact under the hash of its own bytes: equal outputs
    of different inputs share one artifact (and one key downstream)."""
    data = _json_bytes(doc)
    return put_bytes(kind, sha256_bytes(data), "json", data)


def memo_path(kind: str, in_key: str) -> Path:
    return artifacts_root() / "store" / f"{kind}-memo" / in_key[:2] / in_key


def memo_get(kind: str, in_key: str) -> Optional[str]:
    """The output key a pass produced for this input key, if recorded."""
    try:
        out = memo_path(kind, in_key).read_text().strip()
    except OSError:
        return None
    return out if len(out) == 64 else None


def memo_put(kind: str, in_key: str, out_key: str) -> None:
    atomic_write(memo_path(kind, in_key), (out_key + "\n").encode())


def ref_path(probe: str, kernel: str, kind: str) -> Path:
    return artifacts_root() / "refs" / probe / kernel / f"{kind}.json"


def inputs_path(ref: Path) -> Path:
    """Where a ref's input digests live: next to it, but not in it, so that
    downstream tasks (which depend on the ref) do not rerun when only the
    inputs changed and the artifact did not."""
    return ref.with_name(ref.stem + ".inputs.json")


def write_ref(probe: str, kernel: str, art: Artifact, inputs: dict[str, str],
              extra: Optional[dict] = None, check: Optional[dict] = None) -> Path:
    """Point (probe, kernel, pass) at an artifact. *inputs* (file -> digest)
    and *check* go to the ref's inputs file, read by ``ref_inputs_unchanged``
    and up-to-date checks; *extra* goes into the ref itself."""
    doc = {"schema": REF_SCHEMA, "pass": art.kind, "probe": probe, "kernel": kernel,
           "key": art.key, "artifact": str(art.path.relative_to(artifacts_root()))}
    if extra:
        doc.update(extra)
    path = ref_path(probe, kernel, art.kind)
    # The ref first, then its inputs, which name the key they describe: a
    # build killed in between leaves a mismatch, which only causes a rerun.
    write_if_changed(path, _json_bytes(doc))
    if inputs or check:
        write_if_changed(inputs_path(path),
                         _json_bytes({"key": art.key, "inputs": inputs, **(check or {})}))
    return path


def read_inputs(ref: Path) -> dict:
    try:
        return json.loads(inputs_path(ref).read_text())
    except (OSError, ValueError):
        return {}


def read_ref(path: Path) -> Optional[Artifact]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    art = artifacts_root() / doc["artifact"]
    return Artifact(doc["pass"], doc["key"], art) if verify(art) else None


def ref_intact(path: Path) -> bool:
    """doit uptodate check: the artifact a ref names is present and whole.
    A corrupt or deleted artifact makes its task (and so its pass) run again."""
    return read_ref(Path(path)) is not None


def ref_inputs_unchanged(path: Path) -> bool:
    """True when the ref exists, its artifact is there and whole (its
    digest checks out: a corrupt parse tree must make the parse rerun, as a
    corrupt artifact of any other pass does), and every input file it
    recorded still has the same digest."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not verify(artifacts_root() / doc["artifact"]):
        return False
    side = read_inputs(path)
    recorded = side.get("inputs")
    if side.get("key") != doc.get("key") or not recorded:
        return False
    for name, digest in recorded.items():
        p = Path(name)
        if not p.is_absolute():
            p = project_root() / p
        try:
            if sha256_file(p) != digest:
                return False
        except OSError:
            return False
    return True
