"""Kernel provisioning: find, download and unpack one Debian kernel per release.

Everything lives in a per-user cache (``$STAPBUILD_CACHE`` or
``~/.cache/stapbuild``), never in system directories, so that several kernels
can coexist on a build host that runs none of them:

    <cache>/releases.json                 apt's list of releases, 1 h TTL
    <cache>/downloads/<K>/*.deb           apt-get download output (kept)
    <cache>/kernels/<K>/headers/          usr/src/linux-headers-K{,-common},
                                          usr/lib/linux-kbuild-*, lib/modules/K/build
    <cache>/kernels/<K>/image/            boot/vmlinuz-K, lib/modules/K/ (depmod'ed)
    <cache>/kernels/<K>/dbg/              usr/lib/debug/boot/vmlinux-K
    <cache>/kernels/<K>/dbg-modules/      NAME.ko, one module's DWARF, on demand

Each part is unpacked into a temporary sibling directory and renamed into
place as a whole, so a part directory either is complete or does not exist
(an interrupted run leaves only a ``.tmp-*`` directory, removed next time).
The image part is its own root on purpose: virtme-ng finds the modules of
``--run <root>/boot/vmlinuz-K`` by walking up to the first ``lib/modules``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Iterator

from stapbuild import progress
from pathlib import Path

ALL_PARTS = frozenset({"headers", "image", "dbg"})
RELEASES_TTL = 3600.0  # seconds; apt lists change at most daily
_COMPLETE = ".stapbuild-complete"

# Debian amd64 releases of the amd64, cloud-amd64 and rt-amd64 flavours:
# "6.1.0-56-amd64", "6.12.117+deb12-amd64", "6.12.117+deb12-rt-amd64".
# The meta packages ("6.12-amd64") do not match.
_RELEASE_RE = re.compile(r"^\d+\.\d+(?:\.\d+)?(?:-\d+|\+deb\d+)-(?:(?:cloud|rt)-)?amd64$")
# A series, optionally with a flavour: "6.1", "6.12", "6.12-rt", "6.1-cloud".
_SERIES_RE = re.compile(r"^(\d+\.\d+)(?:-(cloud|rt))?$")
FLAVOURS = ("amd64", "cloud-amd64", "rt-amd64")


class KernelNotFound(Exception):
    """A kernel spec that names no available release."""

    def __init__(self, spec: str, available: list[str]):
        self.spec = spec
        self.suggestions = nearest_releases(spec, available)
        super().__init__(spec)

    def __str__(self) -> str:
        if self.suggestions:
            near = ", ".join(self.suggestions)
            return f"kernel {self.spec!r} is not available; nearest: {near}"
        return f"kernel {self.spec!r} is not available (no releases known; is apt configured?)"


class ProvisionError(Exception):
    """apt/dpkg/depmod failed; the message is meant for the user as is."""


# --------------------------------------------------------------------------
# release names and versions (pure logic, unit-tested with fake lists)
# --------------------------------------------------------------------------

def flavour_of(release: str) -> str:
    """'6.12.117+deb12-rt-amd64' -> 'rt-amd64'; plain releases -> 'amd64'."""
    for flavour in ("cloud-amd64", "rt-amd64"):
        if release.endswith("-" + flavour):
            return flavour
    return "amd64"


def version_key(release: str) -> tuple[int, ...]:
    """Numeric sort key: '6.1.0-56-amd64' -> (6, 1, 0, 56); '6.12.117+deb12-amd64'
    -> (6, 12, 117, 12). The +debN suffix is constant within a series, so it
    never reorders releases of one series. The flavour is not part of it."""
    base = release.removesuffix("-" + flavour_of(release))
    return tuple(int(n) for n in re.findall(r"\d+", base))


def series_of(release: str) -> str:
    """'6.1.0-56-amd64' -> '6.1'; '6.12.117+deb12-rt-amd64' -> '6.12-rt'."""
    major, minor = version_key(release)[:2]
    flavour = flavour_of(release)
    return f"{major}.{minor}" + ("" if flavour == "amd64" else "-" + flavour[:-len("-amd64")])


def is_release(name: str) -> bool:
    return bool(_RELEASE_RE.match(name))


def sort_releases(releases: list[str] | set[str]) -> list[str]:
    return sorted(set(releases), key=lambda r: (version_key(r), flavour_of(r)))


def nearest_releases(spec: str, available: list[str], limit: int = 6) -> list[str]:
    """Suggestions for an unknown spec: same series first (closest version
    first), then the newest release of every other series."""
    if not available:
        return []
    try:
        key = version_key(spec)
        series = series_of(spec) if len(key) >= 2 else None
    except ValueError:
        key, series = (), None
    same = [r for r in available if series and series_of(r) == series]

    def distance(r: str) -> tuple[int, ...]:
        rk = version_key(r)
        # compare the components after major.minor; ties prefer newer
        diff = tuple(abs(a - b) for a, b in zip(rk[2:], key[2:]))
        return diff + (-rk[-1],)

    same.sort(key=distance)
    others: dict[str, str] = {}
    for r in sort_releases(available):
        if series_of(r) != series:
            others[series_of(r)] = r  # sorted ascending: last one wins = newest
    # Keep room for other series: "6.1.0-99" should still hint that 6.12 exists.
    newest_others = sorted(others.values(), key=version_key, reverse=True)
    picks = same[: max(limit - len(newest_others), limit // 2 + 1)]
    return (picks + newest_others)[:limit]


def pick_release(spec: str, available: list[str]) -> str:
    """Resolve a spec against a list (pure). Raises KernelNotFound."""
    spec = spec.strip()
    if _SERIES_RE.match(spec):
        matching = [r for r in available if series_of(r) == spec]
        if matching:
            return sort_releases(matching)[-1]
    elif spec in available:
        return spec
    raise KernelNotFound(spec, available)


# --------------------------------------------------------------------------
# the cache and apt's list of releases
# --------------------------------------------------------------------------

def cache_root() -> Path:
    env = os.environ.get("STAPBUILD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "stapbuild"


def kernel_root(release: str) -> Path:
    return cache_root() / "kernels" / release


def downloads_dir(release: str) -> Path:
    return cache_root() / "downloads" / release


def _query_apt_releases() -> list[str]:
    # `apt-cache pkgnames PREFIX` reads only the package name index: ~0.4 s,
    # versus ~0.7 s for a regex `apt-cache search`.
    try:
        out = subprocess.run(
            ["apt-cache", "pkgnames", "linux-headers-"],
            capture_output=True, text=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []  # no apt (or broken lists): offline mode, cache only
    names = (line.strip().removeprefix("linux-headers-") for line in out.splitlines())
    return sort_releases([n for n in names if is_release(n)])


def _apt_releases(max_age: float = RELEASES_TTL) -> list[str]:
    path = cache_root() / "releases.json"
    try:
        data = json.loads(path.read_text())
        if time.time() - float(data["time"]) < max_age:
            return list(data["releases"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    releases = _query_apt_releases()
    if releases:  # never cache an empty answer: apt may just be broken
        _atomic_write_text(path, json.dumps({"time": time.time(), "releases": releases}))
    return releases


def local_releases() -> list[str]:
    """Releases usable without apt: provisioned headers or a host build tree."""
    found = set()
    kdir = cache_root() / "kernels"
    if kdir.is_dir():
        for d in kdir.iterdir():
            if (d / "headers" / _COMPLETE).exists() or (d / LOCAL).exists():
                found.add(d.name)
    mods = Path("/lib/modules")
    if mods.is_dir():
        for d in mods.iterdir():
            if (d / "build").exists() and is_release(d.name):
                found.add(d.name)
    return sort_releases(found)


def available_releases(series: str | None = None) -> list[str]:
    """Available amd64 releases (apt lists + local ones), sorted by version."""
    releases = sort_releases(set(_apt_releases()) | set(local_releases()))
    if series is not None:
        releases = [r for r in releases if series_of(r) == series]
    return releases


def resolve_release(spec: str) -> str:
    """'6.1' -> newest 6.1 release; a full release is checked to exist; a
    directory is a local kernel (see register_local_kernel)."""
    if "/" in spec:
        return register_local_kernel(Path(spec))
    return pick_release(spec, available_releases())


# --------------------------------------------------------------------------
# local kernels: any distribution's build tree and debug info in a directory
# --------------------------------------------------------------------------
LOCAL = "local.json"


def _find_local_parts(d: Path) -> dict[str, str]:
    """The layout we accept, the way distributions ship a kernel:

        DIR/build/ (or DIR itself)   the kbuild tree: Makefile, .config, Module.symvers
        DIR/vmlinux                  DWARF vmlinux (also usr/lib/debug/... layouts)
        DIR/vmlinuz                  bootable image (optional: needed only to run)
        DIR/lib/modules/RELEASE/     modules tree (optional: for the guest)
    """
    build = d / "build" if (d / "build" / "Makefile").exists() else d
    if not (build / "Makefile").exists():
        raise ProvisionError(f"{d}: no kernel build tree (expected {d}/build/Makefile)")
    # UTS_RELEASE is what `uname -r` and vermagic say; Debian's headers put
    # the upstream version in include/config/kernel.release instead.
    uts = build / "include" / "generated" / "utsrelease.h"
    rel_file = build / "include" / "config" / "kernel.release"
    m = re.search(r'#define\s+UTS_RELEASE\s+"([^"]+)"', uts.read_text()) if uts.exists() else None
    if m:
        release = m.group(1)
    elif rel_file.exists():
        release = rel_file.read_text().strip()
    else:
        raise ProvisionError(f"{uts}: missing; is {build} a prepared kernel build tree?")
    parts = {"release": release, "build_dir": str(build.resolve())}
    candidates = [d / "vmlinux", d / f"vmlinux-{release}",
                  d / "usr" / "lib" / "debug" / "boot" / f"vmlinux-{release}",
                  d / "usr" / "lib" / "debug" / "lib" / "modules" / release / "vmlinux"]
    for c in candidates:
        if c.exists():
            parts["vmlinux"] = str(c.resolve())
            break
    for c in (d / "vmlinuz", d / f"vmlinuz-{release}", d / "boot" / f"vmlinuz-{release}",
              build / "arch" / "x86" / "boot" / "bzImage"):
        if c.exists():
            parts["vmlinuz"] = str(c.resolve())
            break
    mods = d / "lib" / "modules" / release
    if mods.is_dir():
        parts["modules_dir"] = str(mods.resolve())
    return parts


def register_local_kernel(d: Path) -> str:
    """Make a directory usable as kernels=DIR; returns its release.

    Nothing is copied: the cache records where the parts are."""
    d = d.expanduser().resolve()
    if not d.is_dir():
        raise KernelNotFound(str(d), available_releases())
    parts = _find_local_parts(d)
    release = parts["release"]
    root = kernel_root(release)
    root.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"dir": str(d), **parts}, indent=1, sort_keys=True) + "\n"
    try:
        same = (root / LOCAL).read_text() == text
    except OSError:
        same = False
    if not same:
        _atomic_write_text(root / LOCAL, text)
    return release


def _local(release: str) -> dict | None:
    try:
        return json.loads((kernel_root(release) / LOCAL).read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------
# the Kernel record
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Kernel:
    release: str
    root: Path                 # <cache>/kernels/<K>
    build_dir: Path            # what `make -C` gets
    vmlinux: Path | None       # DWARF vmlinux (dbg part)
    vmlinuz: Path | None       # bootable image (image part)
    modules_dir: Path | None   # lib/modules/<K> of the image part

    @property
    def series(self) -> str:
        return series_of(self.release)

    @property
    def image_root(self) -> Path:
        """The directory virtme-ng treats as the image's root filesystem."""
        return self.root / "image"

    def has(self, part: str) -> bool:
        if part == "headers":
            return (self.build_dir / "Makefile").exists()
        if part == "image":
            return self.vmlinuz is not None and self.vmlinuz.exists()
        if part == "dbg":
            return self.vmlinux is not None and self.vmlinux.exists()
        raise ValueError(f"unknown part {part!r}")


def _host_build_dir(release: str) -> Path | None:
    build = Path("/lib/modules") / release / "build"
    return build if (build / "Makefile").exists() else None


def kernel_info(release: str) -> Kernel:
    """The Kernel for whatever is provisioned now (no downloads)."""
    root = kernel_root(release)
    local = _local(release)
    if local is not None:
        opt = (lambda key: Path(local[key]) if key in local else None)
        return Kernel(release=release, root=root, build_dir=Path(local["build_dir"]),
                      vmlinux=opt("vmlinux"), vmlinuz=opt("vmlinuz"),
                      modules_dir=opt("modules_dir"))
    build_dir = _host_build_dir(release) or root / "headers" / "usr" / "src" / f"linux-headers-{release}"
    image_done = (root / "image" / _COMPLETE).exists()
    dbg_done = (root / "dbg" / _COMPLETE).exists()
    return Kernel(
        release=release,
        root=root,
        build_dir=build_dir,
        vmlinux=root / "dbg" / "usr" / "lib" / "debug" / "boot" / f"vmlinux-{release}" if dbg_done else None,
        vmlinuz=root / "image" / "boot" / f"vmlinuz-{release}" if image_done else None,
        modules_dir=root / "image" / "lib" / "modules" / release if image_done else None,
    )


# --------------------------------------------------------------------------
# provisioning
# --------------------------------------------------------------------------

def provision(release: str, parts: set[str] | frozenset[str] = ALL_PARTS) -> Kernel:
    """Make the requested parts of one release available; cheap if already done."""
    unknown = set(parts) - ALL_PARTS
    if unknown:
        raise ValueError(f"unknown kernel parts: {sorted(unknown)}")
    root = kernel_root(release)
    if _local(release) is not None:
        k = kernel_info(release)
        missing = [p for p in sorted(parts) if not k.has(p)]
        if missing:
            raise ProvisionError(f"local kernel {release} ({_local(release)['dir']}) has no "
                                 f"{', '.join(missing)} part; see the layout in the README")
        return k
    if not all((root / p / _COMPLETE).exists() for p in parts):
        # Unknown names fail here with suggestions, not deep inside apt-get.
        release = resolve_release(release)
        root = kernel_root(release)
    root.mkdir(parents=True, exist_ok=True)
    for part in sorted(parts):  # dbg, headers, image: order does not matter
        if part == "headers" and _host_build_dir(release):
            continue  # the host's own headers are as good and already there
        if (root / part / _COMPLETE).exists():
            continue
        # Several processes may provision the same kernel at once (two doit
        # runs, Dask workers sharing one cache): one downloads and extracts
        # while the others wait on the lock, then find the part complete.
        with _part_lock(root, part):
            if (root / part / _COMPLETE).exists():
                continue
            progress.event("provision", kernel=release, part=part, state="start")
            started = time.monotonic()
            _PROVISIONERS[part](release, root / part)
            progress.event("provision", kernel=release, part=part, state="done",
                           seconds=round(time.monotonic() - started, 1))
    return kernel_info(release)


@contextlib.contextmanager
def _part_lock(root: Path, part: str) -> Iterator[None]:
    """An exclusive flock on ROOT/.PART.lock for as long as the block runs
    (released by the kernel if the process dies)."""
    fd = os.open(root / f".{part}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _run(cmd: list[str] | str, what: str, **kw) -> subprocess.CompletedProcess:
    """Run a tool; turn any failure into a one-paragraph ProvisionError."""
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    except OSError as e:
        raise ProvisionError(f"{what}: cannot run {cmd if isinstance(cmd, str) else cmd[0]}: {e}") from None
    if res.returncode != 0:
        tail = "\n  ".join((res.stderr or res.stdout).strip().splitlines()[-8:])
        raise ProvisionError(f"{what} failed (exit {res.returncode}):\n  {tail}")
    return res


def _apt_expectation(package: str) -> tuple[str, int, str] | None:
    """(file name, size, sha256) apt would download for `package`, from its
    lists (no download); None when apt does not know the package."""
    try:
        out = subprocess.run(["apt-get", "download", "-q", "--print-uris", package],
                             capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        m = re.match(r"'[^']+' (\S+\.deb) (\d+) SHA256:([0-9a-f]{64})", line.strip())
        if m:
            return m.group(1), int(m.group(2)), m.group(3)
    return None


def _ar_complete(path: Path) -> bool:
    """Does this .deb (an ar archive) hold every member its headers
    announce? A cut-off download fails this without decompressing."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            if f.read(8) != b"!<arch>\n":
                return False
            pos, members = 8, 0
            while pos < size:
                f.seek(pos)
                hdr = f.read(60)
                if len(hdr) < 60 or hdr[58:60] != b"`\n":
                    return False
                end = pos + 60 + int(hdr[48:58].decode().strip())
                if end > size:
                    return False
                pos = end + end % 2          # members are 2-byte aligned
                members += 1
            return members >= 3      # debian-binary, control.tar, data.tar
    except (OSError, ValueError):
        return False


def _deb_ok(path: Path, expect: tuple[str, int, str] | None) -> bool:
    """A downloaded .deb is whole: apt's size and sha256 when apt knows the
    package (the same check apt makes), else a complete ar archive."""
    if not _ar_complete(path):
        return False
    if expect is None or expect[0] != path.name:
        return True
    return path.stat().st_size == expect[1] and _sha256_path(path) == expect[2]


def _sha256_path(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _deb(release: str, package: str) -> Path:
    """The .deb of `package` in the release's download dir, fetched if missing.

    A .deb already there is checked first (a cut-off download, a truncated
    copy of the cache): a bad one is removed and downloaded again."""
    ddir = downloads_dir(release)
    found = sorted(ddir.glob(f"{package}_*.deb"))
    expect = _apt_expectation(package)
    if found:
        if _deb_ok(found[-1], expect):
            return found[-1]
        progress.event("provision", kernel=release, package=package, state="redownload",
                       reason="incomplete or corrupt .deb")
        for bad in found:
            bad.unlink(missing_ok=True)
    ddir.mkdir(parents=True, exist_ok=True)
    for stale in ddir.glob(".partial-*"):   # left by a killed run
        try:
            if time.time() - stale.stat().st_mtime > 3600:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass
    # Download into a private subdir and rename: a killed apt-get never
    # leaves a truncated .deb where the next run would trust it.
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=ddir))
    try:
        _run(["apt-get", "download", "-q", package], f"apt-get download {package}", cwd=tmp)
        debs = list(tmp.glob(f"{package}_*.deb"))
        if not debs:
            raise ProvisionError(f"apt-get download {package} produced no .deb")
        if not _deb_ok(debs[0], expect):
            raise ProvisionError(f"apt-get download {package}: {debs[0].name} is incomplete "
                                 "or does not match apt's sha256")
        final = ddir / debs[0].name
        os.replace(debs[0], final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _depends(deb: Path) -> list[str]:
    field = _run(["dpkg-deb", "-f", str(deb), "Depends"], f"dpkg-deb -f {deb.name}").stdout
    return [dep.split()[0] for dep in field.replace("|", ",").split(",") if dep.strip()]


class _PartDir:
    """Temp dir next to the final part dir; renamed into place on success."""

    def __init__(self, final: Path):
        self.final = final

    def __enter__(self) -> Path:
        parent = self.final.parent
        for stale in parent.glob(f".tmp-{self.final.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)  # a previous run was killed
        self.tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{self.final.name}-", dir=parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            (self.tmp / _COMPLETE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
            if self.final.exists():  # incomplete leftover (no marker): replace it
                shutil.rmtree(self.final)
            os.rename(self.tmp, self.final)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _provision_headers(release: str, final: Path) -> None:
    main = _deb(release, f"linux-headers-{release}")
    debs = [main] + [
        _deb(release, dep) for dep in _depends(main)
        if dep.startswith(("linux-headers-", "linux-kbuild-"))
    ]
    with _PartDir(final) as tmp:
        for deb in debs:
            _run(["dpkg", "-x", str(deb), str(tmp)], f"dpkg -x {deb.name}")
        _relocate_headers(release, tmp, final)


def _relocate_headers(release: str, tmp: Path, final: Path) -> None:
    """Point the packages' absolute paths into our root instead of /usr/src."""
    src = tmp / "usr" / "src" / f"linux-headers-{release}"
    makefile = src / "Makefile"
    if not makefile.exists():
        raise ProvisionError(f"linux-headers-{release} has no Makefile at {makefile}")
    # The arch package's Makefile is a one-liner that includes the -common
    # Makefile by absolute path. Paths are written for the *final* location,
    # since the directory is renamed after this.
    text = re.sub(r"^include /usr/src/", f"include {final}/usr/src/", makefile.read_text(), flags=re.M)
    makefile.write_text(text)
    # lib/modules/K/{build,source} are absolute symlinks; make them relative.
    mods = tmp / "lib" / "modules" / release
    for name in ("build", "source"):
        link = mods / name
        if link.is_symlink():
            target = os.readlink(link)
            if target.startswith("/"):
                link.unlink()
                link.symlink_to(os.path.relpath(tmp / target.lstrip("/"), mods))
    # scripts/tools are relative (../../lib/linux-kbuild-*) already: check it.
    if not (src / "scripts" / "Makefile.build").exists():
        raise ProvisionError(f"kbuild scripts missing under {src}/scripts (linux-kbuild package?)")


def _provision_image(release: str, final: Path) -> None:
    deb = _deb(release, f"linux-image-{release}-unsigned")
    with _PartDir(final) as tmp:
        _run(["dpkg", "-x", str(deb), str(tmp)], f"dpkg -x {deb.name}")
        if not (tmp / "boot" / f"vmlinuz-{release}").exists():
            raise ProvisionError(f"{deb.name} has no boot/vmlinuz-{release}")
        # The .deb ships no modules.dep (postinst runs depmod); the guest's
        # modprobe needs it.
        _run(["depmod", "-b", str(tmp), release], f"depmod {release}")


def _provision_dbg(release: str, final: Path) -> None:
    deb = _deb(release, f"linux-image-{release}-dbg")
    member = f"./usr/lib/debug/boot/vmlinux-{release}"
    with _PartDir(final) as tmp:
        # Only vmlinux: the package is ~1 GB, mostly per-module debug files
        # that we do not need yet. Still ~35 s: the tar stream is read whole.
        # The member name must match exactly, including the leading './'.
        cmd = (f"set -o pipefail; dpkg-deb --fsys-tarfile {_sh(deb)} | "
               f"tar -x -C {_sh(tmp)} {_sh(member)}")
        _run(["bash", "-c", cmd], f"extracting vmlinux from {deb.name}")
        if not (tmp / member).exists():
            raise ProvisionError(f"{deb.name} has no {member}")


class NoSuchModule(ProvisionError):
    """The release ships no module of that name (modules.dep of its image)."""


def _module_names(modules_dir: Path) -> dict[str, str]:
    """Module name -> its path under lib/modules/K, from the image part's
    modules.dep ("kernel/drivers/block/loop.ko.xz: deps").  Names are
    normalised as modprobe does ('-' and '_' are the same)."""
    out: dict[str, str] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        rel = line.partition(":")[0].strip()
        base = rel.rsplit("/", 1)[-1]
        for ext in (".ko.xz", ".ko.zst", ".ko.gz", ".ko"):
            if base.endswith(ext):
                out.setdefault(base[:-len(ext)].replace("-", "_"), rel)
                break
    return out


def module_debug_file(release: str, name: str) -> Path:
    """The DWARF .ko of module NAME of a release, extracted on first use:

        <cache>/kernels/<K>/dbg-modules/<name>.ko

    _provision_dbg takes only vmlinux out of the -dbg package; a module
    probe needs one more member, so it is extracted here on demand (~45 s:
    tar reads the whole 1 GB stream) under a per-module lock, into a temp
    file renamed into place, so an interrupted run leaves no half file.
    The .deb itself stays in the downloads dir, where _deb() keeps every
    package it fetched, so later modules need no new download."""
    key = name.replace("-", "_")
    root = kernel_root(release)
    final = root / "dbg-modules" / f"{key}.ko"
    if final.exists():
        return final
    k = kernel_info(release)
    if k.modules_dir is None:
        k = provision(release, {"image"})
    assert k.modules_dir is not None
    rel = _module_names(k.modules_dir).get(key)
    if rel is None:
        raise NoSuchModule(f"kernel {release} has no module {name!r}")
    for ext in (".xz", ".zst", ".gz"):
        # The -dbg package ships uncompressed .ko files.
        rel = rel[:-len(ext)] if rel.endswith(ext) else rel
    member = f"./usr/lib/debug/lib/modules/{release}/{rel}"
    final.parent.mkdir(parents=True, exist_ok=True)
    with _part_lock(root, f"dbg-module-{key}"):
        if final.exists():
            return final
        for stale in final.parent.glob(f".tmp-{key}-*"):
            shutil.rmtree(stale, ignore_errors=True)    # a killed extraction's; we hold the lock
        deb = _deb(release, f"linux-image-{release}-dbg")
        progress.event("provision", kernel=release, part=f"dbg-module {key}", state="start")
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=final.parent))
        try:
            cmd = (f"set -o pipefail; dpkg-deb --fsys-tarfile {_sh(deb)} | "
                   f"tar -x -C {_sh(tmp)} {_sh(member)}")
            _run(["bash", "-c", cmd], f"extracting {member} from {deb.name}")
            if not (tmp / member).exists():
                raise ProvisionError(f"{deb.name} has no {member}")
            os.replace(tmp / member, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        progress.event("provision", kernel=release, part=f"dbg-module {key}", state="done")
    return final


def _sh(p: Path | str) -> str:
    import shlex
    return shlex.quote(str(p))


_PROVISIONERS = {"headers": _provision_headers, "image": _provision_image, "dbg": _provision_dbg}


# --------------------------------------------------------------------------
# identities: cheap, stable fingerprints for the build graph
# --------------------------------------------------------------------------

def debuginfo_identity(k: Kernel) -> str:
    """The GNU build-id of the DWARF vmlinux, read from its note sections only."""
    if k.vmlinux is None:
        raise ProvisionError(f"kernel {k.release}: debug info (dbg part) not provisioned")
    from elftools.elf.elffile import ELFFile

    with open(k.vmlinux, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            if sec["sh_type"] != "SHT_NOTE":
                continue
            for note in sec.iter_notes():
                # vmlinux also has Xen notes whose type 3 pyelftools labels
                # NT_GNU_BUILD_ID too: check the owner.
                if note["n_name"] == "GNU" and note["n_type"] == "NT_GNU_BUILD_ID":
                    return note["n_desc"]
    raise ProvisionError(f"{k.vmlinux} has no GNU build-id note")


_BUILD_ID_FILES = (
    ".config",
    "Module.symvers",
    "include/generated/utsrelease.h",
    "include/generated/compile.h",
    "include/generated/utsversion.h",
)


def build_identity(k: Kernel) -> str:
    """sha256 over the few build-tree files that decide module compatibility."""
    h = hashlib.sha256()
    for rel in _BUILD_ID_FILES:
        p = k.build_dir / rel
        if p.exists():
            data = p.read_bytes()
            h.update(f"{rel}\0{len(data)}\0".encode())
            h.update(data)
    h.update(b"uts_version\0" + _headers_uts_version(k.build_dir).encode())
    return h.hexdigest()


def _headers_uts_version(build_dir: Path) -> str:
    # 6.1 keeps UTS_VERSION in compile.h, 6.12 moved it to utsversion.h.
    for name in ("utsversion.h", "compile.h"):
        p = build_dir / "include" / "generated" / name
        if p.exists():
            m = re.search(r'#define\s+UTS_VERSION\s+"([^"]*)"', p.read_text(errors="replace"))
            if m:
                return m.group(1)
    return ""


def _bzimage_version_string(vmlinuz: Path) -> str | None:
    """The bzImage header's kernel_version string (boot protocol >= 2.00):
    '<release> (<builder>) #1 SMP ... (<date>)'."""
    with open(vmlinuz, "rb") as f:
        head = f.read(0x300)
        if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
            return None
        off = int.from_bytes(head[0x20E:0x210], "little")
        if not off:
            return None
        f.seek(off + 0x200)
        raw = f.read(256).split(b"\0", 1)[0]
    return raw.decode("ascii", "replace")


def image_build_string(k: Kernel) -> str:
    """The kernel's `uname -v` string, e.g. '#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 (2026-11-16)'."""
    if k.vmlinuz is not None and k.vmlinuz.exists():
        s = _bzimage_version_string(k.vmlinuz)
        # "<release> (<user>@<host>) <uname -v>"; the builder may contain spaces
        # but never ") #", which is where uname -v starts.
        if s and ") #" in s:
            return "#" + s.split(") #", 1)[1].strip()
    v = _headers_uts_version(k.build_dir)
    if v:
        return v
    raise ProvisionError(f"kernel {k.release}: no image and no UTS_VERSION in headers")


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
