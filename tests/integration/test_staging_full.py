"""A full staging disk, for real: a small tmpfs mounted for the test, MDCA and Devo emulated over TLS.

The fetch that fills it fails with a StagingError naming the folder and the space needed, leaves no half-written part
behind, and stages the window whole once space is freed; a ship that could not record what Devo acknowledges refuses
to start instead of sending, then delivers each event once when there is room.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_provider_mdca.client.mdca import to_epoch_ms
from airflow_provider_mdca.pipeline import fetch_to_stage
from airflow_provider_mdca.shipping import ship_stage
from airflow_provider_mdca.staging import StagingFullError, window_dir
from mdca_emulator import Rate, TimeSeriesConfig
from mdca_emulator.devo import DevoEmulator
from tests.integration.test_devo_delivery import hook_for, http_connection

END = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
START = END - timedelta(hours=1)


class SmallDisk:
    """A tmpfs of a given size at ``path``; ``resize`` frees or takes space as an operator would."""

    def __init__(self, path: Path, size_kb: int) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        mount = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0700", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if mount.returncode:
            pytest.fail(f"this test mounts a small tmpfs and needs root (mount said: {mount.stderr.strip()})")

    def resize(self, size_kb: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size_kb}k", str(self.path)], check=True)

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*") if p.is_file())

    def unmount(self) -> None:
        subprocess.run(["umount", str(self.path)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    disk = SmallDisk(tmp_path / "staging", 96)
    try:
        yield disk
    finally:
        disk.unmount()


@pytest.fixture(scope="module")
def devo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevoEmulator]:
    with DevoEmulator(tmp_path_factory.mktemp("devo")) as emulator:
        yield emulator


def test_a_fetch_that_fills_the_disk_names_it_keeps_nothing_half_written_and_completes_once_freed(
    small_disk, emulator, make_tenant, make_client
):
    tenant = make_tenant(activities=TimeSeriesConfig(segments=[Rate(6_000, (1,), to_epoch_ms(START) - 86_400_000)]))
    emulator.set_now(to_epoch_ms(END) + 7 * 86_400_000, tenant_id=tenant.tenant_id)  # every record stored by then
    client = make_client(tenant)
    window = window_dir(small_disk.path, "activities", START, END)
    records = client.fetch("activities", START, END)
    with pytest.raises(StagingFullError) as info:
        fetch_to_stage(records, window, service="activities", start=START, end=END, stats=records.stats)
    message = str(info.value)
    assert str(window) in message and "no space left on its disk" in message and "free at least" in message
    assert small_disk.files() == [], "the failed attempt left files behind"

    small_disk.resize(32 * 1024)  # the operator frees space; the task's retry runs
    records = client.fetch("activities", START, END)
    manifest, summary = fetch_to_stage(records, window, service="activities", start=START, end=END, stats=records.stats)
    expected = emulator.truth(tenant.tenant_id, "activities", to_epoch_ms(START), to_epoch_ms(END), by="created")
    assert summary.records == len(expected) > 3_000 and manifest.exists()


def test_a_ship_without_room_for_its_ledger_sends_nothing_then_delivers_each_event_once(small_disk, devo, monkeypatch):
    window = window_dir(small_disk.path, "alerts", START, END)
    small_disk.resize(8 * 1024)
    events = ({"_id": f"alert{i:06d}", "title": "Mass download", "n": i} for i in range(20_000))
    manifest, _ = fetch_to_stage(events, window, service="alerts", start=START, end=END)
    filler = small_disk.path / "filler"
    free = os.statvfs(small_disk.path).f_bavail * os.statvfs(small_disk.path).f_frsize
    filler.write_bytes(b"\0" * (free - 64 * 1024))  # 64 KB left: less than 20,000 events' ledger needs
    hook = hook_for(monkeypatch, http_connection(devo))
    tag = "casb.microsoft_defender.cloud_apps.alerts.fulldisk"
    with pytest.raises(StagingFullError, match=r"the delivery ledger of this window needs at least .* nothing was"):
        ship_stage(manifest, hook, tag=tag)
    assert devo.store.ids(tag) == []

    filler.unlink()
    summary = ship_stage(manifest, hook, tag=tag)
    assert summary.delivered == 20_000
    assert sorted(devo.store.ids(tag)) == [f"alert{i:06d}" for i in range(20_000)]
