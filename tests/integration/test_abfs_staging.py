"""Staging shared through Azure storage (``abfs://``), against Azurite, across processes as Airflow runs tasks.

The fetch step stages a window from the MDCA emulator in one process; the ship step reads it in another and delivers
it to the Devo emulator; a second ship process finds everything in the ledger on blob storage; the retention
clean-up removes delivered windows from the container and never an undelivered one. Throughout, the storage account
key (and so the connection string) appears in no staged blob, no log line and no error message.

The staging connection is a ``wasb`` connection whose extra holds a connection string: Azurite speaks plain http,
which only a connection string can express to adlfs (the ``account_name`` extra always means https).
"""

from __future__ import annotations

import functools
import gzip
import itertools
import json
import logging
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from airflow_provider_mdca.operators._staging import staging_base, staging_path
from airflow_provider_mdca.pipeline import fetch_to_stage
from airflow_provider_mdca.staging import DELIVERED_NAME, format_timestamp, window_dir
from mdca_emulator import DevoEmulator, Segment, TenantConfig, TimeSeriesConfig
from mdca_emulator.server import EmulatorServer
from tests.integration.conftest import ACCOUNT_KEY, ROOT, Azurite

pytestmark = pytest.mark.xdist_group("azurite")  # one Azurite, and the processes' imports, on one worker

PERIOD = timedelta(minutes=5)
# A recent window: MDCA keeps about 30 days of activities, and the client refuses a window older than that.
END = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
START = END - PERIOD
EARLIER = START - PERIOD
SERVICE = "activities"
BASE = "collector/staging"  # a folder inside the container, as a shared container would have
_numbers = itertools.count()
# A key another account might have: well-formed, and not Azurite's.
WRONG_KEY = "QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QmFkS2V5QQ=="


@pytest.fixture
def make_tenant(make_tenant: Any) -> Any:
    """These tests are about staging on Azure storage and count exact records, so each record is stored the instant it
    happens here (``time_model: instant``). MDCA's real time model (late and changing records) is
    tests/integration/test_late_records.py's."""
    return functools.partial(make_tenant, time_model="instant")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _window_name(start: datetime, end: datetime) -> str:
    return f"{format_timestamp(start)}_{format_timestamp(end)}"


def _secret_forms(key: str) -> list[str]:
    # The key as written, URL-quoted (as it would be in a query string), and a prefix (a cut-off message).
    return [key, quote(key, safe=""), key[:16]]


def fetch(start: datetime, end: datetime, **args: Any) -> tuple[str, dict[str, Any]]:
    return "fetch", {"start": start.isoformat(), "end": end.isoformat(), **args}


def ship(manifest: str) -> tuple[str, dict[str, Any]]:
    return "ship", {"manifest": manifest}


def cleanup(retention: timedelta) -> tuple[str, dict[str, Any]]:
    return "cleanup", {"retention_seconds": retention.total_seconds()}


def read(manifest: str) -> tuple[str, dict[str, Any]]:
    return "read", {"manifest": manifest}


@dataclass
class Process:
    """One task process: its exit code, the result of each of its steps, and everything it printed."""

    returncode: int
    results: list[dict[str, Any]]
    stdout: str
    stderr: str


@dataclass
class Deployment:
    """One container on Azurite, the connections of one tenant and one Devo table, as every task process sees them."""

    azurite: Azurite
    container: str
    staging_conn_id: str
    wrong_key_conn_id: str  # the same account with another key, as after a key rotation
    mdca_conn_id: str
    devo_conn_id: str
    tag: str
    env: dict[str, str]
    processes: list[Process] = field(default_factory=list)

    @property
    def staging_url(self) -> str:
        return f"abfs://{self.container}/{BASE}"

    def run(self, *steps: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """Run task steps, in order, in a new process of this venv's Python; returns each step's result.

        The process's output is kept for the leak checks, and :meth:`log` shows it when an assertion fails.
        """
        common = {"staging_url": self.staging_url, "staging_conn_id": self.staging_conn_id, "service": SERVICE}
        common.update(mdca_conn_id=self.mdca_conn_id, devo_conn_id=self.devo_conn_id, tag=self.tag)
        plan = [[name, {**common, **args}] for name, args in steps]
        process = subprocess.run(
            [sys.executable, "-m", "tests.integration.abfs_tasks", json.dumps(plan)],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        results = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
        self.processes.append(Process(process.returncode, results, process.stdout, process.stderr))
        assert len(results) == len(steps), self.log()
        return results

    def log(self) -> str:
        """The end of the last process's log, for assertion messages."""
        return self.processes[-1].stderr[-6000:] if self.processes else ""

    def blobs(self) -> dict[str, bytes]:
        """Every blob of the container with its content (parts decompressed), read straight from Azurite."""
        container = self.container_client()
        if not container.exists():
            return {}
        found = {}
        for blob in container.list_blobs():
            data = container.download_blob(blob.name).readall()
            found[blob.name] = gzip.decompress(data) if blob.name.endswith(".gz") else data
        return found

    def container_client(self) -> ContainerClient:
        # The test's own look at the container: the SDK's request log (INFO) would only bury a failure's report.
        logging.getLogger("azure").setLevel(logging.WARNING)
        service = BlobServiceClient.from_connection_string(self.azurite.connection_string())
        return service.get_container_client(self.container)

    def window_blobs(self, start: datetime, end: datetime) -> dict[str, bytes]:
        prefix = f"{BASE}/{SERVICE}/{_window_name(start, end)}/"
        return {name: data for name, data in self.blobs().items() if name.startswith(prefix)}

    def assert_no_secret(self, *extra: str, staged: bool = True) -> None:
        """No staged blob, no step's output (logs at INFO, tracebacks, results) holds the key or ``extra``."""
        secrets = [*_secret_forms(ACCOUNT_KEY), *_secret_forms(WRONG_KEY), *extra]
        blobs = self.blobs()
        assert bool(blobs) == staged
        for name, data in blobs.items():
            assert not [secret for secret in secrets if secret.encode() in data], name
        assert self.processes
        for process in self.processes:
            for stream in (process.stdout, process.stderr):
                assert not [secret for secret in secrets if secret in stream], stream[-2000:]


@pytest.fixture(scope="module")
def devo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevoEmulator]:
    with DevoEmulator(tmp_path_factory.mktemp("devo")) as emulator:
        yield emulator


@pytest.fixture
def deploy(azurite: Azurite, emulator: EmulatorServer, devo: DevoEmulator) -> Any:
    """Connections (``AIRFLOW_CONN_*`` in the task processes' environment only) for a tenant, on a new container."""

    def make(tenant: TenantConfig, *, request_log: bool = False) -> Deployment:
        number = next(_numbers)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        ids = {name: f"{name}_abfs_{number}" for name in ("staging", "wrong_key", "mdca", "devo")}
        staging = {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string()}}
        wrong = {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string(WRONG_KEY)}}
        mdca = {
            "conn_type": "mdca",
            "host": emulator.mdca_url(tenant.tenant_id),
            "login": tenant.client_id,
            "password": tenant.client_secret,
            "extra": {
                "tenant_id": tenant.tenant_id,
                "token_url": emulator.token_url,
                "verify": str(emulator.ca_bundle),
                "requests_per_minute": 100_000,
                "backoff_base": 0.01,
                "backoff_max": 0.05,
            },
        }
        target = {
            "conn_type": "devo",
            "host": devo.http_url,
            "password": devo.token,
            "extra": {"transport": "http", "domain": devo.domain, "verify": str(devo.ca_bundle)},
        }
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("AZURE_HTTP_LOGGING_LEVEL", None)
        if request_log:  # the Azure SDK's log of every request, headers included, which staging quiets by default
            env["AZURE_HTTP_LOGGING_LEVEL"] = "INFO"
        for name, conn in (("staging", staging), ("wrong_key", wrong), ("mdca", mdca), ("devo", target)):
            env[f"AIRFLOW_CONN_{ids[name].upper()}"] = json.dumps(conn)
        return Deployment(
            azurite=azurite,
            container=f"mdca-{worker}-{number}".lower(),
            staging_conn_id=ids["staging"],
            wrong_key_conn_id=ids["wrong_key"],
            mdca_conn_id=ids["mdca"],
            devo_conn_id=ids["devo"],
            tag=f"casb.microsoft_defender.cloud_apps.abfs.{worker}n{number}",
            env=env,
        )

    return make


def series(*windows: tuple[datetime, datetime, int]) -> TimeSeriesConfig:
    """``count`` records in each window, clustered on shared timestamps, plus neighbours just outside them."""
    first, last = min(w[0] for w in windows), max(w[1] for w in windows)
    return TimeSeriesConfig(
        segments=[
            Segment(_ms(first) - 60_000, _ms(first), 20),
            *(Segment(_ms(start), _ms(end), count, (1, 2, 5)) for start, end, count in windows),
            Segment(_ms(last), _ms(last) + 1, 4),
        ]
    )


def assert_exactly_once(delivered: list[str], expected: list[str]) -> None:
    doubled = sorted(i for i, n in Counter(delivered).items() if n > 1)
    assert (doubled, sorted(set(expected) - set(delivered)), sorted(set(delivered) - set(expected))) == ([], [], [])
    assert len(delivered) == len(expected)


# --- the URL -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["abfs://staging@account.dfs.core.windows.net/mdca", "abfss://staging@account.blob.core.windows.net/mdca"],
    ids=["abfs-dfs-host", "abfss-blob-host"],
)
def test_a_url_naming_the_account_host_is_refused_with_the_form_to_use(url):
    # Airflow would read "staging" as a connection id and the host as the container; the account is the connection's.
    with pytest.raises(ValueError, match=r"://<container>/<path> and put the account in the staging connection"):
        staging_base(url, "azure_staging")


def test_the_container_form_keeps_the_connection_id_in_the_manifest_location():
    path = staging_path("abfs://staging/mdca/activities", "azure_staging")
    assert (path.protocol, str(path)) == ("abfs", "abfs://azure_staging@staging/mdca/activities")
    # What XCom carries reads back to the same place, with or without the operator's staging_conn_id.
    assert str(staging_path(str(path))) == str(staging_path(str(path), "azure_staging")) == str(path)


# --- across processes ----------------------------------------------------------------------------------------------


def test_fetch_and_ship_in_other_processes_deliver_each_record_once(make_tenant, emulator, deploy, devo):
    tenant = make_tenant(activities=series((START, END, 700)))
    site = deploy(tenant, request_log=True)
    assert not site.container_client().exists()  # staging creates its container
    (fetched,) = site.run(fetch(START, END, max_part_bytes=60_000))
    window = f"{BASE}/{SERVICE}/{_window_name(START, END)}"
    manifest = fetched.get("manifest")
    assert manifest == f"abfs://{site.staging_conn_id}@{site.container}/{window}/fetched/manifest.json", site.log()
    staged = site.blobs()
    parts = sorted(name for name in staged if name.endswith(".ndjson.gz"))
    assert len(parts) == fetched["parts"] > 1
    assert sorted(staged) == sorted([*parts, f"{window}/fetched/manifest.json"])  # no temporary blob left behind

    truth = emulator.truth(tenant.tenant_id, SERVICE, _ms(START), _ms(END))
    (shipped,) = site.run(ship(manifest))
    assert (shipped.get("staged"), shipped.get("delivered")) == (len(truth), len(truth)), site.log()
    assert_exactly_once(devo.store.ids(site.tag), truth)

    (again,) = site.run(ship(manifest))  # a rerun, on another worker: the ledger on blob storage says it all
    assert again.get("delivered") == 0, site.log()
    assert (again["skipped_delivered_before"], again["parts_skipped"]) == (len(truth), len(parts))
    assert_exactly_once(devo.store.ids(site.tag), truth)

    names = sorted(site.window_blobs(START, END))
    assert f"{window}/delivered.json" in names
    ledger = [name for name in names if name.startswith(f"{window}/ledger/")]
    assert sum(name.endswith(".part.json") for name in ledger) == len(parts)  # the first ship's only
    assert all("http_logging_policy" in process.stderr for process in site.processes)  # every request, logged
    site.assert_no_secret(tenant.client_secret, devo.token)


def test_retention_removes_delivered_windows_from_the_container_and_never_an_undelivered_one(
    make_tenant, emulator, deploy, devo
):
    tenant = make_tenant(activities=series((EARLIER, START, 300), (START, END, 300)))
    site = deploy(tenant)
    earlier, later = site.run(fetch(EARLIER, START), fetch(START, END))
    assert "error" not in earlier and "error" not in later, site.log()
    (shipped,) = site.run(ship(earlier["manifest"]))
    assert shipped.get("delivered") == 300, site.log()
    undelivered = site.window_blobs(START, END)
    assert undelivered and site.window_blobs(EARLIER, START)

    # Delivered moments ago: kept for a day's retention; with none, removed once; then nothing left to remove.
    kept, cleaned, idle = site.run(cleanup(timedelta(days=1)), cleanup(timedelta(0)), cleanup(timedelta(0)))
    assert (kept, cleaned, idle) == ({"removed": 0}, {"removed": 1}, {"removed": 0}), site.log()
    assert site.window_blobs(EARLIER, START) == {}
    assert site.window_blobs(START, END) == undelivered  # untouched, byte for byte

    # The manifest's location as written by hand (no connection id in it): the operator's staging_conn_id serves.
    manifest = f"abfs://{site.container}/{BASE}/{SERVICE}/{_window_name(START, END)}/fetched/manifest.json"
    shipped, cleaned = site.run(ship(manifest), cleanup(timedelta(0)))  # clean-up right after, in the same process
    assert (shipped.get("delivered"), cleaned) == (300, {"removed": 1}), site.log()
    assert_exactly_once(devo.store.ids(site.tag), emulator.truth(tenant.tenant_id, SERVICE, _ms(EARLIER), _ms(END)))
    assert site.blobs() == {}
    site.assert_no_secret(tenant.client_secret, devo.token, staged=False)


def test_staging_errors_on_blob_storage_name_the_blob_and_keep_the_window_and_the_key_secret(make_tenant, deploy, devo):
    tenant = make_tenant(activities=series((START, END, 300)))
    site = deploy(tenant)
    (fetched,) = site.run(fetch(START, END, max_part_bytes=20_000))
    assert "manifest" in fetched, site.log()
    window = f"{BASE}/{SERVICE}/{_window_name(START, END)}"
    part = f"{window}/fetched/part-00000.ndjson.gz"
    site.container_client().upload_blob(part, gzip.compress(b'{"_id": "forged"}\n'), overwrite=True)

    missing = f"abfs://{site.container}/{window}/flattened/manifest.json"
    shipped, cleaned, read_back, refused = site.run(
        ship(fetched["manifest"]),
        cleanup(timedelta(0)),
        read(missing),
        fetch(START, END, staging_conn_id=site.wrong_key_conn_id),
    )
    assert shipped.get("error") == "StagingError", site.log()
    assert shipped["message"].startswith(
        f"abfs://{site.container}/{part}: part part-00000.ndjson.gz: sha256 mismatch: the manifest says "
    )
    assert "Traceback" in site.log() and "StagingError" in site.log()  # as the task log would show it
    assert "http_logging_policy" not in site.log()  # the SDK's request log stays off unless asked for
    assert devo.store.ids(site.tag) == []
    assert cleaned == {"removed": 0}  # not delivered: retention keeps it, however old
    assert f"{window}/delivered.json" not in site.blobs() and part in site.window_blobs(START, END)
    assert read_back == {"error": "StagingError", "message": f"{missing}: manifest not found"}
    # A key the account refuses stops the fetch before it writes (restaging must remove the old markers first).
    assert refused.get("error") == "HttpResponseError" and "AuthorizationFailure" in refused["message"], refused
    assert site.processes[-1].returncode == 1
    site.assert_no_secret(tenant.client_secret, devo.token)


# --- failures on an object store, without one -----------------------------------------------------------------------


class _Unreachable(Exception):
    """What an object store's SDK raises when the network fails: not an OSError."""


class _FlakyPath(type(Path())):  # type: ignore[misc]
    """A local path whose existence checks and deletions of chosen names fail as an unreachable store's do."""

    failing: tuple[str, ...] = ()

    def exists(self, *args: Any, **kwargs: Any) -> bool:
        if self.name.startswith(self.failing):
            raise _Unreachable(self.name)
        return bool(super().exists(*args, **kwargs))

    def unlink(self, missing_ok: bool = False) -> None:
        if self.name.startswith(self.failing):
            raise _Unreachable(self.name)
        super().unlink(missing_ok=missing_ok)


def test_a_failing_clean_up_never_hides_why_the_fetch_failed(tmp_path, monkeypatch):
    def broken() -> Iterator[dict[str, Any]]:
        yield from ({"_id": f"r{i}", "pad": "x" * 100} for i in range(50))
        raise ConnectionError("MDCA went away")

    monkeypatch.setattr(_FlakyPath, "failing", (".part-", "part-"))
    window = window_dir(_FlakyPath(tmp_path), SERVICE, START, END)
    with pytest.raises(ConnectionError, match="MDCA went away"):
        fetch_to_stage(broken(), window, service=SERVICE, start=START, end=END, max_part_bytes=1_000)


def test_restaging_stops_when_the_old_delivery_marker_cannot_be_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(_FlakyPath, "failing", (DELIVERED_NAME,))
    window = window_dir(_FlakyPath(tmp_path), SERVICE, START, END)
    with pytest.raises(_Unreachable):
        fetch_to_stage(iter([{"_id": "r1"}]), window, service=SERVICE, start=START, end=END)
