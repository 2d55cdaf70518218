"""One training run per output folder: an exclusive lock file holding the owner's pid and host.

:func:`hold` takes ``FOLDER/.keras-resnet.lock`` for the duration of a run. A second run on the same folder fails
at once with :class:`~keras_resnet.core.errors.OutputError` ("runs/x is in use by process N"), whatever ``--force``
says. The lock is an ``flock`` on the file, which the kernel drops when its holder dies, SIGKILL included; the
pid and host written in the file name the holder in messages and guard against file systems whose ``flock``
does not exclude. A lock left by a dead process on this host is taken over; one that names another host is
refused with a way out (delete the file) unless ``flock`` shows it free. Once the lock is held,
:func:`remove_leftovers` deletes what killed runs leave behind (temporary files of
:func:`keras_resnet.core.files.atomic_path`, ``NAME.tmp-PID`` files).

Bottom layer: no Keras, no TensorFlow.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator

from keras_resnet.core.errors import OutputError

LOCK_NAME = ".keras-resnet.lock"
# atomic_path's temporary names (tempfile.mkstemp: ".BASE." + 8 random characters + ".tmp" + suffix) and the
# NAME.tmp-PID names of older releases.
_LEFTOVER = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$|^.+\.tmp-\d+$")


def _host() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (one we may not signal counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 4096).decode("utf-8") or "{}")
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}


def _write(fd: int, owner: dict) -> None:
    os.lseek(fd, 0, os.SEEK_SET)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(owner).encode("utf-8"))
    os.fsync(fd)


def _busy(display: str, owner: dict) -> OutputError:
    pid, host = owner.get("pid", "?"), owner.get("host")
    where = f" on {host}" if host and host != _host() else ""
    return OutputError(f"{display} is in use by process {pid}{where}")


class RunLock:
    """The lock on one folder; use :func:`hold`."""

    def __init__(self, folder: str, display: str | None = None):
        self.folder = os.fspath(folder)
        self.display = display or self.folder
        self.path = os.path.join(self.folder, LOCK_NAME)
        self.fd: int | None = None
        self.took_over: dict | None = None  # the dead owner whose lock was taken over, if any

    def acquire(self) -> RunLock:
        owner = {"pid": os.getpid(), "host": _host(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        for _ in range(20):  # retried only when the file was replaced between open and lock
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError as error:
                raise OutputError(f"cannot create the lock file {self.path}: {error.strerror}") from error
            try:
                if not self._flock(fd):
                    raise _busy(self.display, _read(fd))
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if not same:  # the holder removed it as we opened it: lock the new one
                    os.close(fd)
                    continue
                previous = _read(fd)
                if previous.get("pid") not in (None, owner["pid"]):
                    self._check_previous(previous)
                    self.took_over = previous
                _write(fd, owner)
                self.fd = fd
                return self
            except BaseException:
                if self.fd is None:
                    os.close(fd)
                raise
        raise OutputError(f"cannot lock {self.display}: the lock file keeps changing")

    def _flock(self, fd: int) -> bool:
        """True when locked; False when another process holds it. Without flock support, True (pids decide)."""
        try:
            import fcntl
        except ImportError:  # not POSIX
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            return True  # ENOLCK, EOPNOTSUPP...: no flock on this file system
        return True

    def _check_previous(self, previous: dict) -> None:
        """A lock we could take that names another process: a dead one on this host is stale; a live one means
        flock does not work here; another host's cannot be checked."""
        pid, host = previous.get("pid"), previous.get("host")
        if host == _host():
            if isinstance(pid, int) and pid_alive(pid) and pid != os.getpid():
                raise _busy(self.display, previous)
            return
        raise OutputError(f"{self.display} is in use by process {pid} on {host} (if that run is gone, delete "
                          f"{self.path})")

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.remove(self.path)  # while still locked: the next run creates and locks a new file
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def hold(folder: str, display: str | None = None) -> Iterator[RunLock]:
    """Hold the run lock on ``folder`` (which must exist) inside the block; ``display`` names it in messages."""
    lock = RunLock(folder, display).acquire()
    try:
        yield lock
    finally:
        lock.release()


def remove_leftovers(folder: str, subfolders: tuple[str, ...] = ("backup",)) -> list[str]:
    """Delete temporary files (and folders) that killed runs left in ``folder`` and its ``subfolders``; return
    their paths. Call it only while holding the folder's lock: a live run's temporary files look the same."""
    removed = []
    for where in (folder, *(os.path.join(folder, s) for s in subfolders)):
        try:
            names = os.listdir(where)
        except OSError:
            continue
        for name in names:
            if name == LOCK_NAME or not _LEFTOVER.match(name):
                continue
            path = os.path.join(where, name)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)
                removed.append(path)
            except OSError:
                continue
    return removed


def temporary_prefix(kind: str) -> str:
    """The name prefix of this process's temporary folders of ``kind`` (host and pid in it, for
    :func:`remove_stale_temporaries`), e.g. ``.keras-resnet-convert-HOST-PID-``."""
    return f".keras-resnet-{kind}-{_host()}-{os.getpid()}-"


def remove_stale_temporaries(folder: str, kind: str) -> list[str]:
    """Delete the temporary folders of ``kind`` in ``folder`` left by dead processes of this host (a kill during
    a conversion); live processes' and other hosts' are kept. Returns the removed paths."""
    prefix = f".keras-resnet-{kind}-{_host()}-"
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or pid_alive(int(pid)):
            continue
        path = os.path.join(folder, name)
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            removed.append(path)
    return removed
