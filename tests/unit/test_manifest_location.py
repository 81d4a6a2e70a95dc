"""A flatten or ship task reads only a manifest under its staging base, whatever XCom says (issue 14, item 15)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_mdca.operators import devo, flatten
from airflow_provider_mdca.operators._staging import staged_location, staging_base, staging_path
from airflow_provider_mdca.operators.devo import DevoShipOperator
from airflow_provider_mdca.operators.flatten import MdcaFlattenAlertsOperator
from airflow_provider_mdca.staging import StagingError
from airflow_provider_mdca.staging.errors import display_location

MANIFEST = "alerts/20261128T120000Z_20261128T120500Z/fetched/manifest.json"


@pytest.mark.parametrize(
    ("location", "base", "conn_id"),
    [
        (f"file:///srv/mdca/{MANIFEST}", "file:///srv/mdca", None),
        (f"file:///srv/mdca/{MANIFEST}", "file:///srv/mdca/", None),
        (f"/srv/mdca/{MANIFEST}", "/srv/mdca", None),
        (f"abfs://mdca_staging@container/staging/{MANIFEST}", "abfs://mdca_staging@container/staging", None),
        (f"abfs://container/staging/{MANIFEST}", "abfs://container/staging", "mdca_staging"),
        (f"abfs://mdca_staging@container/staging/{MANIFEST}", "abfs://container/staging", "mdca_staging"),
    ],
)
def test_a_manifest_under_the_staging_base_is_read(location, base, conn_id):
    path = staged_location(location, base, conn_id)
    assert str(path).endswith(MANIFEST)


@pytest.mark.parametrize(
    ("location", "base", "reason"),
    [
        (f"file:///srv/other/{MANIFEST}", "file:///srv/mdca", "its path is not under /srv/mdca/"),
        (f"file:///srv/mdca-evil/{MANIFEST}", "file:///srv/mdca", "its path is not under /srv/mdca/"),
        (f"file:///srv/mdca/../other/{MANIFEST}", "file:///srv/mdca", "'.' or '..' segments"),
        (f"file:///srv/mdca/./alerts/../../etc/{MANIFEST}", "file:///srv/mdca", "'.' or '..' segments"),
        ("file:///srv/mdca", "file:///srv/mdca", "its path is not under /srv/mdca/"),
        (f"memory://srv/mdca/{MANIFEST}", "file:///srv/mdca", "its scheme 'memory' is not the base's 'file'"),
        (
            f"abfs://mdca_staging@container/staging/{MANIFEST}",
            "file:///srv/mdca",
            "its scheme 'abfs' is not the base's 'file'",
        ),
        (
            f"abfs://mdca_staging@other/staging/{MANIFEST}",
            "abfs://mdca_staging@container/staging",
            "its container or account 'other' is not the base's 'container'",
        ),
        (
            f"abfs://attacker@container/staging/{MANIFEST}",
            "abfs://mdca_staging@container/staging",
            "its connection 'attacker' is not the base's 'mdca_staging'",
        ),
        (
            f"abfs://mdca_staging@container/elsewhere/{MANIFEST}",
            "abfs://mdca_staging@container/staging",
            "its path is not under /staging/",
        ),
        (
            f"abfss://mdca_staging@container/staging/{MANIFEST}",
            "abfs://mdca_staging@container/staging",
            "its scheme 'abfss' is not the base's 'abfs'",
        ),
    ],
    ids=lambda v: v.split("://")[0] if "://" in v else v[:30],
)
def test_a_manifest_elsewhere_is_refused_naming_it_the_base_and_why(location, base, reason):
    with pytest.raises(StagingError, match="not under the configured staging base") as refused:
        staged_location(location, base)
    shown = str(refused.value)
    assert display_location(staging_base(base, None)) in shown
    assert shown.startswith(display_location(staging_path(location)) + ": ")
    assert reason in shown


def test_the_refusal_shows_no_credential():
    secret = "sig=c2VjcmV0LXNhcy10b2tlbg%3D%3D"
    with pytest.raises(StagingError) as refused:
        staged_location(f"abfs://conn@other/x/{MANIFEST}?{secret}", "abfs://conn@container/staging")
    assert "c2VjcmV0" not in str(refused.value)


def test_the_default_base_is_the_configured_staging(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW__MDCA__STAGING_URL", (tmp_path / "staging").as_uri())
    assert str(staged_location(f"{tmp_path}/staging/{MANIFEST}", None)).endswith(MANIFEST)
    with pytest.raises(StagingError, match=f"staging base {(tmp_path / 'staging').as_uri()}"):
        staged_location(f"{tmp_path}/elsewhere/{MANIFEST}", None)


@pytest.fixture
def no_secrets_read(monkeypatch):
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a secret or a connection was read before the manifest location was checked")

    monkeypatch.setattr(devo, "build_obfuscator", refuse)
    monkeypatch.setattr(flatten, "build_obfuscator", refuse)
    monkeypatch.setattr(devo, "DevoHook", refuse)


def test_the_ship_task_refuses_a_manifest_of_another_storage_before_reading_any_secret(no_secrets_read, tmp_path):
    ship = DevoShipOperator(
        task_id="ship",
        service="alerts",
        manifest=f"abfs://thief@theirs/x/{MANIFEST}",
        staging_url=(tmp_path / "staging").as_uri(),
        obfuscation=["user.userName"],
        obfuscation_key_variable="mdca_obfuscation_secret",
    )
    with pytest.raises(StagingError, match=f"staging base {(tmp_path / 'staging').as_uri()}"):
        ship.execute({"params": {}, "run_id": "r", "ti": None})


def test_the_flatten_task_refuses_a_manifest_outside_the_base(no_secrets_read, tmp_path: Path):
    task = MdcaFlattenAlertsOperator(
        task_id="flatten",
        manifest=f"{tmp_path}/staging/../other/{MANIFEST}",
        staging_url=str(tmp_path / "staging"),
        obfuscation=["user.userName"],
        obfuscation_key_variable="mdca_obfuscation_secret",
    )
    with pytest.raises(StagingError, match="not under the configured staging base"):
        task.execute({})
