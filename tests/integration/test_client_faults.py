"""Auth, throttling, faults and TLS against the emulator: complete results, or the right error and no secret."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_mdca.client import MdcaClient
from airflow_provider_mdca.errors import PullError, SetupError
from mdca_emulator import Segment, TimeSeriesConfig
from tests.conftest import client_config

from .test_client_windows import END, END_MS, START, START_MS, assert_exactly, fetch_ids, fetch_ids_and_stats

SECRET_NEEDLES = ("emu~",)  # every emulated client secret starts with this


def data(count: int = 2_000) -> TimeSeriesConfig:
    return TimeSeriesConfig(segments=[Segment(START_MS, END_MS, count, (1, 2, 9))])


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in (*secrets, *SECRET_NEEDLES):
        assert secret not in text


def test_tokens_revoked_mid_window_are_refreshed_once_and_nothing_is_lost(emulator, make_tenant, make_client):
    tenant = make_tenant(alerts=data(1_000), revoke_tokens_after=3)
    client = make_client(tenant)
    got, stats = fetch_ids_and_stats(client, "alerts")
    assert_exactly(got, emulator.truth(tenant.tenant_id, "alerts", START_MS, END_MS))
    # Each revocation costs exactly one 401 and one forced refresh, never a failed window.
    assert stats.token_refreshes >= 1
    assert emulator.stats(tenant.tenant_id)["4xx"] == stats.token_refreshes


def test_short_lived_tokens_are_renewed_before_they_expire(emulator, make_tenant, make_client):
    tenant = make_tenant(alerts=data(500), token_lifetime_seconds=1)
    client = make_client(tenant)
    got, stats = fetch_ids_and_stats(client, "alerts")
    assert_exactly(got, emulator.truth(tenant.tenant_id, "alerts", START_MS, END_MS))
    assert stats.token_refreshes == 0  # MSAL renewed them; the API never had to say 401


@pytest.mark.parametrize("style", ["seconds", "http-date", "absent"])
def test_a_429_storm_is_waited_out(emulator, make_tenant, make_client, style):
    tenant = make_tenant(activities=data(), retry_after_style=style, fault_queue=["429", "429", "429-no-retry-after"])
    client = make_client(tenant, max_throttle_retries=5)
    got, stats = fetch_ids_and_stats(client, "activities", page_size=500)
    assert_exactly(got, emulator.truth(tenant.tenant_id, "activities", START_MS, END_MS))
    assert stats.throttled == 3


def test_5xx_resets_and_truncated_bodies_are_retried(emulator, make_tenant, make_client):
    faults = ["500", "reset", "502", "truncate", "503", "504"]
    tenant = make_tenant(files=data(700), fault_queue=faults)
    client = make_client(tenant, max_retries=6)
    got, stats = fetch_ids_and_stats(client, "files")
    assert_exactly(got, emulator.truth(tenant.tenant_id, "files", START_MS, END_MS))
    assert stats.retries == len(faults)


def test_a_5xx_storm_beyond_the_retries_is_pull_error_305(make_tenant, make_client):
    tenant = make_tenant(alerts=data(10), fault_queue=["503"] * 4)
    with pytest.raises(PullError) as info:
        fetch_ids(make_client(tenant, max_retries=3), "alerts")
    assert info.value.code == 305
    assert info.value.service == "alerts"
    assert info.value.window == (START.isoformat(), END.isoformat())


def test_resets_beyond_the_retries_are_pull_error_300(make_tenant, make_client):
    tenant = make_tenant(alerts=data(10), fault_queue=["reset"] * 3)
    with pytest.raises(PullError) as info:
        fetch_ids(make_client(tenant, max_retries=2), "alerts")
    assert info.value.code == 300


def test_has_next_without_next_query_filters_falls_back_to_time_walking(emulator, make_tenant, make_client):
    tenant = make_tenant(activities=data(5_000), scan_omit_next_query_filters=True)
    client = make_client(tenant)
    got = fetch_ids(client, "activities", page_size=500)
    assert_exactly(got, emulator.truth(tenant.tenant_id, "activities", START_MS, END_MS))


def test_a_wrong_secret_is_setup_error_100_without_the_secret(make_tenant, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    tenant = make_tenant(alerts=data(1))
    wrong = "emu~definitely-not-the-secret-123"
    with pytest.raises(SetupError) as info:
        fetch_ids(make_client(tenant, client_secret=wrong), "alerts")
    assert info.value.code == 100
    assert "AADSTS7000215" in str(info.value)
    assert_no_secret(str(info.value) + repr(info.value) + caplog.text, wrong, tenant.client_secret)


def test_an_unknown_client_is_setup_error_100(make_tenant, make_client):
    tenant = make_tenant()
    with pytest.raises(SetupError) as info:
        make_client(tenant, client_id="00000000-0000-0000-0000-000000000000").get_token()
    assert info.value.code == 100


@pytest.mark.parametrize(("fault", "code"), [(403, 102), (500, 103), (503, 103)])
def test_token_endpoint_failures_map_to_setup_codes(make_tenant, make_client, fault, code):
    tenant = make_tenant(token_fault=fault)
    with pytest.raises(SetupError) as info:
        make_client(tenant, max_retries=1).get_token()
    assert info.value.code == code


def test_files_without_the_legacy_token_say_what_to_configure(make_tenant, make_client):
    tenant = make_tenant(files=data(5))
    with pytest.raises(PullError) as info:
        fetch_ids(make_client(tenant, files_access_token=None), "files")
    assert info.value.code == 303
    assert "files_access_token" in str(info.value)
    assert info.value.service == "files"


def test_a_wrong_legacy_token_is_pull_error_302_without_the_token(make_tenant, make_client):
    tenant = make_tenant(files=data(5))
    wrong = "wrong-files-token-abcdef"
    with pytest.raises(PullError) as info:
        fetch_ids(make_client(tenant, files_access_token=wrong), "files")
    assert info.value.code == 302
    assert_no_secret(str(info.value), wrong)


def test_an_untrusted_certificate_is_refused_before_any_credential_is_sent(emulator, make_tenant, make_client):
    tenant = make_tenant(alerts=data(5))
    with pytest.raises(SetupError) as info:  # the token endpoint is the first thing it talks to
        fetch_ids(make_client(tenant, verify=True), "alerts")
    assert info.value.code == 103
    assert "TLS certificate verification failed" in str(info.value)
    assert emulator.stats(tenant.tenant_id)["token_requests"] == 0


def test_an_untrusted_certificate_on_the_api_is_pull_error_300_not_retried(emulator, make_tenant, make_client):
    tenant = make_tenant(files=data(5))  # files uses the legacy token: no Entra round trip first
    with pytest.raises(PullError) as info:
        fetch_ids(make_client(tenant, verify=True), "files")
    assert info.value.code == 300
    assert "TLS certificate verification failed" in str(info.value)
    assert emulator.stats(tenant.tenant_id)["requests"]["files"] == 0


def test_the_connection_ca_bundle_wins_over_requests_ca_bundle(emulator, make_tenant, monkeypatch):
    # Containers often set REQUESTS_CA_BUNDLE to the system bundle; requests would let it override a
    # session-level verify. The client passes the connection's bundle with every request.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    tenant = make_tenant(alerts=data(3))
    with MdcaClient(client_config(emulator, tenant)) as client:
        assert len(fetch_ids(client, "alerts")) == 3


def test_limiter_at_the_tenant_rate_gets_no_429(emulator, make_tenant, make_client):
    tenant = make_tenant(alerts=data(1_500), requests_per_minute=600)
    client = make_client(tenant, requests_per_minute=600)
    got, stats = fetch_ids_and_stats(client, "alerts")
    assert_exactly(got, emulator.truth(tenant.tenant_id, "alerts", START_MS, END_MS))
    assert stats.requests >= 15
    assert stats.throttled == 0
    assert emulator.stats(tenant.tenant_id)["throttled"] == 0


def test_late_records_appear_once_they_are_stored(emulator, make_tenant, make_client):
    late = TimeSeriesConfig(segments=[Segment(START_MS, END_MS, 100)], late_every=10, late_by_ms=3_600_000)
    tenant = make_tenant(alerts=late)
    emulator.set_now(END_MS + 60_000, tenant.tenant_id)  # a minute after the window: late ones not stored yet
    client = make_client(tenant)
    early = fetch_ids(client, "alerts")
    assert len(early) == 90
    emulator.set_now(END_MS + 2 * 3_600_000, tenant.tenant_id)
    assert_exactly(fetch_ids(client, "alerts"), emulator.truth(tenant.tenant_id, "alerts", START_MS, END_MS))


def test_probe_reads_one_record(make_tenant, make_client):
    tenant = make_tenant(alerts=data(5))
    assert make_client(tenant).probe("alerts") == 1


def test_windows_must_be_timezone_aware(make_tenant, make_client):
    from airflow_provider_mdca.errors import InitVariablesError

    naive = datetime(2026, 1, 1)
    with pytest.raises(InitVariablesError, match="timezone-aware"):
        list(make_client(make_tenant()).fetch("alerts", naive, naive + timedelta(minutes=5)))
    assert START.tzinfo is timezone.utc


def test_no_secret_or_token_reaches_any_log_line_even_at_debug(emulator, make_tenant, make_client, caplog):
    caplog.set_level(logging.DEBUG)  # MSAL, urllib3 and requests all log at DEBUG
    tenant = make_tenant(alerts=data(600), files=data(50), revoke_tokens_after=2, fault_queue=["500", "429"])
    client = make_client(tenant)
    fetch_ids(client, "alerts")
    fetch_ids(client, "files")
    token = client.get_token()
    text = caplog.text + repr(client) + repr(client.config) + repr(client.entra_auth)
    assert "retry" in caplog.text  # the log did see the interesting part
    assert_no_secret(text, token, tenant.client_secret, tenant.files_access_token)
