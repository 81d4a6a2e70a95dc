"""Storage primitives: the path API staging needs, and how a file is made, written, read and removed on it.

A path is a local ``Path`` or a ``UPath`` (Airflow's ``ObjectStoragePath`` is one). On a local disk (including a
``file://`` UPath) folders are created 0700 and files 0600, and a file is fsync'd before its rename; object stores
have neither. Every file is written under a hidden temporary name and renamed to its final one when complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import PurePath
from typing import IO, Any, Final, Protocol, TypeVar

from airflow_provider_mdca.staging.errors import StagingError, UnsafeLocationError

__all__ = ["P", "StoragePath"]

# Staged records are security telemetry (users, IP addresses, files): on a local disk only the owner reads them.
_FILE_MODE: Final = 0o600
_DIR_MODE: Final = 0o700

P = TypeVar("P", bound="StoragePath")


class StoragePath(Protocol):
    """The part of the ``pathlib.Path`` API staging uses; ``Path``, ``UPath`` and ``ObjectStoragePath`` all have it."""

    @property
    def name(self) -> str: ...

    @property
    def parent(self: P) -> P: ...

    def __truediv__(self: P, key: str) -> P: ...

    def open(self, mode: str) -> IO[Any]: ...

    def mkdir(self, mode: int = ..., parents: bool = ..., exist_ok: bool = ...) -> None: ...

    def exists(self) -> bool: ...

    def is_dir(self) -> bool: ...

    def iterdir(self: P) -> Iterator[P]: ...

    def unlink(self, missing_ok: bool = ...) -> None: ...

    def rmdir(self) -> None: ...

    def rename(self: P, target: P) -> P: ...


def local_path(path: StoragePath) -> str | None:
    """The OS path when ``path`` is on this machine's disk (``Path``, or a local or ``file://`` UPath), else None.

    Local files get owner-only modes and an fsync before their rename; object stores have neither.
    """
    protocol = getattr(path, "protocol", None)
    if protocol is not None:
        # A UPath (Airflow's ObjectStoragePath is one). Ask its protocol, not its type: universal_pathlib 0.2 (the
        # Airflow 2.11 line) makes every UPath a pathlib.Path, memory:// and s3:// included.
        inner = getattr(path, "path", None)
        return inner if protocol in ("", "file", "local") and isinstance(inner, str) else None
    if isinstance(path, PurePath):
        return os.fspath(path)
    return None


def make_dirs(folder: StoragePath) -> None:
    local = local_path(folder)
    if local is None:
        folder.mkdir(parents=True, exist_ok=True)
    else:
        _make_private_dirs(local)


def _make_private_dirs(path: str) -> None:
    # os.makedirs applies its mode only to the last folder: create each missing one ourselves. Folders that already
    # exist (the base, perhaps /tmp) are left as they are: they are not ours.
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        _make_private_dirs(parent)
    try:
        os.mkdir(path, _DIR_MODE)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
        return  # another writer created it first
    os.chmod(path, _DIR_MODE)  # the umask may have removed bits the owner needs


def create_file(path: StoragePath) -> IO[bytes]:
    """A new file for writing; on a local disk created 0600 from the start (no window where others could open it)."""
    local = local_path(path)
    if local is None:
        handle: IO[bytes] = path.open("wb")
        return handle
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return os.fdopen(os.open(local, flags, _FILE_MODE), "wb")


def sync_file(path: StoragePath, handle: IO[bytes]) -> None:
    # Without an fsync a power cut after the rename may leave a complete-looking name over incomplete data.
    if local_path(path) is not None:
        handle.flush()
        os.fsync(handle.fileno())


def replace_file(source: StoragePath, target: StoragePath) -> None:
    local_source, local_target = local_path(source), local_path(target)
    if local_source is not None and local_target is not None:
        os.replace(local_source, local_target)  # atomic, and unlike Path.rename it overwrites on Windows too
        _sync_folder(os.path.dirname(local_target))
    else:
        source.rename(target)


def _sync_folder(folder: str) -> None:
    # The rename is in the folder's entry table: without this a power cut may lose it (a ledger entry, a manifest),
    # which at worst sends a batch again, never loses one. Not every platform can open a folder for an fsync.
    try:
        descriptor = os.open(folder or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def discard_file(path: StoragePath) -> None:
    # Clean-up on a failure path: never let it hide the original error. Not only OSError: object stores fail with
    # their SDK's errors (azure.core's HttpResponseError or ServiceRequestError when the network is what failed).
    with contextlib.suppress(Exception):
        if path.exists():
            path.unlink()


def remove_file(path: StoragePath) -> None:
    # Not a clean-up: an error here must stop the caller (see PartWriter._prepare).
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def temp_name(final: StoragePath) -> StoragePath:
    # Hidden, unique per writer, and never matching a part or manifest name: readers cannot mistake it.
    return final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"


def write_atomically(path: StoragePath, data: bytes) -> None:
    temp = temp_name(path)
    try:
        with create_file(temp) as handle:
            handle.write(data)
            sync_file(temp, handle)
        replace_file(temp, path)
    except BaseException:
        discard_file(temp)
        raise


def read_small(path: StoragePath, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data: bytes = handle.read()
    except FileNotFoundError as exc:
        raise StagingError(f"{what} not found", path) from exc
    except OSError as exc:
        raise StagingError(f"{what} cannot be read ({type(exc).__name__}: {exc.strerror or exc})", path) from exc
    return data


def to_json(value: object, path: StoragePath, what: str) -> bytes:
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"
    except (TypeError, ValueError) as exc:
        raise StagingError(f"{what} is not JSON-serialisable ({exc})", path) from exc


def check_private_folder(folder: StoragePath, what: str, *, follow: bool = False) -> None:
    """Refuse a local folder another user could tamper with: not this process's user's, group or world writable.

    ``follow``: the folder may be reached through a link (a configured staging root); otherwise a link is refused,
    since deleting through it would delete wherever it points. Object stores have no owners or links: not checked.
    A folder that does not exist is not checked (there is nothing under it to delete).

    :raises UnsafeLocationError: naming the folder and what is wrong with it.
    """
    local = local_path(folder)
    if local is None:
        return
    try:
        info = os.stat(local) if follow else os.lstat(local)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeLocationError(f"{what} is a symbolic link; staging never deletes through a link", folder)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeLocationError(f"{what} is not a folder", folder)
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise UnsafeLocationError(
            f"{what} is owned by uid {info.st_uid}, not by this task's user (uid {os.geteuid()}): another user "
            "controls what is in it, so nothing is deleted there",
            folder,
        )
    if info.st_mode & 0o022:
        raise UnsafeLocationError(
            f"{what} is group or world writable (mode {stat.S_IMODE(info.st_mode):04o}): another user could plant a "
            "link in it, so nothing is deleted there; chmod go-w it (staging creates its folders 0700)",
            folder,
        )


def is_link(path: StoragePath) -> bool:
    """Whether ``path`` is a symbolic link on a local disk (never on an object store)."""
    local = local_path(path)
    return local is not None and os.path.islink(local)


def remove_tree(path: StoragePath) -> None:
    """Delete a file or a folder and everything in it, never following a link: a link is removed, not its target.

    On a local disk a folder goes through :func:`shutil.rmtree`, which does not follow links inside it (and works on
    file descriptors, so a link swapped in meanwhile is not followed either).
    """
    local = local_path(path)
    if local is None:
        _remove_object_tree(path)
        return
    try:
        info = os.lstat(local)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(local)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(local)  # a file, or a link (removed itself, whatever it points to)


def _remove_object_tree(path: StoragePath) -> None:
    if not path.exists():
        return  # object stores drop an "empty folder" by themselves
    if path.is_dir():
        for child in list(path.iterdir()):
            _remove_object_tree(child)
        if path.exists():
            path.rmdir()
    else:
        path.unlink()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()
