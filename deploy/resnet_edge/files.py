"""Reading files a caller names without trusting them: a regular file only (never blocking on a FIFO or reading a
device), with an optional size bound checked on the open file before reading.
"""

from __future__ import annotations

import os
import stat


def read_regular_file(path: str, max_bytes: int | None = None) -> bytes:
    """The content of ``path``, refusing (OSError) anything but a regular file without blocking on a FIFO, and
    (with ``max_bytes``) a file larger than that, checked on the open file before reading."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(f"not a regular file ({file_kind(mode)})")
        if max_bytes is not None and os.fstat(fd).st_size > max_bytes:
            raise OSError(f"larger than {max_bytes:,} bytes")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def file_kind(mode: int) -> str:
    """"a FIFO", "a socket", "a device", "a folder", "a link" or "a special file", for an ``st_mode``."""
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a folder"), (stat.S_ISLNK, "a link")):
        if test(mode):
            return name
    return "a special file"
