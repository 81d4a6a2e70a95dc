"""Many tenants in one collector config: each tenant's DAGs, pool and connections, and every collision named."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from airflow_provider_mdca.config import load_collector_config, parse_collector_config
from airflow_provider_mdca.errors import InitVariablesError
from airflow_provider_mdca.services import SERVICES

START = "2026-01-01T00:00:00Z"


def tenant_file(tenants, defaults=None, services=None):
    return {
        "defaults": {"historic_date_utc": START, **(defaults or {})},
        "services": services or {},
        "tenants": tenants,
    }


def problem_of(data) -> str:
    with pytest.raises(InitVariablesError) as info:
        parse_collector_config(data)
    return str(info.value)


TWO_TENANTS = {
    "contoso": {"mdca_conn_id": "mdca_contoso", "devo_conn_id": "devo_contoso", "extra_fields": {"customer": "c"}},
    "fabrikam": {
        "mdca_conn_id": "mdca_fabrikam",
        "dag_id_prefix": "fab_",
        "pool": "fabrikam_api",
        "services": {"files": {"enabled": False}, "alerts": {"tag": "my.app.fabrikam.alerts", "period": "10m"}},
    },
}


def test_each_tenant_gets_a_dag_per_enabled_service_with_its_own_connections_pool_and_prefix():
    config = parse_collector_config(
        tenant_file(TWO_TENANTS, defaults={"extra_fields": {"env": "prod"}}, services={"alerts": {"period": "15m"}})
    )

    dags = {service.dag_id: service for service in config.dag_configs}
    contoso = {f"contoso_mdca_{name}" for name in SERVICES}
    fabrikam = {f"fab_mdca_{name}" for name in SERVICES if name != "files"}
    assert set(dags) == contoso | fabrikam

    alerts = dags["contoso_mdca_alerts"]
    assert (alerts.tenant, alerts.label) == ("contoso", "contoso/alerts")
    assert (alerts.mdca_conn_id, alerts.devo_conn_id) == ("mdca_contoso", "devo_contoso")
    # The file's shared pool becomes the tenant's own: each MDCA tenant has its own 30 requests a minute.
    assert {dags[f"contoso_mdca_{name}"].pool for name in SERVICES} == {"mdca_api_contoso"}
    assert {service.pool for service in dags.values() if service.tenant == "fabrikam"} == {"fabrikam_api"}
    # The tenant's extra_fields replace the file's, as a service's do; the file's service settings still apply.
    assert dict(alerts.extra_fields) == {"customer": "c"}
    assert alerts.period == timedelta(minutes=15)
    assert alerts.tag == SERVICES["alerts"].devo_table
    assert "contoso" in alerts.tags

    fab_alerts = dags["fab_mdca_alerts"]
    assert fab_alerts.period == timedelta(minutes=10)  # the tenant's service setting wins over the file's
    assert fab_alerts.tag == "my.app.fabrikam.alerts"
    assert dict(fab_alerts.extra_fields) == {"env": "prod"}
    assert fab_alerts.devo_conn_id == "devo_default"


def test_a_single_tenant_file_is_unchanged():
    config = parse_collector_config({"defaults": {"historic_date_utc": START}})
    assert config.tenants == {}
    assert [service.dag_id for service in config.dag_configs] == [f"mdca_{name}" for name in SERVICES]
    assert {service.pool for service in config.dag_configs} == {"mdca_api"}
    assert {service.tenant for service in config.dag_configs} == {None}


def test_a_tenant_must_name_its_own_mdca_connection():
    problem = problem_of(tenant_file({"contoso": {"devo_conn_id": "devo_c"}}))
    assert "tenants.contoso.mdca_conn_id: required" in problem


def test_the_mdca_connection_may_be_set_per_service_of_the_tenant():
    services = {name: {"mdca_conn_id": f"mdca_{name}"} for name in SERVICES}
    config = parse_collector_config(tenant_file({"contoso": {"services": services}}))
    assert {s.mdca_conn_id for s in config.dag_configs} == {f"mdca_{name}" for name in SERVICES}


def test_two_tenants_cannot_share_an_mdca_connection_or_a_dag_id():
    shared = problem_of(tenant_file({"a": {"mdca_conn_id": "mdca_x"}, "b": {"mdca_conn_id": "mdca_x"}}))
    assert "tenants.b.mdca_conn_id: 'mdca_x' is tenant a's too" in shared

    same_prefix = {
        "a": {"mdca_conn_id": "m_a", "dag_id_prefix": "x_"},
        "b": {"mdca_conn_id": "m_b", "dag_id_prefix": "x_"},
    }
    assert "tenants.b.dag_id_prefix: the DAG id x_mdca_activities is tenant a's too" in problem_of(
        tenant_file(same_prefix)
    )


@pytest.mark.parametrize(
    ("tenants", "expected"),
    [
        ({"bad name": {"mdca_conn_id": "m"}}, "tenants: expected a tenant name"),
        ({"a": {"mdca_conn_id": "m", "colour": "red"}}, "tenants.a.colour: unknown key"),
        ({"a": {"mdca_conn_id": "m", "services": {"alertz": {}}}}, "tenants.a.services.alertz: unknown service"),
        ({"a": {"mdca_conn_id": "m", "period": "soon"}}, "tenants.a.period: expected"),
        ({"a": {"mdca_conn_id": "m", "dag_id_prefix": "a b"}}, "tenants.a.dag_id_prefix: expected a DAG id prefix"),
        ({"a": {"mdca_conn_id": "m", "max_events_per_alert": 5}}, "tenants.a.max_events_per_alert: applies to alerts"),
        (
            {"a": {"mdca_conn_id": "m", "services": {"files": {"flatten": True}}}},
            "tenants.a.services.files.flatten: only alerts are flattened",
        ),
        ({}, "tenants: "),
        ({"default": {"mdca_conn_id": "m"}}, "tenants.default: the name 'default' stands for a single-tenant"),
    ],
)
def test_bad_tenant_sections_are_named_by_their_key_path(tenants, expected):
    assert expected in problem_of(tenant_file(tenants))


def test_a_tenant_section_that_is_not_a_mapping_is_a_structural_error():
    with pytest.raises(InitVariablesError) as info:
        parse_collector_config(tenant_file({"a": ["mdca_conn_id"]}))
    assert info.value.code == 3
    assert "tenants.a: expected a mapping" in str(info.value)


def test_show_config_output_of_a_tenant_file_loads_again_to_the_same_settings(tmp_path: Path):
    config = parse_collector_config(tenant_file(TWO_TENANTS))
    path = tmp_path / "effective.yaml"
    path.write_text(yaml.safe_dump(config.as_dict(), sort_keys=False), encoding="utf-8")

    again = load_collector_config(path)

    assert {s.dag_id: s for s in again.dag_configs} == {s.dag_id: s for s in config.dag_configs}


def test_an_empty_tenant_entry_is_refused_for_its_missing_connection():
    assert "tenants.contoso.mdca_conn_id: required" in problem_of(tenant_file({"contoso": None}))
