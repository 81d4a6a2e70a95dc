"""Late records and the tenant clock, ground truth, the admin API, and determinism across servers."""

from __future__ import annotations

import pytest

from mdca_emulator import EmulatorServer, Rate, Segment, TenantConfig, TimeSeriesConfig
from mdca_emulator.data import HOUR_MS
from tests.emulator.support import T0, new_session
from tests.service_table import ALL, SERVICE_TABLE, SNAPSHOTS, WINDOWED

MINUTE = 60_000


class TestLateRecords:
    def test_a_late_record_appears_once_the_clock_passes_its_created(self, make_tenant):
        series = TimeSeriesConfig([Segment(T0, T0 + 100, 100)], late_every=25, late_by_ms=10 * MINUTE)
        tenant = make_tenant(alerts=series, now_ms=T0 + MINUTE)
        window = {"filters": {"date": {"gte": T0, "lte": T0 + 99}}}
        early = {r["_id"] for r in tenant.ok("alerts", window)["data"]}
        everything = set(tenant.emu.truth(tenant.id, "alerts", T0, T0 + 100))
        assert len(early) == 96 and early < everything
        assert set(tenant.emu.truth(tenant.id, "alerts", T0, T0 + 100, visible_only=True)) == early
        tenant.emu.set_now(T0 + 10 * MINUTE + 50, tenant_id=tenant.id)  # past some late records' created
        middle = {r["_id"] for r in tenant.ok("alerts", window)["data"]}
        assert early < middle < everything
        tenant.emu.set_now(None, tenant_id=tenant.id)  # back to the real clock, years later
        assert {r["_id"] for r in tenant.ok("alerts", window)["data"]} == everything

    def test_activities_carry_created_and_the_future_is_invisible(self, make_tenant):
        start = T0 - T0 % HOUR_MS
        rate = Rate(600, start_ms=start).to_dict()
        tenant = make_tenant(activities={"segments": [rate]}, now_ms=start + MINUTE)
        window = {"date": {"gte": start, "lte": start + HOUR_MS}}
        page = tenant.ok("activities", {"filters": window, "isScan": True})
        assert page["data"] and not page["hasNext"]
        assert all(start <= r["timestamp"] < r["created"] <= start + MINUTE for r in page["data"])
        assert page["total"] >= len(page["data"])  # an estimate: counts what is not stored yet too

    def test_server_clock(self, emu, make_tenant):
        tenant = make_tenant(files=TimeSeriesConfig([Segment(T0, T0 + 10, 10)]))
        try:
            emu.set_now(T0 + 5)  # records are stored 1..5 ms after their timestamp: only some are visible
            visible = [r["_id"] for r in tenant.ok("files")["data"]]
            assert 0 < len(visible) < 6
            assert sorted(visible) == emu.truth(tenant.id, "files", T0, T0 + 10, visible_only=True)
        finally:
            emu.set_now(None)
        assert len(tenant.ok("files")["data"]) == 10


class TestTruthAndAdmin:
    def test_truth_equals_the_union_of_all_pages(self, make_tenant):
        tenant = make_tenant(files=TimeSeriesConfig([Segment(T0, T0 + 3_000, 1_234, (1, 2, 5))]))
        ids, skip = [], 0
        window = {"modifiedDate": {"gte": T0 + 100, "lte": T0 + 2_499}}
        while True:
            page = tenant.ok("files", {"filters": window, "skip": skip, "limit": 100})
            ids += [r["_id"] for r in page["data"]]
            skip += 100
            if not page["hasNext"]:
                break
        assert sorted(ids) == tenant.emu.truth(tenant.id, "files", T0 + 100, T0 + 2_500)

    def test_admin_round_trip(self, emu, session):
        admin = emu.admin_url
        alerts = TimeSeriesConfig([Segment(T0, T0 + 1_000, 20)], late_every=4, late_by_ms=MINUTE)
        body = {"alerts": alerts.to_dict(), "entities": {"count": 3}, "requests_per_minute": None}
        created = session.put(f"{admin}tenants/admin-rt", json=body)
        assert created.status_code == 201
        assert TenantConfig.from_dict(created.json()).series("alerts").late_every == 4
        assert "admin-rt" in session.get(f"{admin}tenants").json()["tenants"]
        assert session.get(f"{admin}tenants/admin-rt").json() == created.json()

        window = {"service": "alerts", "start": T0, "end": T0 + 1_000}
        truth = session.get(f"{admin}tenants/admin-rt/truth", params=window).json()
        assert truth["count"] == 20 and truth["ids"] == emu.truth("admin-rt", "alerts", T0, T0 + 1_000)
        clock = session.post(f"{admin}tenants/admin-rt/clock", json={"now_ms": T0 + 500})
        assert clock.json() == {"now_ms": T0 + 500, "override": T0 + 500}
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
            return TenantConfig("same", seed=seed, requests_per_minute=None).with_changes(data)

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
