"""Whether a file is marked immutable or append-only (``chattr +i`` / ``+a``, as ``lsattr`` shows).

Such a file cannot be deleted, renamed or replaced, not even by root, while the folder around it
is writable: looking at permissions does not find it, only trying. A step recomputed over one
computed the whole step before its commit failed. Its flags are asked for here instead (Linux's
``FS_IOC_GETFLAGS``, one open and ioctl per file); where they cannot be (another OS, a filesystem
without them, a file this user may not open), the answer is "not known", and deleting finds it.
"""

from __future__ import annotations

import os
import stat
import struct
import sys

FS_IMMUTABLE_FL = 0x10
FS_APPEND_FL = 0x20
# _IOR('f', 1, long), as the generic ioctl encoding has it (x86, ARM, RISC-V; elsewhere the
# number means nothing to the kernel and the question goes unanswered)
FS_IOC_GETFLAGS = (2 << 30) | (struct.calcsize("l") << 16) | (ord("f") << 8) | 1


def flags(path: str) -> int | None:
    """The inode flags of the file or folder ``path`` (not followed), or None where unknown."""
    if not sys.platform.startswith("linux"):
        return None
    import fcntl

    try:
        mode = os.lstat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a link, a pipe or a device: never opened
            return None
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        answer = fcntl.ioctl(handle, FS_IOC_GETFLAGS, bytes(8))
    except OSError:  # ENOTTY: a filesystem without flags (tmpfs before 6.0, FUSE, NFS)
        return None
    finally:
        os.close(handle)
    return struct.unpack("i", answer[:4])[0]


def pinned(path: str) -> str | None:
    """Why ``path`` cannot be deleted or replaced by anyone, root included ("… is marked immutable
    (chattr +i)"), or None: not marked, or not known."""
    found = flags(path)
    if found is None or not found & (FS_IMMUTABLE_FL | FS_APPEND_FL):
        return None
    mark = "immutable (chattr +i)" if found & FS_IMMUTABLE_FL else "append-only (chattr +a)"
    return f"{path} is marked {mark}: not even root may delete or replace it (lsattr shows it)"
