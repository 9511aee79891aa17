"""The vault file on disk: read it only when private (0600), write it atomically, never clobber.

Writes go to a 0600 temp file in the same directory, are fsynced and renamed over the old
file; a write is refused when the file changed since it was read (another command ran).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
import tempfile
from pathlib import Path

from importer.vault._errors import (
    VaultChangedError,
    VaultCorruptError,
    VaultExistsError,
    VaultNotFoundError,
    VaultPermissionError,
    VaultWriteError,
)
from importer.vault._format import _Doc, _render, _to_json
from importer.vault._keys import _mac

__all__: list[str] = []

_MAX_FILE = 4 * 1024 * 1024


def _read_vault(path: Path) -> bytes:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise VaultNotFoundError(
            path, f"no vault at {path}: create one with `importer secrets init`"
        ) from None
    except OSError as exc:
        raise VaultPermissionError(path, f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise VaultCorruptError(path, f"{path} is not a regular file")
    if info.st_mode & 0o077:
        raise VaultPermissionError(
            path,
            f"refusing to read {path}: its mode {stat.S_IMODE(info.st_mode):04o} lets group or others "
            f"read it; fix it with `chmod 600 {shlex.quote(str(path))}`",
        )
    if info.st_size > _MAX_FILE:
        raise VaultCorruptError(path, f"{path} is too large to be a vault ({info.st_size} bytes)")
    try:
        return path.read_bytes()
    except OSError as exc:  # e.g. owned by another user: run the command as the importer's user
        raise VaultPermissionError(
            path, f"cannot read {path}: {exc.strerror} (it belongs to uid {info.st_uid})"
        ) from None


def _write(path: Path, data: bytes, *, exclusive: bool) -> None:
    """Write atomically: a 0600 temp file in the same directory, fsync, rename, fsync the directory."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise VaultWriteError(path, f"cannot write {path}: {exc.strerror}; nothing was changed") from None
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if not exclusive:
            os.replace(tmp, path)
        elif _link(tmp, path):  # a hard link never replaces an existing file
            os.unlink(tmp)
        elif path.exists():  # no hard links on this filesystem: check, then rename
            raise FileExistsError
        else:
            os.replace(tmp, path)
    except FileExistsError:
        raise VaultExistsError(path, f"{path} already exists; refusing to overwrite a vault") from None
    except OSError as exc:
        raise VaultWriteError(
            path, f"cannot write {path}: {exc.strerror}; the old file is unchanged"
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _link(src: str, dst: Path) -> bool:
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError:
        return False
    return True


def _store(path: Path, doc: _Doc, dek: bytearray, previous: bytes | None) -> bytes:
    """Authenticate and write ``doc``; ``previous`` None means create (never overwrite)."""
    body = _to_json(doc)
    data = _render(body, _mac(dek, body))
    if previous is not None:
        try:
            current: bytes | None = path.read_bytes()
        except FileNotFoundError:
            current = None
        if current != previous:
            raise VaultChangedError(
                path,
                f"{path} changed on disk since it was opened (another command?); nothing was written, retry",
            )
    _write(path, data, exclusive=previous is None)
    return data
