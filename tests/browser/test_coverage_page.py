"""The coverage page in a real browser, as a managed security provider's SOC engineer reads it in the morning.

The world (``tests/browser/conftest.py``) collects two tenants: contoso (alerts, activities) and fabrikam (alerts, one
window failing by design: MDCA 500s and ``retries: 0``). Once the scheduler has caught up the collector's first
windows, the engineer opens *Plugins -> MDCA coverage* in Airflow 3's UI (a tab of its own) and checks,
against the emulator's ground truth and what Devo received:

- a section per tenant and service, labelled with both;
- each window's cell in its state, its tooltip (what a user sees on hovering it) giving the window and its records
  fetched, late and delivered: the emulator's truth for that window, and the events Devo holds of it;
- the failed window in the failure colour: its computed background is the legend's *failed* swatch's, which is not
  the *delivered* one's;
- the totals beside each strip (windows per state, records) and the freshness of the newest delivered window;
- the failed window's cell leads to its run in the Airflow UI, shown failed.

The DAGs are paused while the page is read (the scheduler starts no run, so what the page shows and what the REST
API says cannot drift apart), and unpaused after. The full-page screenshot is ``coverage-page.png`` in the test's
folder (the README's picture).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Locator, Page, expect

from airflow_provider_mdca.coverage.model import WindowState, iso
from airflow_provider_mdca.coverage.render import COLOURS, LEGEND
from airflow_provider_mdca.plugins.coverage import NAV_NAME
from tests.browser.conftest import FAILING_DAG, Tenant, Ui, UiWorld
from tests.e2e.conftest import DevoAdmin, canonical, expected_alert_events, ms
from tests.harness.airflow_stack import AirflowStack

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

#: The field holding when a record happened (the emulator's name): a record stored in its window that happened
#: before it is a late one (activities; alerts' late records are those resolved in the window, raised before it).
HAPPENED = {"activities": "date"}
#: Seconds in each unit of the page's durations (``4m12s``).
UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
#: A cell's figures in its tooltip: ``... delivered: fetched 20, late 0, delivered 57``.
FIGURE = re.compile(r"\b(fetched|late|delivered) (\d+)\b")


@dataclass(frozen=True)
class Run:
    """One DAG run as the REST API gives it: its window (data interval), state and times."""

    run_id: str
    state: str
    start: datetime
    end: datetime
    started_at: datetime | None
    ended_at: datetime | None

    @property
    def order(self) -> tuple[datetime, datetime, str]:
        """Which of a window's runs is the newer one: by when it began, then ended."""
        return (self.started_at or self.start, self.ended_at or self.start, self.run_id)


@dataclass(frozen=True)
class Expected:
    """A window as the page must show it: its state and run, and (delivered) its records from the ground truth."""

    start: datetime
    end: datetime
    states: frozenset[str]
    run: Run | None = None
    fetched: int | None = None
    late: int | None = None
    delivered: int | None = None
    #: How many successful runs the window has: each delivered it to Devo once (a rerun with reship again).
    deliveries: int = 0


@dataclass(frozen=True)
class Cell:
    """One window's cell as the browser has it: what a user sees (tooltip, colour) and its stable attributes."""

    start: str
    state: str
    title: str
    href: str | None
    colour: str
    attributes: Mapping[str, str]

    @property
    def figures(self) -> dict[str, int]:
        """The counts the tooltip gives, by name."""
        return {name: int(value) for name, value in FIGURE.findall(self.title)}


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def rest_runs(stack: AirflowStack, dag_id: str) -> list[Run]:
    """Every run of the DAG, from the REST API (a few: one page)."""
    answer = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})
    assert answer["total_entries"] == len(answer["dag_runs"]), "more runs than one page: the world runs a few"
    runs = []
    for run in answer["dag_runs"]:
        start, end = parse_time(run["data_interval_start"]), parse_time(run["data_interval_end"])
        assert start is not None and end is not None, run
        runs.append(
            Run(run["dag_run_id"], run["state"], start, end, parse_time(run["start_date"]), parse_time(run["end_date"]))
        )
    return runs


def truth(world: UiWorld, tenant: Tenant, service: str, start: datetime, end: datetime) -> tuple[int, int, int]:
    """The emulator's ``(fetched, late, delivered)`` of one window: its records, the late ones, their Devo events."""
    emulator, window = world.emulator, (ms(start), ms(end))
    stored = set(emulator.truth(service, *window, tenant.tenant_id))
    if service == "alerts":
        # Late alerts: resolved in the window, raised before it (read again). The world's tenants resolve none.
        resolved = set(emulator.truth(service, *window, tenant.tenant_id, by="resolutionDate"))
        changed = resolved - stored
        assert not changed, "the world's instant tenants should resolve no alert (their events are not rebuilt here)"
        events = expected_alert_events(tenant.config, stored, *window)
        return len(stored), len(changed), sum(events.values())
    happened = set(emulator.truth(service, *window, tenant.tenant_id, by=HAPPENED[service], as_of="horizon"))
    return len(stored), len(stored - happened), len(stored)


def expected_windows(
    world: UiWorld, tenant: Tenant, service: str, runs: Sequence[Run], now: datetime
) -> list[Expected]:
    """The windows the page must list as of ``now`` (its *as of*), oldest first, from the runs Airflow has for them.

    A window with a run is listed; one without is listed *not run* once it ended (the world's lag is 0). A window's
    run is its newest successful one, else its newest.
    """
    plan = world.plan
    by_window: dict[int, list[Run]] = {}
    for run in runs:
        by_window.setdefault((run.start - plan.start) // plan.period, []).append(run)
    expected = []
    index = 0
    while (start := plan.start + plan.period * index) < now:
        end, window_runs = start + plan.period, by_window.get(index, [])
        successful = [run for run in window_runs if run.state == "success"]
        chosen = max(successful or window_runs, key=lambda run: run.order, default=None)
        if chosen is None:
            if end <= now:
                expected.append(Expected(start, end, frozenset({"not_run"})))
        elif chosen.state == "success":
            counts = truth(world, tenant, service, start, end)
            expected.append(Expected(start, end, frozenset({"delivered"}), chosen, *counts, len(successful)))
        elif chosen.state == "failed":
            expected.append(Expected(start, end, frozenset({"failed"}), chosen))
        else:  # queued or running (a run of a paused DAG stays so): retrying when a task waits for its next try
            expected.append(Expected(start, end, frozenset({"running", "retrying"}), chosen))
        index += 1
    return expected


def devo_copies(world: UiWorld, tenant: Tenant, service: str, window: Expected) -> int:
    """How many times Devo holds the window's events: each exactly that many times (0 when one is missing)."""
    emulator, span = world.emulator, (ms(window.start), ms(window.end))
    ids = set(emulator.truth(service, *span, tenant.tenant_id))
    devo = DevoAdmin(emulator.info["devo"])
    if service == "alerts":
        want = expected_alert_events(tenant.config, ids, *span)
        got = Counter(canonical(event) for event in devo.events(tenant.tag(service)) if str(event["_id"]) in ids)
    else:
        want = Counter(ids)
        got = Counter(record_id for record_id in devo.ids(tenant.tag(service)) if record_id in ids)
    if not want:  # a window without records (possible, if unlikely, at the world's rates)
        return 1 if not got else 0
    copies = {got[key] // count for key, count in want.items()}
    exact = len(copies) == 1 and all(got[key] == count * min(copies) for key, count in want.items())
    return min(copies) if exact and set(got) == set(want) else 0


def read_cells(section: Locator) -> list[Cell]:
    """The section's window cells in order, each with its tooltip, link, computed colour and data attributes."""
    raw: list[dict[str, Any]] = section.locator("[data-window-start]").evaluate_all(
        """cells => cells.map(cell => ({
            start: cell.dataset.windowStart, state: cell.dataset.state, title: cell.title,
            href: cell.getAttribute('href'), colour: getComputedStyle(cell).backgroundColor,
            attributes: Object.assign({}, cell.dataset)}))"""
    )
    return [Cell(**cell) for cell in raw]


def legend_colours(page: Page) -> dict[str, str]:
    """The computed colour of each state's swatch in the page's legend, by state; each labelled with its meaning."""
    colours = {}
    for state in WindowState:
        item = page.locator(f"#legend [data-state='{state.value}']")
        expect(item).to_have_text(LEGEND[state])
        colours[state.value] = item.locator(".c").evaluate("swatch => getComputedStyle(swatch).backgroundColor")
    return colours


def rgb(colour: str) -> str:
    """``#d62828`` as a browser computes it: ``rgb(214, 40, 40)``."""
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


def shown_totals(section: Locator) -> dict[str, str]:
    """The totals beside the strip, by key (``data-total``): the text a user reads."""
    expect(section.locator(".totals")).to_be_visible()
    totals: dict[str, str] = section.locator("[data-total]").evaluate_all(
        "items => Object.fromEntries(items.map(item => [item.dataset.total, item.querySelector('dd').innerText]))"
    )
    return totals


def seconds(duration: str) -> tuple[int, int]:
    """``4m12s`` as ``(252, 1)``: its seconds and those of its smallest unit (what it rounds down to)."""
    parts = re.findall(r"(\d+)([dhms])", duration)
    assert parts and "".join(value + unit for value, unit in parts) == duration, duration
    return sum(int(value) * UNIT_SECONDS[unit] for value, unit in parts), UNIT_SECONDS[parts[-1][1]]


def run_url(stack: AirflowStack, dag_id: str, run_id: str) -> str:
    return f"{stack.base_url}/dags/{dag_id}/runs/{quote(run_id, safe='')}"


def check_cells(stack: AirflowStack, dag_id: str, cells: Sequence[Cell], expected: Sequence[Expected]) -> list[str]:
    """Every difference between a strip's cells and the windows it must show."""
    problems = []
    if [cell.start for cell in cells] != [iso(window.start) for window in expected]:
        return [f"{dag_id}: cells {[c.start for c in cells]}, expected {[iso(w.start) for w in expected]}"]
    for cell, window in zip(cells, expected, strict=True):
        where = f"{dag_id} {cell.start}"
        if cell.state not in window.states:
            problems.append(f"{where}: state {cell.state}, expected {sorted(window.states)}")
        if not cell.title.startswith(f"{iso(window.start)} - ") or LEGEND[WindowState(cell.state)] not in cell.title:
            problems.append(f"{where}: tooltip {cell.title!r} names neither the window nor its state")
        want = {"fetched": window.fetched, "late": window.late, "delivered": window.delivered}
        want = {name: value for name, value in want.items() if value is not None}
        if cell.figures != want:
            problems.append(f"{where}: tooltip {cell.title!r}, expected the figures {want}")
        if {name: int(cell.attributes[name]) for name in want if name in cell.attributes} != want:
            problems.append(f"{where}: data attributes {cell.attributes}, expected {want}")
        link = run_url(stack, dag_id, window.run.run_id) if window.run else None
        if cell.href != link:
            problems.append(f"{where}: links to {cell.href}, expected {link}")
    return problems


def check_totals(totals: Mapping[str, str], expected: Sequence[Expected], now: datetime) -> list[str]:
    """Every difference between the totals beside a strip and what its windows add up to."""
    problems = []
    for state in WindowState:
        count = sum(window.states == {state.value} for window in expected)
        if state in (WindowState.RUNNING, WindowState.RETRYING):
            continue  # a live run may show either; the cells are checked one by one
        if totals[f"windows-{state.value}"] != str(count):
            problems.append(f"{totals[f'windows-{state.value}']} {state.value}, expected {count}")
    delivered = [window for window in expected if window.run is not None and window.run.state == "success"]
    for name in ("fetched", "late", "delivered"):
        total = sum(getattr(window, name) for window in delivered)
        if totals[name] != str(total):
            problems.append(f"{name} {totals[name]}, expected {total}")
    newest = max((window.run for window in delivered if window.run), key=lambda run: (run.end, run.order))
    age, unit = seconds(totals["freshness"].split(" ")[0])
    actual = (now - newest.end).total_seconds()
    if totals["freshness"] != f"{totals['freshness'].split(' ')[0]} (to {iso(newest.end)})" or not (
        age <= actual < age + unit
    ):
        problems.append(f"freshness {totals['freshness']!r}: the newest delivered window ends {iso(newest.end)}")
    if parse_time(totals["delivered-at"]) != newest.ended_at:
        problems.append(f"delivered at {totals['delivered-at']}, its run ended {newest.ended_at}")
    return problems


def open_coverage_from_the_navigation(ui: Ui) -> Page:
    """*Plugins -> MDCA coverage* in the UI's navigation, as a user clicks it; the tab it opens, loaded."""
    page = ui.page
    page.get_by_role("button", name="Plugins").click()
    entry = page.get_by_role("menuitem", name=NAV_NAME, exact=True)
    expect(entry).to_be_visible()
    ui.shot("plugins-menu")
    # A tab of its own (not the UI's sandboxed frame): a cell's link can open its run in the UI there.
    with page.context.expect_page() as opened:
        entry.click()
    coverage = opened.value
    coverage.wait_for_load_state()
    expect(coverage).to_have_url(re.compile(r"/mdca/coverage(\?|$)"))
    expect(coverage.get_by_role("heading", name="MDCA coverage", level=1)).to_be_visible()
    return coverage


@contextmanager
def paused(stack: AirflowStack, dag_ids: Sequence[str]) -> Iterator[None]:
    """The DAGs paused (the scheduler starts no run of theirs), unpaused again after."""
    stack.pause(*dag_ids)
    try:
        yield
    finally:
        stack.unpause(*dag_ids)


def test_the_coverage_page_shows_each_tenants_windows_counts_and_the_failed_window(ui: Ui) -> None:
    world, stack, plan = ui.world, ui.stack, ui.world.plan
    services = [(tenant, service) for tenant in world.tenants.values() for service in tenant.services]
    # The scheduler catches the collector's first windows up (unpaused since the world started).
    for tenant, service in services:
        dag_id = tenant.dag_id(service)
        caught_up = stack.wait_for_runs(dag_id, plan.start, plan.last_logical, expected=plan.windows, timeout=300)
        unsuccessful = [run for run in caught_up if run.state != "success"]
        assert len(unsuccessful) == (1 if dag_id == FAILING_DAG else 0), stack.failure_report(dag_id, caught_up)

    with paused(stack, world.dag_ids):
        runs = {tenant.dag_id(service): rest_runs(stack, tenant.dag_id(service)) for tenant, service in services}
        coverage = open_coverage_from_the_navigation(ui)
        now = datetime.fromisoformat(coverage.locator("#generated-at").inner_text())
        expected = {
            tenant.dag_id(service): expected_windows(world, tenant, service, runs[tenant.dag_id(service)], now)
            for tenant, service in services
        }
        ui.shots.take(coverage, "coverage-page")
        ui.shots.keep(coverage, "coverage-page")

        # What each state looks like: the legend's swatches; failure and delivery must not look alike.
        colours = legend_colours(coverage)
        assert colours["failed"] != colours["delivered"], colours
        assert colours["failed"] == rgb(COLOURS[WindowState.FAILED]), colours  # the page's failure red
        failures = sum(window.states == {"failed"} for windows in expected.values() for window in windows)
        expect(coverage.locator("#status")).to_have_attribute("data-problems", str(failures))
        expect(coverage.locator("#status")).to_have_text(f"{failures} window(s) failed or older than MDCA keeps")

        problems = []
        for tenant, service in services:
            dag_id = tenant.dag_id(service)
            section = coverage.locator(f"section[data-dag-id='{dag_id}']")
            expect(section).to_be_visible()
            expect(section).to_have_attribute("data-tenant", tenant.name)
            expect(section).to_have_attribute("data-service", service)
            heading = section.get_by_role("heading", level=2)
            covered = f"{iso(expected[dag_id][0].start)} to {iso(expected[dag_id][-1].end)}"  # the strip's time
            for label in (tenant.name, service, dag_id, covered):
                expect(heading).to_contain_text(label)
            cells = read_cells(section)
            problems += check_cells(stack, dag_id, cells, expected[dag_id])
            problems += [f"{dag_id}: {p}" for p in check_totals(shown_totals(section), expected[dag_id], now)]
            for cell in cells:
                if cell.colour != colours[cell.state]:
                    problems.append(f"{dag_id} {cell.start}: {cell.state} in {cell.colour}, not {colours[cell.state]}")
            for window in expected[dag_id]:
                if window.delivered is not None and not 1 <= devo_copies(world, tenant, service, window) <= (
                    window.deliveries
                ):
                    problems.append(f"{dag_id} {iso(window.start)}: Devo does not hold the window's events whole")
        assert not problems, "\n".join(problems)

        # The failed window: its cell in the failure colour, and a click on it opens its run, failed.
        [failed_window] = [window for window in expected[FAILING_DAG] if window.states == {"failed"}]
        failed_run = failed_window.run
        assert failed_run is not None
        failed_cell = coverage.locator(
            f"section[data-dag-id='{FAILING_DAG}'] [data-window-start='{iso(failed_window.start)}']"
        )
        expect(failed_cell).to_have_attribute("data-state", "failed")
        assert failed_cell.evaluate("cell => getComputedStyle(cell).backgroundColor") == colours["failed"]
        failed_cell.hover()
        ui.shots.take(coverage, "failed-window-hovered")
        failed_cell.click()
        expect(coverage).to_have_url(run_url(stack, FAILING_DAG, failed_run.run_id))
        # The UI is a single-page app that loads the run after the URL changes (the harness's PAGE_WAIT_MS covers it).
        expect(coverage.get_by_role("heading", name=failed_run.run_id)).to_be_visible()
        fetch = coverage.get_by_role("row").filter(has=coverage.get_by_role("link", name="fetch", exact=True))
        expect(fetch).to_contain_text("Failed")
        ui.shots.take(coverage, "failed-run")
