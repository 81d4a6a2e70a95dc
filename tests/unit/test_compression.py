"""Staged parts' gzip: ISA-L by default, the standard library as the fallback, each reading what the other wrote."""

from __future__ import annotations

import gzip
import io
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_mdca import compression
from airflow_provider_mdca.compression import STDLIB, GzipCodec
from airflow_provider_mdca.staging import PartWriter, StagingError, parts, read_part, stage_dir, window_dir

CODECS = compression.available()
LINES = b"".join(b'{"_id":"r%05d","text":"Zo\xc3\xab \xe6\x97\xa5\xe6\x9c\xac","n":%d}\n' % (i, i) for i in range(5000))
START = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def write(codec: GzipCodec, data: bytes) -> bytes:
    target = io.BytesIO()
    with codec.writer(target) as stream:
        stream.write(data)
    assert not target.closed, "closing the gzip stream must leave the file to its owner"
    return target.getvalue()


def read(codec: GzipCodec, data: bytes) -> bytes:
    with codec.reader(io.BytesIO(data)) as stream:
        return stream.read()


def test_isal_is_installed_and_preferred() -> None:
    assert [codec.name for codec in CODECS] == ["isal", "zlib"]
    assert CODECS[0] == compression.DEFAULT
    assert parts._GZIP is compression.DEFAULT


def test_without_isal_the_standard_library_does_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "isal", None)  # as on a platform without its wheel: the import fails
    assert compression.available() == [STDLIB]


@pytest.mark.parametrize("writer", CODECS, ids=lambda codec: f"written by {codec.name}")
@pytest.mark.parametrize("reader", CODECS, ids=lambda codec: f"read by {codec.name}")
def test_each_codec_reads_what_each_wrote(writer: GzipCodec, reader: GzipCodec) -> None:
    packed = write(writer, LINES)
    assert len(packed) < len(LINES) // 4
    assert read(reader, packed) == LINES
    assert gzip.decompress(packed) == LINES, "standard gzip: any tool reads a staged part"


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name)
def test_the_same_lines_give_the_same_bytes(codec: GzipCodec) -> None:
    packed = write(codec, LINES)
    assert packed == write(codec, LINES)
    assert packed[4:8] == b"\0\0\0\0", "no modification time in the header"
    assert packed[3] & 0x08 == 0, "no file name in the header"


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name)
def test_a_request_body_is_one_standard_gzip_member(codec: GzipCodec) -> None:
    packed = codec.compress(LINES)
    assert gzip.decompress(packed) == LINES and len(packed) < len(LINES) // 4
    assert packed == codec.compress(LINES) and packed[4:8] == b"\0\0\0\0"


@pytest.mark.parametrize("codec", CODECS, ids=lambda codec: codec.name)
@pytest.mark.parametrize("damage", ["flipped byte", "truncated"])
def test_damaged_data_is_a_staging_error_naming_the_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codec: GzipCodec, damage: str
) -> None:
    monkeypatch.setattr(parts, "_GZIP", codec)
    window = window_dir(tmp_path, "alerts", START, START + timedelta(minutes=5))
    with PartWriter(window, stage="fetched") as writer:
        writer.write_encoded(LINES.splitlines())
    (part,) = writer.parts
    path = stage_dir(window, "fetched") / part.name
    data = bytearray(path.read_bytes())
    if damage == "flipped byte":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[len(data) // 2 :]
    path.write_bytes(bytes(data))
    # Unverified (salvage) reading meets the damage in the gzip stream itself, whichever library reads it.
    with pytest.raises(StagingError, match=r"part part-00000\.ndjson\.gz: gzip data is corrupt"):
        list(read_part(stage_dir(window, "fetched"), part, verify=False))
    with pytest.raises(StagingError, match=r"part-00000\.ndjson\.gz: sha256 mismatch"):
        list(read_part(stage_dir(window, "fetched"), part))


@pytest.mark.parametrize("writer", CODECS, ids=lambda codec: f"staged with {codec.name}")
@pytest.mark.parametrize("reader", CODECS, ids=lambda codec: f"read with {codec.name}")
def test_a_part_staged_with_one_codec_is_verified_and_read_with_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: GzipCodec, reader: GzipCodec
) -> None:
    window = window_dir(tmp_path, "alerts", START, START + timedelta(minutes=5))
    monkeypatch.setattr(parts, "_GZIP", writer)
    with PartWriter(window, stage="fetched") as part_writer:
        part_writer.write_encoded(LINES.splitlines())
    monkeypatch.setattr(parts, "_GZIP", reader)
    records: list[dict[str, Any]] = list(read_part(stage_dir(window, "fetched"), part_writer.parts[0]))
    assert [record["_id"] for record in records] == [f"r{i:05d}" for i in range(5000)]
