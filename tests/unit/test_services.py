"""The service registry says what the tests' service table expects of every service, and nothing more."""

from __future__ import annotations

import pytest

from airflow_provider_mdca.services import SERVICES, Paging, get_service
from tests.service_table import ALL, SERVICE_TABLE


def test_the_registry_holds_exactly_the_tables_services_in_order():
    assert tuple(SERVICES) == ALL == tuple(sorted(ALL))


@pytest.mark.parametrize("name", ALL)
def test_each_service_is_what_the_table_says(name):
    service, expected = SERVICES[name], SERVICE_TABLE[name]
    assert (service.endpoint, service.filter_field, service.time_field) == (
        expected.endpoint,
        expected.filter_field,
        expected.time_field,
    )
    assert (service.auth.value, service.paging.value, service.windowed) == (
        expected.auth,
        expected.paging,
        expected.windowed,
    )
    assert (service.default_period, service.default_lag, service.flattened) == (
        expected.default_period,
        expected.default_lag,
        expected.flattened,
    )
    assert service.devo_table == expected.devo_table
    assert (service.sort_field, service.retention, service.changes_filter, service.event_time_field) == (
        expected.sort_field,
        expected.retention,
        expected.changes_filter,
        expected.event_time_field,
    )


def test_page_sizes_are_mdcas_documented_limits():
    assert Paging.SCAN.page_sizes == (500, 5000) and Paging.SCAN.max_page_size == 5000
    assert Paging.SORTED_SKIP.page_sizes == Paging.SNAPSHOT.page_sizes == (1, 100)


def test_an_unknown_service_names_the_valid_ones():
    with pytest.raises(KeyError, match=f"unknown MDCA service 'no_such_service'; expected one of {', '.join(ALL)}"):
        get_service("no_such_service")
