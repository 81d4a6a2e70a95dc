"""Throttling and injected faults: statuses, Retry-After styles, resets, truncated bodies, counters."""

from __future__ import annotations

import email.utils
import time

import pytest
import requests

from mdca_emulator import Segment, TenantConfig, TimeSeriesConfig
from mdca_emulator.state import TenantState
from tests.emulator.support import T0


class TestThrottle:
    def test_seconds_style(self, make_tenant):
        tenant = make_tenant(requests_per_minute=2)
        assert [tenant.post("alerts").status_code for _ in range(2)] == [200, 200]
        throttled = tenant.post("alerts")
        assert throttled.status_code == 429
        assert throttled.json()["error"] == "Too many requests"
        assert 1 <= int(throttled.headers["Retry-After"]) <= 60
        assert tenant.post("entities").status_code == 429  # one budget for every endpoint
        stats = tenant.state.stats()
        assert stats["throttled"] == 2 and stats["4xx"] == 2

    def test_http_date_style(self, make_tenant):
        tenant = make_tenant(requests_per_minute=1, retry_after_style="http-date")
        tenant.post("alerts")
        throttled = tenant.post("alerts")
        when = email.utils.parsedate_to_datetime(throttled.headers["Retry-After"]).timestamp()
        assert throttled.status_code == 429 and 0 < when - time.time() <= 61

    def test_absent_style(self, make_tenant):
        tenant = make_tenant(requests_per_minute=1, retry_after_style="absent")
        tenant.post("alerts")
        throttled = tenant.post("alerts")
        assert throttled.status_code == 429 and "Retry-After" not in throttled.headers

    def test_entra_is_not_throttled(self, make_tenant):
        tenant = make_tenant(requests_per_minute=1)
        tenant.post("alerts")
        assert all(tenant.token_response().status_code == 200 for _ in range(3))

    def test_sliding_window_and_throttled_requests_take_no_slot(self, monkeypatch):
        clock = [1_000.0]
        monkeypatch.setattr("mdca_emulator.state.time.monotonic", lambda: clock[0])
        state = TenantState(TenantConfig("window", requests_per_minute=2))
        assert [state.admit(), state.admit()] == [None, None]
        clock[0] += 30
        assert state.admit() == 30  # the first slot frees 60 s after it was taken
        clock[0] += 29.5
        assert state.admit() == 1  # rounded up, never 0
        clock[0] += 0.5
        # Both slots are free exactly now: the refused requests took none.
        assert [state.admit(), state.admit(), state.admit()] == [None, None, 60]
        assert state.stats()["throttled"] == 3


class TestFaultQueue:
    def test_each_fault_in_order_then_normal_service(self, make_tenant):
        tenant = make_tenant(
            alerts=TimeSeriesConfig([Segment(T0, T0 + 1_000, 80)]),
            fault_queue=["500", "502", "503", "504", "429", "429-no-retry-after"],
        )
        responses = [tenant.post("alerts") for _ in range(6)]
        assert [r.status_code for r in responses] == [500, 502, 503, 504, 429, 429]
        assert responses[1].headers["Content-Type"].startswith("text/html")
        assert responses[4].headers["Retry-After"] == "1"
        assert "Retry-After" not in responses[5].headers
        assert len(tenant.ok("alerts")["data"]) == 80
        stats = tenant.state.stats()
        assert stats["faults_injected"] == 6 and stats["5xx"] == 4 and stats["faults"]["504"] == 1

    def test_reset_drops_the_connection(self, make_tenant):
        tenant = make_tenant(fault_queue=["reset"])
        tenant.token()
        with pytest.raises(requests.ConnectionError):
            tenant.post("alerts")
        assert tenant.post("alerts").status_code == 200

    def test_truncate_sends_half_a_body(self, make_tenant):
        tenant = make_tenant(alerts=TimeSeriesConfig([Segment(T0, T0 + 1_000, 50)]), fault_queue=["truncate"])
        tenant.token()
        with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
            tenant.post("alerts")
        assert len(tenant.ok("alerts")["data"]) == 50

    def test_truncate_without_reading_content_fails_on_decode(self, make_tenant):
        tenant = make_tenant(alerts=TimeSeriesConfig([Segment(T0, T0 + 1_000, 50)]), fault_queue=["truncate"])
        response = tenant.session.post(tenant.url("alerts"), json={}, headers=tenant.headers(), stream=True)
        assert response.status_code == 200
        with pytest.raises(requests.RequestException):
            response.json()

    def test_fault_services_restrict_where_faults_land(self, make_tenant):
        tenant = make_tenant(fault_queue=["503"], fault_services=["files"])
        assert tenant.post("alerts").status_code == 200
        assert tenant.post("files").status_code == 503
        assert tenant.post("files").status_code == 200

    def test_error_rate_is_seeded(self, make_tenant):
        def statuses(seed: int) -> list[int]:
            tenant = make_tenant(seed=seed, error_rate=0.5)
            return [tenant.post("data_enrichment").status_code for _ in range(20)]

        first = statuses(42)
        assert set(first) <= {200, 500, 503} and 3 <= first.count(200) <= 17
        assert statuses(42) == first

    def test_knobs_change_at_run_time_over_admin(self, make_tenant):
        tenant = make_tenant()
        patched = tenant.session.patch(
            f"{tenant.emu.admin_url}tenants/{tenant.id}",
            json={"fault_queue": ["500"], "requests_per_minute": 5},
        )
        assert patched.status_code == 200 and patched.json()["fault_queue"] == ["500"]
        assert tenant.post("alerts").status_code == 500
        assert tenant.state.settings().requests_per_minute == 5
