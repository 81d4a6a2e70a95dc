"""A real Airflow run of the alerts DAG with staging on Azure storage, configured by the staging URL alone.

The DAG is the product's (the factory's, from a collector configuration); the only difference from a local run is
the staging URL, ``abfs://<connection id>@<container>/<path>``, and the ``wasb`` connection it names. Azurite, the
Azure Storage emulator, holds the staged window. Checked as a SOC engineer would: every flattened event once in Devo,
a rerun adds nothing, the window is in the container with its manifest, ledger and delivery marker, and no blob holds
a credential.
"""

from __future__ import annotations

import functools
import gzip
import json
from collections import Counter
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from airflow_provider_mdca.operators._staging import staging_path
from airflow_provider_mdca.staging import read_stage
from airflow_provider_mdca.transforms.flatten import flatten_alert
from tests.e2e.collector_dags import collector_dag, run_window
from tests.e2e.test_dag_runs import END, END_MS, START_MS, connections, devo, edged_series, tag
from tests.integration.conftest import ACCOUNT_KEY, Azurite, azurite

__all__ = ["azurite", "connections", "devo", "tag"]  # fixtures, imported for pytest

pytestmark = [pytest.mark.xdist_group("airflow-dag-test"), pytest.mark.usefixtures("airflow_db")]


@pytest.fixture
def make_tenant(make_tenant: Any) -> Any:
    """This test checks staging on Azure storage through a DAG on exact records, so each record is stored the instant
    it happens here (``time_model: instant``). MDCA's real time model (late and changing records) is
    tests/integration/test_late_records.py's and, through a real scheduler, tests/e2e/test_late_world.py's."""
    return functools.partial(make_tenant, time_model="instant")


def _blobs(azurite: Azurite, container: str) -> dict[str, bytes]:
    service = BlobServiceClient.from_connection_string(azurite.connection_string())
    client = service.get_container_client(container)
    return {blob.name: client.download_blob(blob.name).readall() for blob in client.list_blobs()}


def test_alerts_staged_on_azure_storage_by_the_url_alone_are_delivered_once(
    emulator, make_tenant, connections, devo, tag, azurite, monkeypatch
):
    tenant = make_tenant(alerts=edged_series(200))
    mdca_id, devo_id = connections(tenant)
    conn_id = f"{mdca_id}_staging"
    staging = {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string()}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(staging))
    container = tag.rsplit(".", 1)[-1].replace("_", "-").lower()
    url = f"abfs://{conn_id}@{container}/collector/staging"
    dag = collector_dag("alerts", mdca_conn_id=mdca_id, devo_conn_id=devo_id, tag=tag, staging=url)

    run = run_window(dag, END)
    assert run.state == "success"
    manifest_url = run.get_task_instance("fetch").xcom_pull(task_ids="fetch")
    assert manifest_url.startswith(f"abfs://{conn_id}@{container}/collector/staging/alerts/")

    truth = emulator.truth(tenant.tenant_id, "alerts", START_MS, END_MS)

    alerts = list(read_stage(staging_path(manifest_url)))
    assert sorted(alert["_id"] for alert in alerts) == sorted(truth)
    expected = Counter({alert["_id"]: len(flatten_alert(alert)) for alert in alerts})
    assert Counter(event["_id"] for event in devo.store.events(tag)) == expected

    assert run_window(dag, END).state == "success"  # the window again: refetched, nothing new shipped
    assert Counter(event["_id"] for event in devo.store.events(tag)) == expected

    blobs = _blobs(azurite, container)
    window = manifest_url.split(f"@{container}/", 1)[1].rsplit("/fetched/", 1)[0]
    names = {name.removeprefix(f"{window}/") for name in blobs if name.startswith(f"{window}/")}
    assert {"fetched/manifest.json", "flattened/manifest.json", "delivered.json"} <= names
    assert any(name.startswith("ledger/") for name in names)
    assert not any(name.endswith(".tmp") for name in blobs)
    secrets = [ACCOUNT_KEY, tenant.client_secret, devo.token]
    for name, data in blobs.items():
        text = gzip.decompress(data) if name.endswith(".gz") else data
        assert not [secret for secret in secrets if secret.encode() in text], name
