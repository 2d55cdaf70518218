"""Writing outputs so that a crash, a kill or a full disk never leaves a half-written file under a real name.

One family of helpers for every file keras_resnet writes: :func:`atomic_path` (a temporary name next to the
target, moved over it on success), :func:`atomic_write` (text or bytes through it), :func:`publish` (make one
file another's content atomically, by hard link when possible) and :func:`save_figure`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from keras_resnet.core.errors import ModelFileError, OutputError, OutputExistsError


def check_output(path: str | os.PathLike, *, force: bool) -> str:
    """Refuse an output that cannot be written (a folder, an existing file without ``force``, a missing folder);
    returns its folder. Called before expensive work, and again by :func:`atomic_path` when writing."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise OutputError(f"output {path} is a folder")
    if os.path.lexists(path) and not force:
        raise OutputExistsError(f"output {path} exists; pass --force to overwrite it")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError(f"output folder {folder} does not exist")
    return folder


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, force: bool = True) -> Iterator[str]:
    """Yield a fresh temporary path next to ``path`` (same suffix); on success move it over ``path``.

    With ``force=False`` an existing ``path`` is refused (:class:`OutputExistsError`). On any failure the
    temporary file is removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    folder = check_output(path, force=force)
    base, suffix = os.path.splitext(os.path.basename(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{suffix}", dir=folder)
    except OSError as error:
        raise OutputError(f"cannot write in {folder}: {error.strerror}") from error
    os.close(fd)
    os.remove(tmp)  # savers refuse or mishandle existing files; only the unique name is wanted
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise OutputError(f"nothing was written to {tmp}")
        os.replace(tmp, path)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.lexists(tmp):
            os.remove(tmp)


def atomic_write(path: str | os.PathLike, content: str | bytes, *, force: bool = True) -> None:
    """Write ``content`` (text as UTF-8) to ``path`` through :func:`atomic_path`, synced to disk."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    with atomic_path(path, force=force) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def publish(src: str, dst: str) -> None:
    """``dst`` becomes ``src``'s content atomically (a hard link when the file system allows, else a copy)."""
    if os.path.exists(dst) and os.path.samefile(src, dst):
        return  # rename() of two links to one file is a no-op that would leave the temporary link behind
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def save_figure(fig, path: str) -> None:
    """Save a matplotlib ``Figure`` as PNG through :func:`atomic_path`.

    Callers build ``matplotlib.figure.Figure`` objects without pyplot, so no backend is switched (a notebook's inline
    plots keep working) and nothing needs closing."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def read_json_file(path: str | os.PathLike, *, max_bytes: int, max_depth: int, what: str = "JSON file"):
    """A JSON file from a stranger: refused (ModelFileError) above ``max_bytes`` before it is read, or nested deeper
    than ``max_depth``, or not JSON (resnet-edge's ``load_json``: no NaN, no duplicate keys)."""
    from resnet_edge.metadata import load_json

    path = os.fspath(path)
    if os.path.getsize(path) > max_bytes:
        raise ModelFileError(f"{path} is larger than {max_bytes:,} bytes; not a {what}")
    with open(path, "rb") as f:
        try:
            return load_json(f.read(), path, max_depth=max_depth)
        except ValueError as error:
            raise ModelFileError(str(error)) from error
