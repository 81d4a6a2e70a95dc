"""The cleanup task: it removes expired windows, never through a link, and fails naming a folder it refuses."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_mdca.operators.cleanup import MdcaStagingCleanupOperator
from airflow_provider_mdca.staging import PartWriter, UnsafeLocationError, mark_window_delivered, window_dir


def delivered(base: Path, days_ago: int) -> Path:
    start = datetime.now(timezone.utc) - timedelta(days=days_ago)
    window = window_dir(base, "alerts", start, start + timedelta(minutes=5))
    with PartWriter(window, stage="fetched") as writer:
        writer.write_all([{"_id": "a"}])
    mark_window_delivered(window, {})
    return window


def cleanup(base: Path) -> MdcaStagingCleanupOperator:
    return MdcaStagingCleanupOperator(
        task_id="cleanup", service="alerts", staging_url=base.as_uri(), retention=timedelta(0)
    )


def test_cleanup_removes_the_other_windows_then_fails_naming_the_refused_one(tmp_path):
    base = tmp_path / "staging"
    first, unsafe, last = delivered(base, 9), delivered(base, 8), delivered(base, 7)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep", encoding="utf-8")
    os.symlink(victim, first / "link")
    os.chmod(unsafe, 0o777)
    with pytest.raises(UnsafeLocationError, match=f"1 window.*{unsafe.name}: the window folder is group or world"):
        cleanup(base).execute({})
    assert not first.exists() and not last.exists() and unsafe.exists()
    assert (victim / "precious.txt").read_text(encoding="utf-8") == "keep"


def test_cleanup_refuses_a_world_writable_staging_root_and_deletes_nothing(tmp_path):
    base = tmp_path / "staging"
    window = delivered(base, 9)
    os.chmod(base, 0o777)
    with pytest.raises(UnsafeLocationError, match="the staging root is group or world writable"):
        cleanup(base).execute({})
    assert window.exists()
    os.chmod(base, 0o700)
    assert cleanup(base).execute({}) == 1 and not window.exists()
