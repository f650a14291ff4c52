"""Atomic writes and file fingerprints, shared by data trees, episode lists, exports and reports."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it onto ``path``.

    Readers (and other ranks) never see a half-written file: ``os.replace`` is atomic on POSIX and
    Windows when both names are on one file system. The temporary file is created with mode 0o666
    so the umask applies (``tempfile.mkstemp`` would leave it 0600), and that mode is set again
    after ``write``: a writer may replace the file with its own private temporary file
    (safetensors' ``save_file`` does, leaving 0600), so the result always gets the mode a plain
    ``open(path, "w")`` gives.

    Raises:
        PermissionError: the folder is not writable (the message names it).
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        plain_mode = tmp.stat().st_mode & 0o777  # 0o666 less the umask, read without changing it
    except OSError as err:  # not writable, read-only file system, a file in the way, ...
        raise PermissionError(
            f"cannot write to {path.parent} ({err.strerror or err}): choose a writable folder"
        ) from err
    try:
        write(tmp)
        os.chmod(tmp, plain_mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(
    path: str | os.PathLike[str], payload: Any, *, indent: int | None = None
) -> Path:
    """Key-sorted (byte-stable) JSON with a trailing newline, written atomically; compact by
    default."""
    separators = (",", ": ") if indent else (",", ":")
    text = json.dumps(payload, indent=indent, sort_keys=True, separators=separators) + "\n"
    return atomic_write_text(path, text)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
