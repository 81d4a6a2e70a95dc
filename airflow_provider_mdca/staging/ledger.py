"""The delivery ledger: what Devo acknowledged for a window, in immutable per-writer files under ``<window>/ledger``."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator
from typing import Generic

from airflow_provider_mdca.staging.errors import StagingError
from airflow_provider_mdca.staging.layout import LEDGER_DIR, check_name
from airflow_provider_mdca.staging.parts import PartInfo
from airflow_provider_mdca.staging.storage import P, make_dirs, read_small, to_json, write_atomically

__all__ = ["DeliveryLedger"]

_LEDGER_FILE = re.compile(r"attempt-(\d{4,})-([0-9a-f]{32})-(\d{6,})\.(ids|part\.json)")


class DeliveryLedger(Generic[P]):
    """What reached Devo for one window, so a rerun ships only what was not delivered before.

    Append-only and per writer: every acknowledged batch and every fully delivered part is a new small file
    ``<window>/ledger/attempt-<n>-<uuid>-<seq>.(ids|part.json)``, written under a temporary name and renamed.
    A file per event rather than one appended file per attempt because object stores cannot append or flush (a
    blob appears only when closed) and a torn last line could pass for a real id; this way a crash loses at most
    the batch in flight, and two attempts writing at once never touch the same file.

    :param window: the window folder.
    :param attempt: the attempt number in file names (e.g. Airflow's try number); by default one more than the
        highest already in the ledger. Informational only: the uuid keeps concurrent writers apart.
    """

    def __init__(self, window: P, *, attempt: int | None = None) -> None:
        self.window = window
        self.folder: P = window / LEDGER_DIR
        self.attempt = attempt if attempt is not None else self._next_attempt()
        if self.attempt < 1:
            raise ValueError(f"attempt must be positive, got {self.attempt}")
        self._token = uuid.uuid4().hex
        self._sequence = 0

    def record_batch(self, ids: Iterable[str]) -> int:
        """Remember the ids of one batch Devo acknowledged; call it after each acknowledgement. Returns the count.

        :raises ValueError: an id is empty or contains a line break (it could not be read back).
        """
        lines = []
        for record_id in ids:
            if not isinstance(record_id, str) or not record_id or "\n" in record_id or "\r" in record_id:
                raise ValueError(f"a record id must be a non-empty string without line breaks, got {record_id!r}")
            lines.append(record_id)
        if lines:
            self._append("ids", "".join(f"{record_id}\n" for record_id in lines).encode("utf-8", "surrogatepass"))
        return len(lines)

    def mark_part_delivered(self, stage: str, part: PartInfo) -> None:
        """Remember that every record of ``part`` of ``stage`` was acknowledged: a retry resumes after it."""
        check_name(stage, "stage")
        self._append("part.json", to_json({"stage": stage, **part.as_dict()}, self.folder, "part marker"))

    def delivered_ids(self) -> set[str]:
        """Every id acknowledged by any attempt (the union of all ledger files). Holds the window's ids in memory."""
        delivered: set[str] = set()
        for path in self._files("ids"):
            text = read_small(path, "ledger file").decode("utf-8", "surrogatepass")
            if not text.endswith("\n"):
                raise StagingError("ledger file is incomplete (no final line break)", path)
            delivered.update(text.splitlines())
        return delivered

    def delivered_parts(self, stage: str) -> set[PartInfo]:
        """The parts of ``stage`` marked delivered by any attempt.

        Whole :class:`PartInfo` values, not names: a restaged window reuses part names for other bytes, and only a
        part with the same sha256 is the part that was delivered.
        """
        check_name(stage, "stage")
        delivered: set[PartInfo] = set()
        for path in self._files("part.json"):
            try:
                data = json.loads(read_small(path, "ledger file"))
                if not isinstance(data, dict) or not isinstance(data.get("stage"), str):
                    raise ValueError("not a part marker")
                marked_stage = data.pop("stage")
                part = PartInfo.from_dict(data)
            except ValueError as exc:
                raise StagingError(f"ledger file is malformed ({exc})", path) from exc
            if marked_stage == stage:
                delivered.add(part)
        return delivered

    def pending_parts(self, stage: str, parts: Iterable[PartInfo]) -> list[PartInfo]:
        """The ``parts`` of ``stage`` not yet delivered, in their order: where a retry continues."""
        done = self.delivered_parts(stage)
        return [part for part in parts if part not in done]

    def _append(self, kind: str, data: bytes) -> None:
        self._sequence += 1
        name = f"attempt-{self.attempt:04d}-{self._token}-{self._sequence:06d}.{kind}"
        make_dirs(self.folder)
        write_atomically(self.folder / name, data)

    def _entries(self) -> Iterator[tuple[re.Match[str], P]]:
        if not self.folder.exists():
            return
        for path in sorted(self.folder.iterdir(), key=lambda child: child.name):
            match = _LEDGER_FILE.fullmatch(path.name)
            if match is not None:  # temporary files and strangers are not ledger entries
                yield match, path

    def _files(self, kind: str) -> Iterator[P]:
        return (path for match, path in self._entries() if match.group(4) == kind)

    def _next_attempt(self) -> int:
        return 1 + max((int(match.group(1)) for match, _ in self._entries()), default=0)
