"""BTF without the -dbg package: pulled out of the bootable vmlinuz.

A bzImage carries the kernel as a compressed ELF (scripts/extract-vmlinux
finds it by its compression magic).  That ELF is stripped of symbols and
DWARF, but `.BTF` is an allocated section (the kernel serves it at
/sys/kernel/btf/vmlinux), so it survives.  Debian 6.1 compresses with xz,
6.12 with zstd; gzip/bzip2/lzma are handled too.  The blob (~5 MB) is
cached next to the kernel, keyed by the vmlinuz's size and mtime, so the
decompression (~0.5-1 s) happens once.

Python 3.11 has no zstd in the standard library: the `zstandard` module is
used if installed, else the `zstd` command (Debian package zstd).
"""
from __future__ import annotations

import bz2
import lzma
import os
import shutil
import subprocess
import tempfile
import zlib
from pathlib import Path
from typing import Callable, Optional

from .elf_symbols import read_sections

# (name, magic) in extract-vmlinux's order of preference.
_MAGICS = [
    ("gzip", b"\x1f\x8b\x08"),
    ("xz", b"\xfd7zXZ\x00"),
    ("bzip2", b"BZh"),
    ("lzma", b"\x5d\x00\x00\x00"),
    ("zstd", b"\x28\xb5\x2f\xfd"),
]


class BtfUnavailable(Exception):
    """No BTF for this kernel; the message says what was tried."""


def _gunzip(data: bytes) -> bytes:
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)


def _unxz(data: bytes) -> bytes:
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)


def _unlzma(data: bytes) -> bytes:
    return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data)


def _bunzip2(data: bytes) -> bytes:
    return bz2.BZ2Decompressor().decompress(data)


def _unzstd(data: bytes) -> bytes:
    try:
        import zstandard  # type: ignore[import-not-found]
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    except ImportError:
        pass
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python >= 3.14
        return zstd.ZstdDecompressor().decompress(data)
    except ImportError:
        pass
    exe = shutil.which("zstd")
    if exe is None:
        raise BtfUnavailable("the vmlinuz is zstd-compressed and neither the zstandard "
                             "module nor the zstd command is installed")
    # The payload is followed by the rest of the bzImage: zstd stops at the
    # end of the frame but reports trailing garbage, so read what it wrote.
    res = subprocess.run([exe, "-d", "-c", "-q"], input=data, capture_output=True)
    if not res.stdout:
        raise BtfUnavailable(f"zstd failed: {res.stderr.decode(errors='replace').strip()}")
    return res.stdout


_DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": _gunzip, "xz": _unxz, "bzip2": _bunzip2, "lzma": _unlzma, "zstd": _unzstd,
}


def extract_vmlinux(vmlinuz: Path) -> bytes:
    """The ELF inside a compressed kernel image (extract-vmlinux in Python)."""
    data = Path(vmlinuz).read_bytes()
    if data[:4] == b"\x7fELF":
        return data
    tried = []
    for name, magic in _MAGICS:
        pos = data.find(magic)
        while pos >= 0:
            try:
                out = _DECOMPRESS[name](data[pos:])
            except BtfUnavailable:
                raise
            except Exception:  # noqa: BLE001 - a false magic match: try the next
                out = b""
            if out[:4] == b"\x7fELF":
                return out
            tried.append(f"{name}@{pos}")
            pos = data.find(magic, pos + 1)
            if len(tried) > 8:
                break
    raise BtfUnavailable(f"{vmlinuz}: no compressed ELF found (tried {', '.join(tried) or 'nothing'})")


def btf_from_elf(elf: bytes, what: str) -> bytes:
    secs = read_sections(elf)
    s = secs.get(".BTF")
    if s is None:
        raise BtfUnavailable(f"{what}: no .BTF section (kernel built without CONFIG_DEBUG_INFO_BTF)")
    return bytes(elf[s.offset:s.offset + s.size])


def cached_btf(vmlinuz: Path, cache_dir: Path) -> Path:
    """Path of the kernel's raw BTF blob, extracted from vmlinuz once."""
    vmlinuz = Path(vmlinuz)
    st = vmlinuz.stat()
    out = Path(cache_dir) / f"vmlinux-{st.st_size}-{int(st.st_mtime)}.btf"
    if out.exists():
        return out
    blob = btf_from_elf(extract_vmlinux(vmlinuz), str(vmlinuz))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".btf-")
    with os.fdopen(fd, "wb") as f:
        f.write(blob)
    os.replace(tmp, out)
    return out


def find_btf(release: str, vmlinuz: Optional[Path], cache_dir: Path) -> Path:
    """BTF for a kernel without DWARF: its vmlinuz, else the running kernel's."""
    errors = []
    if vmlinuz is not None and Path(vmlinuz).exists():
        try:
            return cached_btf(vmlinuz, cache_dir)
        except BtfUnavailable as e:
            errors.append(str(e))
    sys_btf = Path("/sys/kernel/btf/vmlinux")
    if os.uname().release == release and sys_btf.exists():
        return sys_btf
    errors.append(f"kernel {release} is not the running kernel "
                  f"(/sys/kernel/btf/vmlinux is {os.uname().release}'s)")
    raise BtfUnavailable("no BTF for kernel " + release + ": " + "; ".join(errors))
