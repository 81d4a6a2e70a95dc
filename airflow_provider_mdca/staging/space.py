"""A full staging disk as a clear error: which folder, how much is free, how much the window needs.

Staging fills up when Devo has been down for long (windows are fetched and kept until they are delivered) or when
retention was set long. Python says ``[Errno 28] No space left on device`` and, from the middle of a gzip stream, not
even which file; this module turns it into a :class:`StagingFullError` that names the folder and the space needed.
What was half-written by the failed attempt is removed by its writer (a part is only ever visible complete), so
the task's retry, once space is freed, stages the window whole.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterator

from airflow_provider_mdca.staging.errors import StagingError
from airflow_provider_mdca.staging.storage import StoragePath, local_path

__all__ = ["StagingFullError", "free_bytes", "out_of_space_named", "require_space"]

_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


class StagingFullError(StagingError):
    """The staging file system has no room for what a task must write there; nothing half-written is kept."""


def free_bytes(folder: StoragePath) -> int | None:
    """Bytes free on the disk holding ``folder`` (its nearest existing parent); None for an object store."""
    local = local_path(folder)
    if local is None:
        return None
    probe = local
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    return shutil.disk_usage(probe).free


def require_space(folder: StoragePath, needed: int, what: str) -> None:
    """Refuse to start when the disk holding ``folder`` has less than ``needed`` bytes free.

    Used before a step whose writes must not fail half-way (the ship step's delivery ledger: an acknowledged batch
    it could not record would be sent again).
    """
    free = free_bytes(folder)
    if free is not None and free < needed:
        raise StagingFullError(
            f"{_size(free)} free on its disk, {what} needs at least {_size(needed)}: free {_size(needed - free)} "
            "there (or move staging_url) and the task's retry goes on; nothing was sent",
            folder,
        )


@contextlib.contextmanager
def out_of_space_named(folder: StoragePath, written: Callable[[], int], what: str) -> Iterator[None]:
    """Turn "no space left on device" inside the block into a :class:`StagingFullError` naming ``folder``.

    :param written: the bytes the block had written when it failed (the writer's count), so that the error can say
        how much the window needs at least.
    """
    try:
        yield
    except OSError as exc:
        if exc.errno not in _FULL_ERRNOS:
            raise
        free = free_bytes(folder)
        at_least = written()
        raise StagingFullError(
            f"no space left on its disk while staging {what} ({_size(free) if free is not None else 'unknown'} free; "
            f"this attempt had written {_size(at_least)} uncompressed when it filled): free at least "
            f"{_size(at_least)} there, more for a larger window, and the task's retry stages it whole. The parts "
            "this attempt wrote were removed; nothing half-written is read",
            folder,
        ) from exc


def _size(count: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"
