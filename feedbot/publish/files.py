"""Write published feeds atomically, and only when their bytes change."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

from feedbot.errors import PublishError

logger = logging.getLogger(__name__)

FILE_MODE = 0o644


def write_if_changed(path: Path, data: bytes) -> bool:
    """Make *path* hold *data*; return False (file untouched) when it already does.

    A new version goes to a temporary file in the same directory, is fsynced, then
    replaces *path* with ``os.replace``: readers see the old or the new file, never a part.
    """
    try:
        if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.chmod(FILE_MODE)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_directory(path.parent)
    except OSError as exc:
        raise PublishError(f"cannot write: {exc}", resource=str(path)) from exc
    logger.info("wrote %s bytes=%d", path, len(data))
    return True


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
