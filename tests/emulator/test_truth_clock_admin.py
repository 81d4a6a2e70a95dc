"""Ground truth (by event time or by storage time, as of any instant, alerts' states), the clocks (pinned, compressed,
from the admin API and the command line), the admin API, and determinism across servers.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import requests

from mdca_emulator import DelayClass, EmulatorServer, Rate, Segment, TenantConfig, TimeSeriesConfig
from tests.emulator.support import AFTER, DAY, HOUR, MINUTE, T0, new_session
from tests.service_table import ALL, SERVICE_TABLE, SNAPSHOTS, WINDOWED

HOUR_START = T0 - T0 % HOUR


class TestTruth:
    def test_truth_equals_the_union_of_all_pages(self, make_tenant):
        tenant = make_tenant(files=TimeSeriesConfig([Segment(T0, T0 + 3_000, 1_234, (1, 2, 5))]), now_ms=T0 + DAY)
        got, skip = [], 0
        window = {"modifiedDate": {"gte": T0 + 100, "lte": T0 + 2_499}}
        while True:
            page = tenant.ok("files", {"filters": window, "skip": skip, "limit": 100})
            got += [r["_id"] for r in page["data"]]
            skip += 100
            if not page["hasNext"]:
                break
        assert sorted(got) == tenant.emu.truth(tenant.id, "files", T0 + 100, T0 + 2_500, by="modifiedDate")

    def test_by_event_time_and_by_storage_time_as_of_any_instant(self, make_tenant):
        rate = Rate(3_000, (1, 2), start_ms=HOUR_START - 4 * DAY)
        tenant = make_tenant(activities=TimeSeriesConfig([rate]), now_ms=HOUR_START + HOUR)
        state, window = tenant.state, (HOUR_START, HOUR_START + HOUR)
        by_date = set(state.truth("activities", *window, by="date"))  # as of the horizon: every record, however late
        by_created = set(state.truth("activities", *window, by="created"))
        assert len(by_date) > 2_000 and len(by_created) > 2_000 and by_date != by_created
        # By storage time, the horizon is reached once the range is over: a window on created is then complete.
        assert set(state.truth("activities", *window, by="created", as_of=window[1] - 1)) == by_created
        stored_by_end = set(state.truth("activities", *window, by="date", as_of=window[1]))
        assert stored_by_end < by_date  # by event time, late records keep coming for three days
        assert set(state.truth("activities", *window, by="date", as_of=window[1] + 3 * DAY)) == by_date
        assert set(state.truth("activities", *window, by="date", visible_only=True)) == set(
            state.truth("activities", *window, by="date", as_of="now")
        )
        # The registry's window field is the default.
        field = SERVICE_TABLE["activities"].filter_field
        assert set(state.truth("activities", *window)) == (by_created if field == "created" else by_date)
        for by, ids in (("date", by_date), ("created", by_created)):
            assert state.truth_count("activities", *window, by=by) == len(ids)
        with pytest.raises(ValueError, match="no field"):
            state.truth("activities", *window, by="modifiedDate")

    def test_alert_states_reached_by_then(self, make_tenant):
        tenant = make_tenant(alerts=TimeSeriesConfig([Segment(T0, T0 + HOUR, 100)]), now_ms=T0)
        state = tenant.state
        final = state.truth_states("alerts", T0, T0 + HOUR, by="date")
        early = state.truth_states("alerts", T0, T0 + HOUR, by="date", as_of=T0 + 2 * HOUR)
        assert len({s["_id"] for s in final}) == 100 and len(early) < len(final)
        assert all(s in final for s in early) and all(s["at"] <= T0 + 2 * HOUR for s in early)
        last = {}
        for s in final:
            last[s["_id"]] = s
        resolved = [s for s in last.values() if s["statusValue"] == 2]
        assert resolved and all(s["resolveTime"] == s["at"] for s in resolved)
        # By resolutionDate: the alerts resolved in the range, once resolved.
        ids = state.truth("alerts", T0, T0 + 30 * DAY, by="resolutionDate")
        assert sorted(s["_id"] for s in resolved) == ids
        assert state.truth("alerts", T0, T0 + 30 * DAY, by="resolutionDate", as_of=T0 + 5 * MINUTE) == []

    def test_admin_truth(self, make_tenant, session):
        rate = Rate(600, start_ms=HOUR_START - 4 * DAY)
        tenant = make_tenant(activities=TimeSeriesConfig([rate]), alerts=TimeSeriesConfig([Segment(T0, T0 + HOUR, 40)]))
        tenant.emu.set_now(HOUR_START + HOUR, tenant_id=tenant.id)
        url = f"{tenant.emu.admin_url}tenants/{tenant.id}/truth"
        window = {"service": "activities", "start": HOUR_START, "end": HOUR_START + HOUR}
        for by in ("date", "created"):
            for as_of in ("now", "horizon", str(HOUR_START + 90 * MINUTE)):
                answer = session.get(url, params={**window, "by": by, "as_of": as_of}).json()
                expected = tenant.emu.truth(
                    tenant.id,
                    "activities",
                    HOUR_START,
                    HOUR_START + HOUR,
                    by=by,
                    as_of=as_of if not as_of.isdigit() else int(as_of),
                )
                assert answer["ids"] == expected and answer["count"] == len(expected)
                counted = session.get(url, params={**window, "by": by, "as_of": as_of, "ids": "0"}).json()
                assert counted["count"] == len(expected) and "ids" not in counted
        states = session.get(url, params={"service": "alerts", "start": T0, "end": T0 + HOUR, "states": 1}).json()
        assert len(states["ids"]) == 40 and {s["_id"] for s in states["states"]} == set(states["ids"])
        assert set(states["states"][0]) == {
            "_id",
            "at",
            "statusValue",
            "resolutionStatusValue",
            "resolveTime",
            "handledByUser",
        }
        assert session.get(url, params={**window, "by": "resolutionDate"}).status_code == 400
        assert session.get(url, params={**window, "as_of": "soon"}).status_code == 400
        assert session.get(url, params={"service": "entities", "states": 1}).status_code == 400


class TestClock:
    def test_a_pinned_tenant_clock_and_the_server_clock(self, emu, make_tenant):
        tenant = make_tenant(alerts=TimeSeriesConfig([Segment(T0, T0 + 10, 10)], delays=[DelayClass(1.0, 2, 4)]))
        try:
            emu.set_now(T0 + 5)  # records are stored 2..4 ms after their timestamp: only some are visible
            visible = [r["_id"] for r in tenant.ok("alerts")["data"]]
            assert 0 < len(visible) < 6
            assert sorted(visible) == emu.truth(tenant.id, "alerts", T0, T0 + 10, as_of="now")
            tenant.emu.set_now(T0 + 100, tenant_id=tenant.id)  # a tenant's pin wins over the server clock
            assert len(tenant.ok("alerts")["data"]) == 10
        finally:
            emu.set_now(None)
        tenant.emu.set_now(None, tenant_id=tenant.id)
        assert abs(tenant.emu.now_ms(tenant.id) - time.time() * 1000) < 5_000

    def test_a_compressed_tenant_clock_runs_rate_times_as_fast(self, make_tenant, session):
        tenant = make_tenant()
        url = f"{tenant.emu.admin_url}tenants/{tenant.id}/clock"
        started = session.post(url, json={"rate": 3_600, "origin_ms": T0}).json()  # a real second is an hour
        assert started["origin_ms"] == T0 and started["rate"] == 3_600 and started["override"] is None
        time.sleep(0.5)
        now = session.get(url).json()["now_ms"]
        assert T0 + 0.4 * HOUR < now < T0 + 5 * HOUR
        config = session.get(f"{tenant.emu.admin_url}tenants/{tenant.id}").json()
        assert (config["clock_origin_ms"], config["clock_rate"]) == (T0, 3_600)
        slower = session.post(url, json={"rate": 1}).json()  # from where it is, at the real pace
        assert slower["origin_ms"] >= now and slower["rate"] == 1
        pinned = session.post(url, json={"now_ms": T0}).json()
        assert pinned["now_ms"] == T0 and pinned["origin_ms"] is None
        assert session.post(url, json={"rate": -1}).status_code == 400
        assert session.post(url, json={"when": 1}).status_code == 400
        released = session.post(url, json={"now_ms": None}).json()
        assert abs(released["now_ms"] - time.time() * 1000) < 5_000

    def test_records_are_stored_as_the_compressed_clock_passes(self, make_tenant):
        tenant = make_tenant(alerts=TimeSeriesConfig([Segment(T0, T0 + HOUR, 600)], late_every=2, late_by_ms=HOUR))
        tenant.emu.set_rate(36_000, T0 + HOUR, tenant_id=tenant.id)  # ten hours a second, from the segment's end
        first = tenant.ok("alerts")["total"]
        assert 300 <= first < 600  # the late half is stored an hour after its timestamp: later in emulated time
        time.sleep(0.4)
        assert tenant.ok("alerts")["total"] == 600

    def test_the_server_clock_over_admin(self, emu, session):
        try:
            answer = session.post(f"{emu.admin_url}clock", json={"rate": 60, "origin_ms": T0}).json()
            assert answer["origin_ms"] == T0 and answer["rate"] == 60
            time.sleep(0.2)
            assert T0 + 6_000 <= session.get(f"{emu.admin_url}clock").json()["now_ms"] < T0 + 5 * MINUTE
        finally:
            assert session.post(f"{emu.admin_url}clock", json={"now_ms": None}).json()["origin_ms"] is None

    def test_the_command_line_compresses_the_server_clock(self, tmp_path):
        config = {"tenant_id": "fast", "requests_per_minute": None}
        (tmp_path / "tenants.json").write_text(json.dumps(config))
        command = [sys.executable, "-m", "mdca_emulator", "--no-devo", "--state-dir", str(tmp_path / "state")]
        command += ["--config", str(tmp_path / "tenants.json"), "--time-model", "instant"]
        command += ["--clock-origin", "2023-11-14T22:13:20Z", "--clock-rate", "3600"]
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
            try:
                info = json.loads(proc.stdout.readline())
                with requests.Session() as client:
                    client.trust_env = False
                    client.verify = info["ca_bundle"]
                    clock = client.get(f"{info['admin_url']}clock").json()
                    assert clock["origin_ms"] == T0 and clock["rate"] == 3_600
                    assert T0 <= clock["now_ms"] < T0 + 60 * HOUR
                    assert client.get(f"{info['admin_url']}tenants/fast").json()["time_model"] == "instant"
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.communicate(timeout=10)
        assert proc.returncode == 0


class TestAdmin:
    def test_admin_round_trip(self, emu, session):
        admin = emu.admin_url
        alerts = TimeSeriesConfig([Segment(T0, T0 + 1_000, 20)], late_every=4, late_by_ms=MINUTE)
        body = {
            "alerts": alerts.to_dict(),
            "entities": {"count": 3},
            "requests_per_minute": None,
            "time_model": "instant",
        }
        created = session.put(f"{admin}tenants/admin-rt", json=body)
        assert created.status_code == 201
        assert TenantConfig.from_dict(created.json()).series("alerts").late_every == 4
        assert "admin-rt" in session.get(f"{admin}tenants").json()["tenants"]
        assert session.get(f"{admin}tenants/admin-rt").json() == created.json()

        window = {"service": "alerts", "start": T0, "end": T0 + 1_000}
        truth = session.get(f"{admin}tenants/admin-rt/truth", params=window).json()
        assert truth["count"] == 20 and truth["ids"] == emu.truth("admin-rt", "alerts", T0, T0 + 1_000)
        clock = session.post(f"{admin}tenants/admin-rt/clock", json={"now_ms": T0 + 500})
        assert clock.json()["now_ms"] == T0 + 500 and clock.json()["override"] == T0 + 500
        visible = session.get(
            f"{admin}tenants/admin-rt/truth",
            params={"service": "alerts", "start": T0, "end": T0 + 1_000, "visible_only": "1"},
        ).json()
        assert 0 < visible["count"] < 10
        snapshot = session.get(f"{admin}tenants/admin-rt/truth", params={"service": "entities"}).json()
        assert snapshot["count"] == 3

        patched = session.patch(f"{admin}tenants/admin-rt", json={"fault_queue": ["500", "reset"], "seed": 9})
        assert patched.json()["fault_queue"] == ["500", "reset"] and patched.json()["seed"] == 9
        assert session.patch(f"{admin}tenants/admin-rt", json={"fault_queue": ["boom"]}).status_code == 400
        assert session.patch(f"{admin}tenants/admin-rt", json={"time_model": "slow"}).status_code == 400
        stats = session.get(f"{admin}tenants/admin-rt/stats").json()
        assert stats["tenant_id"] == "admin-rt" and stats["requests"]["alerts"] == 0
        assert session.delete(f"{admin}tenants/admin-rt").status_code == 200
        assert session.get(f"{admin}tenants/admin-rt/stats").status_code == 404

    def test_admin_rejects_bad_input(self, emu, session):
        admin = emu.admin_url
        assert session.put(f"{admin}tenants/x1", json={"tenant_id": "x2"}).status_code == 400
        assert session.put(f"{admin}tenants/x1", data="not json").status_code == 400
        assert session.get(f"{admin}tenants/nobody/truth").status_code == 404
        assert session.post(f"{admin}tenants/nobody/clock", json={"now_ms": 1}).status_code == 404


class TestDeterminism:
    @pytest.mark.parametrize("service", ALL)
    def test_two_servers_same_seed_same_bytes(self, tmp_path, service):
        def config(seed: int) -> TenantConfig:
            series = TimeSeriesConfig([Segment(T0, T0 + 5_000, 250, (1, 3)), Rate(40)])
            data = {**dict.fromkeys(WINDOWED, series), **{name: {"count": 70} for name in SNAPSHOTS}}
            return TenantConfig("same", seed=seed, requests_per_minute=None, now_ms=AFTER).with_changes(data)

        def fetch(state_dir, seed: int) -> bytes:
            with EmulatorServer(state_dir, tenants=[config(seed)]) as server, new_session(server) as client:
                token = config(seed).files_access_token
                body = {"filters": {}} if service in SNAPSHOTS else {}
                url = f"{server.mdca_url('same')}{SERVICE_TABLE[service].endpoint}"
                response = client.post(url, json=body, headers={"Authorization": f"Token {token}"})
                assert response.status_code == 200
                return response.content

        first = fetch(tmp_path / "a", 5)
        assert fetch(tmp_path / "b", 5) == first
        assert fetch(tmp_path / "c", 6) != first
