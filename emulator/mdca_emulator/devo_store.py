"""What the Devo emulators received: one NDJSON file per tag, in-memory counts, malformed lines and counters.

Files in the store directory::

    <tag>.ndjson        one event per line, appended in arrival order (the bytes the sender wrote)

The hot path (:meth:`DevoStore.append_block`) takes a block of newline-terminated events and writes it with one
``write``; nothing is JSON-decoded until :meth:`DevoStore.events` or :meth:`DevoStore.ids` asks. Files are
unbuffered, so a test reading a file directly sees every event the emulator has counted.

A store opened on a directory that already holds ``.ndjson`` files continues them: the counts start from their
line numbers, so a restarted emulator agrees with its files.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["MAX_KEPT_MALFORMED", "DevoCounters", "DevoStore", "valid_tag"]

# Devo tags are dot-separated words. The tag is also a file name, so nothing that could leave the folder
# ("/", a leading ".") is allowed.
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")
_SUFFIX = ".ndjson"
_COPY_CHUNK = 1 << 20
# Malformed lines are always counted; only the first ones are kept (each cut to 64 KiB) so that a client
# sending garbage cannot exhaust memory.
MAX_KEPT_MALFORMED = 10_000
_MALFORMED_KEEP_BYTES = 64 * 1024

# Counters that exist from the start, so a report never lacks a key because nothing happened yet.
_ZERO: dict[str, dict[str, int]] = {
    "relay": {
        "connections": 0,
        "refused": 0,
        "handshake_failures": 0,
        "bytes": 0,
        "lines": 0,
        "malformed": 0,
        "partial_lines": 0,
        "cut": 0,
        "line_too_long": 0,
    },
    "http": {"requests": 0, "bytes": 0, "lines": 0, "incomplete_bodies": 0},
    "http_status": {},
    "faults_injected": {},
}


def valid_tag(tag: str) -> bool:
    """Whether `tag` is a tag the store accepts (letters, digits, ``_ . -``; no leading dot; ≤ 255 chars).

    >>> valid_tag("casb.microsoft_defender.cloud_apps.alerts"), valid_tag("../etc"), valid_tag("a/b")
    (True, False, False)
    """
    return _TAG.fullmatch(tag) is not None


class DevoCounters:
    """Thread-safe counters in named sections (``relay``, ``http``, ``http_status``, ``faults_injected``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sections = copy.deepcopy(_ZERO)

    def add(self, section: str, name: str, amount: int = 1) -> None:
        """Add `amount` to ``section.name``."""
        with self._lock:
            bucket = self._sections.setdefault(section, {})
            bucket[name] = bucket.get(name, 0) + amount

    def get(self, section: str, name: str) -> int:
        """One counter's value."""
        with self._lock:
            return self._sections.get(section, {}).get(name, 0)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """A copy of every counter."""
        with self._lock:
            return copy.deepcopy(self._sections)

    def reset(self) -> None:
        """Every counter back to zero."""
        with self._lock:
            self._sections = copy.deepcopy(_ZERO)


class DevoStore:
    """Per-tag NDJSON files plus counts, shared (thread-safely) by the relay and HTTP emulators.

    :param directory: where ``<tag>.ndjson`` files go (created if missing).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.counters = DevoCounters()
        self._lock = threading.Lock()
        self._files: dict[str, BinaryIO] = {}
        self._counts: dict[str, int] = self._existing_counts()
        self._malformed: list[bytes] = []

    def _existing_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for path in self.directory.glob(f"*{_SUFFIX}"):
            tag = path.name[: -len(_SUFFIX)]
            if valid_tag(tag):
                counts[tag] = _count_lines(path)
        return counts

    # -- writing (hot path) ----------------------------------------------------------------------------------

    def append_block(self, tag: str, block: bytes, count: int) -> None:
        r"""Append `count` events already joined as newline-terminated lines (``b"e1\ne2\n"``) under `tag`.

        The caller vouches for `count` and for `tag` being :func:`valid_tag`: this is the relay's hot path.
        """
        if not count:
            return
        with self._lock:
            handle = self._files.get(tag)
            if handle is None:
                # buffering=0: each block reaches the file at once, so readers of the file never lag the counts.
                handle = self._files[tag] = open(self.path(tag), "ab", buffering=0)  # noqa: SIM115 - kept open
            handle.write(block)
            self._counts[tag] = self._counts.get(tag, 0) + count

    def append(self, tag: str, events: list[bytes]) -> int:
        """Append `events` (one line each, without newlines) under `tag`; returns how many were stored."""
        if not valid_tag(tag):
            raise ValueError(f"invalid tag {tag!r}")
        self.append_block(tag, b"".join(event + b"\n" for event in events), len(events))
        return len(events)

    def add_malformed(self, lines: list[bytes]) -> None:
        """Count lines that did not parse; keep the first :data:`MAX_KEPT_MALFORMED` of them (cut to 64 KiB)."""
        if not lines:
            return
        self.counters.add("relay", "malformed", len(lines))
        with self._lock:
            room = MAX_KEPT_MALFORMED - len(self._malformed)
            self._malformed.extend(line[:_MALFORMED_KEEP_BYTES] for line in lines[: max(room, 0)])

    # -- reading ---------------------------------------------------------------------------------------------

    def path(self, tag: str) -> Path:
        """The NDJSON file of `tag` (it may not exist yet)."""
        if not valid_tag(tag):
            raise ValueError(f"invalid tag {tag!r}")
        return self.directory / f"{tag}{_SUFFIX}"

    def count(self, tag: str) -> int:
        """Events stored under `tag` (0 for a tag never seen)."""
        with self._lock:
            return self._counts.get(tag, 0)

    def counts(self) -> dict[str, int]:
        """Events stored per tag, sorted by tag."""
        with self._lock:
            return dict(sorted(self._counts.items()))

    def tags(self) -> list[str]:
        """Every tag that has events, sorted."""
        return [tag for tag, count in self.counts().items() if count]

    def raw_lines(self, tag: str) -> list[bytes]:
        """The stored lines of `tag`, exactly as received (without their newlines)."""
        if not valid_tag(tag):
            return []
        with self._lock:
            try:
                data = self.path(tag).read_bytes()
            except FileNotFoundError:
                return []
        return data.splitlines()

    def events(self, tag: str) -> list[Any]:
        """The events of `tag` in arrival order, JSON-decoded; a line that is not JSON stays a ``str``."""
        return [_decode(line) for line in self.raw_lines(tag)]

    def ids(self, tag: str, key: str = "_id") -> list[str]:
        """``str(event[key])`` of every JSON-object event of `tag` that has `key`, duplicates kept, in order."""
        return [str(event[key]) for event in self.events(tag) if isinstance(event, dict) and key in event]

    def malformed(self) -> list[bytes]:
        """The kept malformed lines (the count in :meth:`stats` is exact, this list is capped)."""
        with self._lock:
            return list(self._malformed)

    def stats(self) -> dict[str, Any]:
        """Counters (``relay``, ``http`` with ``by_status``, ``faults_injected``) and ``tags`` (count per tag)."""
        sections = self.counters.snapshot()
        http: dict[str, Any] = dict(sections.pop("http"))
        http["by_status"] = dict(sorted(sections.pop("http_status").items()))
        return {**sections, "http": http, "tags": self.counts()}

    # -- lifecycle -------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything: delete the tag files, zero the counts and counters, drop the malformed lines."""
        with self._lock:
            self._close_files()
            for path in self.directory.glob(f"*{_SUFFIX}"):
                path.unlink(missing_ok=True)
            self._counts.clear()
            self._malformed.clear()
        self.counters.reset()

    def close(self) -> None:
        """Close the open files (the store reopens them on the next append)."""
        with self._lock:
            self._close_files()

    def _close_files(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()


def _decode(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:  # also UnicodeDecodeError
        return line.decode("utf-8", errors="replace")


def _count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_COPY_CHUNK):
            lines += chunk.count(b"\n")
    return lines
