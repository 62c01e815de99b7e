"""stapbuild: SystemTap rebuilt as a content-hashed build pipeline.

Artifacts, caches, kernel trees and runtime records are shared by
processes and sometimes users; none of them may ever be writable by
others. So the first import tightens the process umask to at least 022
(it never loosens it): everything stapbuild and its children (make, gcc,
dpkg) create is at most rwxr-xr-x, whatever umask the caller had.
"""
import os as _os

_os.umask(_os.umask(0o022) | 0o022)
