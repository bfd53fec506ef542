"""Atomic file writes: a reader sees the old file or the new one, never a part, and a crash leaves no temp file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PRIVATE_MODE = 0o600


def write_atomically(path: Path, data: bytes | str, *, mode: int = PRIVATE_MODE) -> None:
    """Write ``data`` (text as UTF-8) to a temp file in ``path``'s folder, fsync it, rename it over ``path`` and
    fsync the folder, so the rename survives a power cut.

    The new file has ``mode`` from its first byte (owner-only by default: keys and tokens are written this way);
    a file that existed keeps its owner and group where this process may set them, so a server run by another
    user still reads it. On any error the temp file is removed and ``path`` keeps its old content.
    """
    content = data.encode() if isinstance(data, str) else data
    owner = path.stat() if path.exists() else None
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            if owner is not None:
                with contextlib.suppress(PermissionError):
                    os.fchown(out.fileno(), owner.st_uid, owner.st_gid)
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
