"""A delivered window shipped to Devo again from Airflow 3's *Trigger Dag* form, with the run param ``reship`` on.

As a SOC engineer does it: the scheduler has delivered the collector's first windows of tenant contoso's alerts; the
Trigger form of ``contoso_mdca_alerts`` then runs one of them again with ``reship`` switched on, and Devo holds that
window's events twice (once from its scheduled run, once from the rerun), every other window's once. Counted against
the emulator's ground truth: the flattened events of exactly the window's alerts (contoso's emulated tenant; fabrikam's
alerts go to a tag of their own).

Which window a manual run reads: the DAGs' :class:`DeltaDataIntervalTimetable` infers the period *ending* at the run's
logical date, so the inferred interval of a past window needs the next window's logical date, which that window's own
scheduled run holds (one run per DAG and logical date): the form refuses it. The window is therefore given as the
form's *Data Interval -> Specify Manually* (start and end, whole minutes as the pickers take them), the logical date
left at its default, now.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from airflow_provider_mdca.services import SERVICES
from tests.browser.conftest import FAILING_DAG, Ui, UiWorld
from tests.e2e.conftest import DevoAdmin, canonical, expected_alert_events, ms
from tests.harness.airflow_stack import AirflowStack, StackError

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

TENANT = "contoso"
DAG_ID = f"{TENANT}_mdca_alerts"
assert DAG_ID != FAILING_DAG, "the rerun needs a DAG whose windows were all delivered"
TAG = SERVICES["alerts"].devo_table
TRIGGERED = "Dag Run Triggered"
TRIGGER_FAILED = "Failed to Trigger Dag"


def alert_events(devo: DevoAdmin) -> dict[str, Counter[str]]:
    """Every alert event Devo holds, by alert id: each event (canonical JSON) with the times it was delivered."""
    events: dict[str, Counter[str]] = {}
    for event in devo.events(TAG):
        events.setdefault(str(event["_id"]), Counter())[canonical(event)] += 1
    return events


def delivered(events: dict[str, Counter[str]], ids: set[str]) -> Counter[str]:
    """The delivered events of the alerts ``ids``, with their multiplicity."""
    total: Counter[str] = Counter()
    for alert_id in ids:
        total += events.get(alert_id, Counter())
    return total


def window_truth(world: UiWorld, start: datetime, end: datetime) -> tuple[set[str], Counter[str]]:
    """The emulator's alerts of ``[start, end)`` (contoso's) and the events they flatten into (each once)."""
    tenant = world.tenants[TENANT]
    ids = set(world.emulator.truth("alerts", ms(start), ms(end), tenant.tenant_id))
    return ids, expected_alert_events(tenant.config, ids, ms(start), ms(end))


def wait_for_run(stack: AirflowStack, run_id: str, timeout: float = 300.0) -> dict[str, Any]:
    """Poll the REST API until the run finished; its record."""
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}")
        if run["state"] in ("success", "failed"):
            return run
        if time.monotonic() > deadline:
            raise StackError(f"{DAG_ID} {run_id} still {run['state']} after {timeout:.0f}s")
        time.sleep(2)


def open_trigger_form(ui: Ui) -> Locator:
    """The DAG's page, then its *Trigger* button; the form (a single run, the form's default)."""
    page = ui.page
    page.goto(f"{ui.stack.base_url}/dags/{DAG_ID}")
    page.get_by_role("button", name="Trigger Dag").click()
    form = page.get_by_role("dialog").filter(has=page.get_by_role("heading", name=f"Trigger Dag - {DAG_ID}"))
    expect(form).to_be_visible()
    expect(form.get_by_role("radio", name="Single Run")).to_be_checked()
    return form


def shown(moment: datetime) -> str:
    """A moment as the form's date pickers show it (UTC, the profile's and the UI's time zone)."""
    return moment.strftime("%b %d, %Y %H:%M")


def pick(page: Page, picker: Locator, moment: datetime) -> None:
    """Set one of the form's date-and-time pickers (minute precision) to ``moment``, typed as a user types it."""
    assert moment.second == 0 and moment.microsecond == 0, "the pickers take whole minutes"
    picker.click()
    popover = page.locator("[data-scope='popover'][data-part='content'][data-state='open']")
    expect(popover).to_have_count(1)
    expect(popover).to_contain_text("UTC")
    popover.get_by_placeholder("YYYY/MM/DD").fill(moment.strftime("%Y/%m/%d"))
    popover.get_by_placeholder("HH:mm").fill(moment.strftime("%H:%M"))
    page.keyboard.press("Escape")
    expect(popover).to_have_count(0)
    expect(picker).to_have_text(shown(moment))


def switch_reship_on(form: Locator) -> None:
    """Switch the run param ``reship`` on in the form's *Run Parameters* section."""
    reship = form.get_by_role("checkbox", name="reship")
    expect(reship).not_to_be_checked()  # the param's default: a normal run
    form.locator("[id='switch:element_reship']").click()
    expect(reship).to_be_checked()


def trigger(page: Page, form: Locator) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Press the form's *Trigger*; what the page sent, and the api-server's status and answer (observed only)."""
    with page.expect_response(
        lambda response: response.request.method == "POST" and response.url.endswith(f"/dags/{DAG_ID}/dagRuns")
    ) as exchange:
        form.get_by_role("button", name="Trigger").click()
    response = exchange.value
    sent: dict[str, Any] = response.request.post_data_json or {}
    return response.status, sent, response.json()


def test_a_window_rerun_from_the_trigger_form_with_reship_is_delivered_again(ui: Ui) -> None:
    world, stack, page = ui.world, ui.stack, ui.page
    plan = world.plan
    start, end = plan.start, plan.start + plan.period  # the window to deliver again: the collector's first
    devo = DevoAdmin(world.emulator.info["devo"])

    # The scheduler delivers the collector's windows (catchup) once the DAG runs: each window once.
    stack.unpause(DAG_ID)
    runs = stack.wait_for_runs(DAG_ID, plan.start, plan.last_logical, expected=plan.windows, timeout=300)
    assert [(run.logical_date, run.state) for run in runs] == [
        (plan.start + plan.period * k, "success") for k in range(plan.windows)
    ], stack.failure_report(DAG_ID, runs)
    windows = [window_truth(world, plan.start + plan.period * k, plan.start + plan.period * (k + 1)) for k in (0, 1)]
    (ids, once), (next_ids, next_once) = windows
    assert len(ids) >= 5 and sum(once.values()) > len(ids), "the window should hold alerts with several events each"
    before = alert_events(devo)
    assert delivered(before, ids) == once, "the scheduled run should have delivered each event of the window once"
    assert delivered(before, next_ids) == next_once

    # The interval inferred from a logical date is the period ending at it: the window's end, the next window's
    # logical date, which its scheduled run holds. The form refuses it.
    form = open_trigger_form(ui)
    pick(page, form.get_by_test_id("datetime-input").first, end)
    expect(form.get_by_role("radio", name="Inferred from Logical Date and Timetable")).to_be_checked()
    status, sent, answer = trigger(page, form)
    assert (status, sent["logical_date"], sent["data_interval_start"]) == (409, f"{end:%Y-%m-%dT%H:%M:%S}.000Z", None)
    expect(page.get_by_text(TRIGGER_FAILED).first).to_be_visible()
    ui.shot("inferred-interval-refused")
    form.get_by_role("button", name="Close").click()
    expect(form).to_be_hidden()

    # The window as the form's data interval, reship on: a manual run of that window, whose ship delivers it again.
    form = open_trigger_form(ui)
    form.get_by_text("Specify Manually").click()
    pickers = form.get_by_test_id("datetime-input")
    expect(pickers).to_have_count(3)  # the logical date (its default: now), the interval's start and end
    pick(page, pickers.nth(1), start)
    pick(page, pickers.nth(2), end)
    switch_reship_on(form)
    ui.shot("trigger-form-reship-on")
    status, sent, answer = trigger(page, form)
    assert status == 200, answer
    assert sent["conf"] == {"reship": True}
    run_id = answer["dag_run_id"]
    expect(page.get_by_text(TRIGGERED).first).to_be_visible()
    expect(page).to_have_url(f"{stack.base_url}/dags/{DAG_ID}/runs/{run_id}")

    run = wait_for_run(stack, run_id)
    assert run["state"] == "success", stack.failure_report(DAG_ID, stack.dag_runs(DAG_ID))
    assert (run["run_type"], run["triggered_by"], run["conf"]) == ("manual", "ui", {"reship": True})
    assert (run["data_interval_start"], run["data_interval_end"]) == (
        f"{start:%Y-%m-%dT%H:%M:%S}Z",
        f"{end:%Y-%m-%dT%H:%M:%S}Z",
    )
    page.reload()
    expect(page.get_by_role("heading", name=run_id)).to_be_visible()
    ship = page.get_by_role("row").filter(has=page.get_by_role("link", name="ship", exact=True))
    expect(ship).to_contain_text("Success")
    ui.shot("rerun-succeeded")
    # The run's Details tab: the window as its data interval, and the run conf with reship on.
    page.get_by_role("link", name="Details", exact=True).click()
    details = page.get_by_role("row")
    expect(details.filter(has_text="Data Interval Start")).to_contain_text(f"{start:%Y-%m-%d %H:%M:%S}")
    expect(details.filter(has_text="Data Interval End")).to_contain_text(f"{end:%Y-%m-%d %H:%M:%S}")
    conf = details.filter(has_text=re.compile(r"^Conf"))
    conf.scroll_into_view_if_needed()
    expect(conf).to_contain_text(re.compile(r'"reship":\s*true'))
    ui.shot("rerun-details")

    after = alert_events(devo)
    assert delivered(after, ids) == once + once, "the rerun with reship should deliver each event of the window again"
    assert delivered(after, next_ids) == next_once, "the next window should still be delivered once"
    # The windows after it (the scheduler goes on delivering them, one may be shipping now): nothing more than once.
    later = set(after) - ids
    contoso = world.tenants[TENANT].config
    at_most_once = expected_alert_events(contoso, later, ms(end), ms(datetime.now(timezone.utc)))
    extra = delivered(after, later) - at_most_once
    assert not extra, f"{sum(extra.values())} events of other windows doubled or not theirs, e.g. {list(extra)[:1]}"
