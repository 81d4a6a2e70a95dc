"""The coverage page and terminal view: every state shown and explained, every value escaped, nothing loaded from
elsewhere, long strips summarised."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest

from airflow_provider_mdca.coverage.model import (
    Coverage,
    RunRecord,
    ServiceWindows,
    WindowState,
    build_coverage,
)
from airflow_provider_mdca.coverage.render import COLOURS, LEGEND, SYMBOLS, render_html, render_text

NOW = datetime(2026, 12, 6, 8, 2, tzinfo=timezone.utc)
PERIOD = timedelta(minutes=5)
HOSTILE_DAG = 'mdca_"><script>alert(1)</script>'
HOSTILE_RUN = "manual__<img src=x onerror=alert(2)>&'\""


def config(dag_id: str = "mdca_activities", first: datetime = NOW - timedelta(minutes=40)) -> ServiceWindows:
    return ServiceWindows(None, "activities", "activities", dag_id, PERIOD, first, timedelta(minutes=2), None, True)


def every_state(dag_id: str = "mdca_activities", run_id: str = "r") -> Coverage:
    """Windows 0..6 of a service in each state (expired through a retention of 30 minutes)."""
    first = NOW - timedelta(minutes=40)
    service = ServiceWindows(
        None, "activities", "activities", dag_id, PERIOD, first, timedelta(minutes=2), timedelta(minutes=30), True
    )

    def run(k: int, state: str, **kwargs) -> RunRecord:
        start = first + PERIOD * k
        return RunRecord(dag_id, f"{run_id}{k}", state, start, start + PERIOD, start, start, **kwargs)

    runs = [
        run(0, "success", stats={"fetched": 12, "late": 3}, ship={"delivered": 12}),
        run(1, "failed"),  # before the retention: expired
        run(2, "failed"),
        run(3, "running", task_states={"fetch": "up_for_retry"}),
        run(4, "running"),
        # 5: no run, due: not run
        run(6, "success", stats={"fetched": 0, "late": 0}, ship={"delivered": 0}),
    ]
    return build_coverage([service], runs, NOW, 7, link=lambda d, r: f"http://127.0.0.1:8080/dags/{d}/runs/{r}")


class Cells(HTMLParser):
    """The window cells and the legend entries of a page; fails on a tag that loads something."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str | None]] = []
        self.legend: list[str | None] = []
        self.sections: list[dict[str, str | None]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        self.tags.append(tag)
        if "data-window-start" in found:
            self.cells.append({"tag": tag, **found})
        elif tag == "li" and "data-state" in found:
            self.legend.append(found["data-state"])
        elif tag == "section":
            self.sections.append(found)


def parsed(page: str) -> Cells:
    parser = Cells()
    parser.feed(page)
    parser.close()
    return parser


def test_every_state_has_a_colour_a_symbol_a_legend_entry_and_a_css_class():
    page = render_html(every_state())
    assert set(COLOURS) == set(LEGEND) == set(SYMBOLS) == set(WindowState)
    assert len(set(COLOURS.values())) == len(WindowState)
    assert len(set(SYMBOLS.values())) == len(WindowState)
    assert parsed(page).legend == [state.value for state in WindowState]
    for state in WindowState:
        assert f".c[data-state={state.value}],[data-state={state.value}]>.c{{background:{COLOURS[state]}}}" in page
    assert COLOURS[WindowState.FAILED] == "#d62828"  # failure is red


def test_each_window_is_a_cell_with_its_state_start_counts_and_a_link_to_its_run():
    coverage = every_state()
    cells = parsed(render_html(coverage)).cells
    windows = coverage.services[0].windows
    assert [cell["data-state"] for cell in cells] == [w.state.value for w in windows]
    assert [cell["data-state"] for cell in cells] == [
        "delivered",
        "expired",
        "failed",
        "retrying",
        "running",
        "not_run",
        "delivered",
    ]
    first = cells[0]
    assert first["data-window-start"] == "2026-12-06T07:22:00Z"
    assert (first["data-fetched"], first["data-late"], first["data-delivered"]) == ("12", "3", "12")
    assert first["tag"] == "a" and first["href"] == "http://127.0.0.1:8080/dags/mdca_activities/runs/r0"
    assert first["title"] == "2026-12-06T07:22:00Z - 07:27:00Z delivered: fetched 12, late 3, delivered 12"
    failed = cells[2]
    assert failed["tag"] == "a" and failed["href"].endswith("/runs/r2") and "data-fetched" not in failed
    not_run = cells[5]
    assert not_run["tag"] == "span" and "href" not in not_run  # no run to link to
    assert cells[6]["data-delivered"] == "0"


def test_the_page_shows_totals_freshness_and_the_status():
    page = render_html(every_state())
    assert re.search(r'data-total="windows-failed"><dt>failed</dt><dd>1</dd>', page)
    assert re.search(r'data-total="windows-expired"><dt>older than MDCA keeps</dt><dd>1</dd>', page)
    assert re.search(r'data-total="fetched"><dt>fetched</dt><dd>12</dd>', page)
    assert re.search(r'data-total="late"><dt>late caught</dt><dd>3</dd>', page)
    assert re.search(r'data-total="freshness"><dt>freshness</dt><dd>5m \(to 2026-12-06T07:57:00Z\)</dd>', page)
    assert 'id="status" class="bad" data-problems="2"' in page


def test_the_totals_are_rows_named_by_what_they_count():
    """ "delivered" is said of windows and of records: each row says which it counts."""
    page = render_html(every_state())
    rows = re.findall(r'<div class="row" data-row="(\w+)"><span class="what">(\w+)</span><dl>(.*?)</dl></div>', page)
    assert [(name, shown) for name, shown, _ in rows] == [
        ("windows", "windows"),
        ("records", "records"),
        ("newest", "newest"),
    ]
    keys = [re.findall(r'data-total="([\w-]+)"', items) for _, _, items in rows]
    assert keys == [
        [f"windows-{state.value}" for state in WindowState],
        ["fetched", "delivered", "late"],
        ["freshness", "delivered-at"],
    ]
    assert '<div data-total="windows-delivered"><dt>delivered</dt><dd>2</dd>' in rows[0][2]
    assert '<div data-total="delivered"><dt>delivered</dt><dd>12</dd>' in rows[1][2]


def test_each_strip_says_the_time_it_covers():
    page = render_html(every_state())
    span = "· <time>2026-12-06T07:22:00Z</time> to <time>2026-12-06T07:57:00Z</time></small></h2>"
    assert span in page
    empty = render_html(build_coverage([config(first=NOW)], [], NOW, 7))
    assert "windows of 5m</small></h2>" in empty and "<time>" not in empty.split("</h1>")[1].split("</p>")[1]


def test_dag_ids_and_run_ids_from_the_database_are_escaped():
    page = render_html(every_state(dag_id=HOSTILE_DAG, run_id=HOSTILE_RUN))
    assert "<script" not in page
    assert "<img" not in page
    assert "onerror=alert(2)>" not in page
    parser = parsed(page)
    assert parser.sections[0]["data-dag-id"] == HOSTILE_DAG  # escaped in the markup, intact once parsed
    assert parser.cells[0]["href"] == f"http://127.0.0.1:8080/dags/{HOSTILE_DAG}/runs/{HOSTILE_RUN}0"
    assert set(parser.tags) <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "small", "p", "time"} | {
        "span",
        "form",
        "label",
        "input",
        "button",
        "a",
        "ul",
        "li",
        "section",
        "div",
        "dl",
        "dt",
        "dd",
    }


def test_the_page_loads_nothing_from_elsewhere():
    page = render_html(every_state())
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", page)
    assert "@import" not in page and "url(" not in page
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert all(h.startswith(("http://127.0.0.1:8080/dags/", "coverage.json?days=")) for h in hrefs)


def test_a_page_without_services_says_so():
    page = render_html(build_coverage([], [], NOW, 7))
    assert 'id="empty"' in page and 'data-problems="0"' in page


def test_a_week_of_five_minute_windows_renders_fast_and_compact():
    first = NOW - timedelta(days=8)
    runs = [
        RunRecord(
            "mdca_activities",
            f"scheduled__{k}",
            "success",
            first + PERIOD * k,
            first + PERIOD * (k + 1),
            finished_at=first + PERIOD * (k + 1),
            stats={"fetched": 400, "late": 2},
            ship={"delivered": 400},
        )
        for k in range(8 * 288)
    ]
    services = [config(f"mdca_{name}", first) for name in ("activities", "alerts", "files")]
    began = time.perf_counter()
    coverage = build_coverage(services, runs, NOW, 7, link=lambda d, r: f"http://127.0.0.1:8080/dags/{d}/runs/{r}")
    page = render_html(coverage)
    elapsed = time.perf_counter() - began
    assert len(coverage.services[0].windows) == 2016
    assert [cell["data-state"] for cell in parsed(page).cells].count("delivered") == 2016
    assert elapsed < 2.0, f"{elapsed:.2f}s for {len(page)} bytes"
    assert len(page) < 3 * 2016 * 330  # some 330 bytes a linked cell at most (the link is most of it)


def test_the_terminal_strip_is_one_character_a_window_with_a_legend():
    text = render_text(every_state())
    assert "legend: # delivered  F failed  R retrying  ~ running  . not run  x older than MDCA keeps" in text
    assert "[#xFR~.#]" in text
    assert "windows: 2 delivered, 1 failed, 1 retrying, 1 running, 1 not run, 1 older than MDCA keeps" in text
    assert "records: 12 fetched, 12 delivered, 3 late caught" in text
    assert "freshness: newest delivered window ends 2026-12-06T07:57:00Z, 5m ago" in text
    assert "failed: [2026-12-06T07:32:00Z, 2026-12-06T07:37:00Z)  run r2" in text
    assert "status: 2 window(s) failed or older than MDCA keeps" in text


def test_a_long_strip_is_summarised_showing_the_state_needing_attention_first():
    first = NOW - timedelta(days=1)
    failed_start = first + PERIOD * 10
    runs = [
        RunRecord("mdca_activities", f"r{k}", "success", first + PERIOD * k, first + PERIOD * (k + 1))
        for k in range(288)
        if k != 10
    ]
    runs.append(RunRecord("mdca_activities", "bad", "failed", failed_start, failed_start + PERIOD))
    text = render_text(build_coverage([config(first=first)], runs, NOW, 1), width=48)
    strip = re.search(r"\[([^\]]+)\] ", text)
    assert strip is not None
    # 287 windows due (the one ending now is not), 6 a character: window 10 falls in the second.
    assert strip.group(1) == "#F" + "#" * 46
    assert "(one character = 6 windows, the state needing attention first shown)" in text
    assert "failed: [" in text and "run bad" in text


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0s"), (42, "42s"), (300, "5m"), (12_000, "3h20m")])
def test_durations_read_as_a_person_would_say_them(seconds, shown):
    from airflow_provider_mdca.coverage.render import _duration

    assert _duration(seconds) == shown


def test_a_period_is_shown_exactly_as_the_config_spells_it_while_an_age_is_rounded():
    period = timedelta(days=1, hours=2, minutes=30)
    odd = ServiceWindows(None, "files", "files", "mdca_files", period, NOW - period * 3, timedelta(0), None, True)
    coverage = build_coverage([odd], [], NOW, 7)
    assert "windows of 1d2h30m · <time>" in render_html(coverage)
    assert "windows of 1d2h30m)" in render_text(coverage)
    assert _duration_of(period) == "1d2h"  # an age: two units are enough to read


def _duration_of(delta: timedelta) -> str:
    from airflow_provider_mdca.coverage.render import _duration

    return _duration(delta.total_seconds())
