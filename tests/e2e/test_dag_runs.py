"""Real Airflow runs (``dag.test()``) of the collector's tasks against the emulators over real TLS sockets.

Each test runs one window of a DAG made of the provider's operators — wait for the lag, fetch, flatten (alerts),
ship, clean up — on the run's migrated SQLite database, and checks what a SOC engineer would check in Devo: every
record of the window exactly once, under the right tag; reruns that add nothing; re-ships that add everything once
more; faults that end, after Airflow's retries, in exactly once.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import json
import os
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_mdca._compat import AIRFLOW_V3
from airflow_provider_mdca.staging import read_manifest
from airflow_provider_mdca.transforms.flatten import flatten_alert
from mdca_emulator import DevoEmulator, Segment, SnapshotConfig, TenantConfig, TimeSeriesConfig
from mdca_emulator.server import EmulatorServer
from tests.e2e.collector_dags import collector_dag, run_window
from tests.service_table import ALL, SERVICE_TABLE, SNAPSHOTS, WINDOWED

pytestmark = [pytest.mark.xdist_group("airflow-dag-test"), pytest.mark.usefixtures("airflow_db")]

PERIOD = timedelta(minutes=5)
# Whole windows well in the past: the lag sensor passes at once, as in a backfill.
# A recent window: MDCA keeps about 30 days of activities, and the client refuses a window older than that.
END = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
START = END - PERIOD
START_MS, END_MS = int(START.timestamp() * 1000), int(END.timestamp() * 1000)
_numbers = itertools.count()


@pytest.fixture
def make_tenant(make_tenant: Any) -> Any:
    """These tests check each DAG's tasks on records placed on exact instants (edges, clusters, flattening), so each
    record is stored the instant it happens here (``time_model: instant``). MDCA's real time model (late and
    changing records) is tests/integration/test_late_records.py's and, through a real scheduler,
    tests/e2e/test_late_world.py's."""
    return functools.partial(make_tenant, time_model="instant")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def edged_series(count: int) -> TimeSeriesConfig:
    """``count`` records inside the window, clustered on shared timestamps, plus neighbours exactly at its edges."""
    return TimeSeriesConfig(
        segments=[
            Segment(START_MS - 60_000, START_MS, 30, (1, 3)),  # before the window
            Segment(START_MS, START_MS + 1, 4),  # exactly at the start: included
            Segment(START_MS, END_MS, count, (1, 2, 7)),
            Segment(END_MS - 1, END_MS, 3),  # the last millisecond: included
            Segment(END_MS, END_MS + 1, 5),  # exactly at the end: the next window's
        ]
    )


@pytest.fixture(scope="module")
def devo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with DevoEmulator(tmp_path_factory.mktemp("devo")) as emulator:
        yield emulator


@pytest.fixture
def tag() -> str:
    """A Devo table of its own per test (the tag override), so tests never see each other's events."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"casb.microsoft_defender.cloud_apps.e2e.{worker}n{next(_numbers)}"


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer, devo: DevoEmulator) -> Any:
    """Sets ``AIRFLOW_CONN_*`` for one tenant and the Devo HTTP endpoint; returns the conn ids."""

    def setup(tenant: TenantConfig, *, devo_transport: str = "http", **devo_extra: Any) -> tuple[str, str]:
        number = next(_numbers)
        mdca_id, devo_id = f"mdca_e2e_{number}", f"devo_e2e_{number}"
        mdca = {
            "conn_type": "mdca",
            "host": emulator.mdca_url(tenant.tenant_id),
            "login": tenant.client_id,
            "password": tenant.client_secret,
            "extra": {
                "tenant_id": tenant.tenant_id,
                "token_url": emulator.token_url,
                "files_access_token": tenant.files_access_token,
                "verify": str(emulator.ca_bundle),
                "requests_per_minute": 100_000,
                "max_retries": 2,
                "backoff_base": 0.01,
                "backoff_max": 0.05,
            },
        }
        if devo_transport == "http":
            extra = {"transport": "http", "domain": devo.domain, "verify": str(devo.ca_bundle)}
            target: dict[str, Any] = {"conn_type": "devo", "host": devo.http_url, "password": devo.token}
        else:
            cert, key = devo.client_cert()
            host, port = devo.relay_address
            extra = {"transport": "tls", "cert": str(cert), "private_key": str(key), "chain": str(devo.ca_bundle)}
            target = {"conn_type": "devo", "host": host, "port": port}
        target["extra"] = {**extra, "backoff_base": 0.01, "backoff_max": 0.05, **devo_extra}
        monkeypatch.setenv(f"AIRFLOW_CONN_{mdca_id.upper()}", json.dumps(mdca))
        monkeypatch.setenv(f"AIRFLOW_CONN_{devo_id.upper()}", json.dumps(target))
        return mdca_id, devo_id

    return setup


def assert_exactly_once(delivered: list[str], expected: list[str]) -> None:
    doubled = sorted(i for i, n in Counter(delivered).items() if n > 1)
    missing = sorted(set(expected) - set(delivered))
    unexpected = sorted(set(delivered) - set(expected))
    assert (doubled, missing, unexpected) == ([], [], [])
    assert len(delivered) == len(expected)


def staged_alerts(staging: Path) -> list[dict[str, Any]]:
    manifests = sorted(staging.glob("alerts/*/fetched/manifest.json"))
    assert len(manifests) == 1
    from airflow_provider_mdca.staging import read_stage

    return list(read_stage(manifests[0]))


@pytest.mark.parametrize("service", [name for name in ALL if not SERVICE_TABLE[name].flattened])
def test_one_window_delivers_exactly_the_window(service, emulator, make_tenant, connections, devo, tag, tmp_path):
    series = edged_series(700)
    tenant = make_tenant(**dict.fromkeys(WINDOWED, series), **{name: SnapshotConfig(count=250) for name in SNAPSHOTS})
    mdca_id, devo_id = connections(tenant)
    dag = collector_dag(service, mdca_conn_id=mdca_id, devo_conn_id=devo_id, tag=tag, staging=tmp_path)
    run = run_window(dag, END)
    assert run.state == "success"
    assert_exactly_once(devo.store.ids(tag), emulator.truth(tenant.tenant_id, service, START_MS, END_MS))
    manifest_file = next(tmp_path.glob(f"{service}/*/fetched/manifest.json"))
    manifest = read_manifest(manifest_file)
    assert (manifest.window_start, manifest.window_end) == (START.isoformat(), END.isoformat())
    assert run.get_task_instance("fetch").xcom_pull(task_ids="fetch") == f"file://{manifest_file}"
    assert_no_secret_staged(tmp_path, tenant.client_secret, tenant.files_access_token)


def assert_no_secret_staged(staging: Path, *secrets: str) -> None:
    """Staged files (parts decompressed) are owner-only and hold no credential."""
    files = [path for path in staging.rglob("*") if path.is_file()]
    assert files
    for path in files:
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        assert not any(secret.encode() in data for secret in secrets), path
        assert path.stat().st_mode & 0o077 == 0, path


def test_alerts_are_flattened_into_one_event_per_entity_combination(
    emulator, make_tenant, connections, devo, tag, tmp_path
):
    tenant = make_tenant(alerts=edged_series(300))
    mdca_id, devo_id = connections(tenant)
    dag = collector_dag("alerts", mdca_conn_id=mdca_id, devo_conn_id=devo_id, tag=tag, staging=tmp_path)
    assert run_window(dag, END).state == "success"
    truth = emulator.truth(tenant.tenant_id, "alerts", START_MS, END_MS)
    alerts = staged_alerts(tmp_path)
    assert sorted(alert["_id"] for alert in alerts) == sorted(truth)
    expected = Counter({alert["_id"]: len(flatten_alert(alert)) for alert in alerts})
    delivered = devo.store.events(tag)
    assert Counter(event["_id"] for event in delivered) == expected
    assert sum(expected.values()) > len(truth)  # some alerts really were expanded
    assert not any("entities" in event for event in delivered)
    [extra] = asset_event_extras(f"devo://{tag}")
    assert (extra["service"], extra["tag"], extra["delivered"]) == ("alerts", tag, sum(expected.values()))


def asset_event_extras(uri: str) -> list[dict[str, Any]]:
    """The extras of the Asset (Dataset on 2.11) events Airflow recorded for ``uri``."""
    from airflow.utils.session import create_session

    if AIRFLOW_V3:
        from airflow.models.asset import AssetEvent as Event
        from airflow.models.asset import AssetModel as Model

        column = Event.asset_id
    else:  # pragma: no cover - the Airflow 2.11 run
        from airflow.models.dataset import DatasetEvent as Event  # type: ignore[no-redef]
        from airflow.models.dataset import DatasetModel as Model  # type: ignore[no-redef]

        column = Event.dataset_id
    with create_session() as session:
        # Airflow 3 normalises ``devo://<table>`` to ``devo://<table>/`` (the table reads as the URI's authority).
        query = session.query(Event.extra).join(Model, column == Model.id).filter(Model.uri.in_([uri, f"{uri}/"]))
        return [dict(row[0]) for row in query.all()]


def test_a_rerun_ships_nothing_twice_and_reship_ships_once_more(
    emulator, make_tenant, connections, devo, tag, tmp_path
):
    tenant = make_tenant(activities=edged_series(400))
    mdca_id, devo_id = connections(tenant)
    dag = collector_dag("activities", mdca_conn_id=mdca_id, devo_conn_id=devo_id, tag=tag, staging=tmp_path)
    truth = emulator.truth(tenant.tenant_id, "activities", START_MS, END_MS)

    assert run_window(dag, END).state == "success"
    assert run_window(dag, END).state == "success"  # the same window again: refetched, nothing new to ship
    assert_exactly_once(devo.store.ids(tag), truth)

    assert run_window(dag, END, conf={"reship": True}).state == "success"
    assert Counter(devo.store.ids(tag)) == Counter({record_id: 2 for record_id in truth})


def test_devo_failing_mid_window_is_resumed_by_the_airflow_retry_exactly_once(
    emulator, make_tenant, connections, devo, tag, tmp_path
):
    tenant = make_tenant(activities=edged_series(3_000))
    # Small batches; two retries per batch. Batches 1-3 pass, batch 4 fails three times: the task fails with
    # DeliveryError, and Airflow's retry must resume at batch 4 without resending batches 1-3.
    mdca_id, devo_id = connections(tenant, batch_events=500, max_retries=2)
    devo.faults.update(fault_queue=["ok", "ok", "ok", "503", "503", "503"])
    dag = collector_dag("activities", mdca_conn_id=mdca_id, devo_conn_id=devo_id, tag=tag, staging=tmp_path, retries=1)
    assert run_window(dag, END).state == "success"
    truth = emulator.truth(tenant.tenant_id, "activities", START_MS, END_MS)
    assert_exactly_once(devo.store.ids(tag), truth)
    assert devo.store.count(tag) == len(truth)  # nothing was sent twice, not even acknowledged batches


def test_an_mdca_5xx_storm_beyond_the_hook_retries_is_delivered_by_the_airflow_retry(
    emulator, make_tenant, connections, devo, tag, tmp_path
):
    # The connection allows 2 retries per request: four 5xx in a row fail the fetch task, Airflow retries it.
    tenant = make_tenant(files=edged_series(900), fault_queue=["500", "502", "503", "500"])
    mdca_id, devo_id = connections(tenant)
    dag = collector_dag("files", mdca_conn_id=mdca_id, devo_conn_id=devo_id, tag=tag, staging=tmp_path, retries=1)
    assert run_window(dag, END).state == "success"
    assert_exactly_once(devo.store.ids(tag), emulator.truth(tenant.tenant_id, "files", START_MS, END_MS))


def test_a_late_record_inside_the_lag_is_delivered(emulator, make_tenant, connections, devo, tag, tmp_path):
    # A window that ends now: every 10th record is stored 4 s after its timestamp, so at the window's end some are
    # not yet visible in MDCA. The lag (8 s) makes the fetch wait for them.
    end = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2)
    start = end - timedelta(seconds=30)
    series = TimeSeriesConfig(segments=[Segment(_ms(start), _ms(end), 300)], late_every=10, late_by_ms=4_000)
    tenant = make_tenant(alerts=series)
    mdca_id, devo_id = connections(tenant)
    dag = collector_dag(
        "alerts",
        mdca_conn_id=mdca_id,
        devo_conn_id=devo_id,
        tag=tag,
        staging=tmp_path,
        period=end - start,
        lag=timedelta(seconds=8),
        flatten=False,
    )
    run = run_window(dag, end)
    assert run.state == "success"
    everything = emulator.truth(tenant.tenant_id, "alerts", _ms(start), _ms(end))
    assert len(everything) == 300
    assert_exactly_once(devo.store.ids(tag), everything)


def test_two_tenants_windows_of_one_service_are_each_delivered_once_from_their_own_staging(
    emulator, make_tenant, connections, devo, tag, tmp_path
):
    # Two MDCA tenants of a managed security provider, the same service, the same window, one staging base and one
    # Devo table: each tenant's records arrive once, marked with its customer, and neither's ledger sees the other's.
    first, second = make_tenant(activities=edged_series(300)), make_tenant(activities=edged_series(200))
    runs = {}
    for name, tenant in (("contoso", first), ("fabrikam", second)):
        mdca_id, devo_id = connections(tenant)
        dag = collector_dag(
            "activities", mdca_conn_id=mdca_id, devo_conn_id=devo_id, tag=tag, staging=tmp_path, tenant=name
        )
        runs[name] = run_window(dag, END)
    assert {name: run.state for name, run in runs.items()} == {"contoso": "success", "fabrikam": "success"}

    events = devo.store.events(tag)
    for name, tenant in (("contoso", first), ("fabrikam", second)):
        truth = emulator.truth(tenant.tenant_id, "activities", START_MS, END_MS)
        assert_exactly_once([e["_id"] for e in events if e["customer"] == name], truth)
        manifests = list((tmp_path / "tenants" / name).glob("activities/*/fetched/manifest.json"))
        assert len(manifests) == 1
        assert read_manifest(manifests[0]).record_count == len(truth)
        counts = runs[name].get_task_instance("fetch").xcom_pull(task_ids="fetch", key="mdca_stats")
        assert counts["fetched"] == len(truth) and counts["requests"] >= 1
    assert len(events) == len(emulator.truth(first.tenant_id, "activities", START_MS, END_MS)) + len(
        emulator.truth(second.tenant_id, "activities", START_MS, END_MS)
    )
    assert not list(tmp_path.glob("activities/*"))  # nothing staged outside the tenants' folders
