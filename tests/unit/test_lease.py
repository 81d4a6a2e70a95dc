"""One shipper per window: the lease a ship holds while it sends (real files, threads as concurrent tasks)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from airflow_provider_mdca.staging import StagingError
from airflow_provider_mdca.staging.lease import LEASE_NAME, LeaseLost, WindowLease


def test_a_second_shipper_waits_until_the_first_releases_the_window(tmp_path: Path) -> None:
    order: list[str] = []
    first = WindowLease(tmp_path, settle=0.01, poll=0.01)
    first.acquire()
    order.append("first holds")

    def second() -> None:
        with WindowLease(tmp_path, settle=0.01, poll=0.01):
            order.append("second holds")

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.3)
    order.append("first releases")
    first.release()
    thread.join(timeout=10)
    assert order == ["first holds", "first releases", "second holds"]
    assert not (tmp_path / LEASE_NAME).exists()


def test_a_killed_holders_lease_expires_and_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / LEASE_NAME).write_text(json.dumps({"owner": "killed", "expires_at": time.time() - 1}))
    with WindowLease(tmp_path, settle=0.01) as lease:
        assert json.loads((tmp_path / LEASE_NAME).read_text())["owner"] == lease.owner
    (tmp_path / LEASE_NAME).write_text("{half written")
    with WindowLease(tmp_path, settle=0.01):
        pass


def test_a_live_lease_held_too_long_is_a_staging_error_for_the_retry(tmp_path: Path) -> None:
    (tmp_path / LEASE_NAME).write_text(json.dumps({"owner": "other", "expires_at": time.time() + 600}))
    with pytest.raises(StagingError, match="another ship of this window holds its lease"):
        WindowLease(tmp_path, wait=0.2, settle=0.01, poll=0.05).acquire()


def test_a_holder_that_lost_its_lease_sends_nothing_more(tmp_path: Path) -> None:
    lease = WindowLease(tmp_path, ttl=0.3, settle=0.01)
    lease.acquire()
    (tmp_path / LEASE_NAME).write_text(json.dumps({"owner": "thief", "expires_at": time.time() + 60}))
    time.sleep(0.3)  # a renewal notices
    with pytest.raises(LeaseLost):
        lease.check()
    lease.release()
    assert json.loads((tmp_path / LEASE_NAME).read_text())["owner"] == "thief"  # not ours to remove


def test_two_takers_at_once_end_with_exactly_one_holder(tmp_path: Path) -> None:
    holders: list[str] = []
    barrier = threading.Barrier(4)

    def take() -> None:
        lease = WindowLease(tmp_path, settle=0.2, poll=0.05, wait=0.1)
        barrier.wait()
        try:
            lease.acquire()
        except StagingError:
            return
        holders.append(lease.owner)  # kept: never released

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(holders) == 1
