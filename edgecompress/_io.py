"""Atomic output: write to a temporary file in the same folder, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, overwrite: bool = True, argument: str = "path"):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is False.
        FileNotFoundError: if the folder of ``path`` does not exist.
        PermissionError: if the folder is not writable.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"`{argument}` must be in an existing folder. Received: {path}")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"`{argument}` already exists; pass overwrite=True (--overwrite) to replace it. "
            f"Received: {path}"
        )
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"`{argument}` is in a folder that is not writable. Received: {path}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, data: bytes | str, overwrite: bool = True, argument: str = "path") -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path, overwrite, argument) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return Path(path)
