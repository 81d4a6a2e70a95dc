"""The coverage as text (``mdca-collector status``) and as a small HTML page (the Airflow 3 plugin's page).

Both are pure functions of a :class:`~airflow_provider_mdca.coverage.model.Coverage`. The page is server-rendered,
self-contained (inline CSS, no script, font or anything fetched from elsewhere) and escapes every value: DAG ids
and run ids come from the metadata database. Each window is one cell with stable attributes for scripts and
browser tests: ``data-state``, ``data-window-start`` (ISO 8601 UTC, ``Z``), ``data-fetched``, ``data-late``,
``data-delivered`` (when known), inside the service's ``<section data-dag-id=... data-service=... data-tenant=...>``;
a window that has a run is a link to it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from airflow_provider_mdca.config.durations import format_duration
from airflow_provider_mdca.coverage.model import MAX_DAYS, Coverage, ServiceCoverage, Window, WindowState, iso

__all__ = ["COLOURS", "LEGEND", "SYMBOLS", "render_html", "render_text"]

#: One character per state in the terminal.
SYMBOLS: Final[dict[WindowState, str]] = {
    WindowState.DELIVERED: "#",
    WindowState.FAILED: "F",
    WindowState.RETRYING: "R",
    WindowState.RUNNING: "~",
    WindowState.NOT_RUN: ".",
    WindowState.EXPIRED: "x",
}
#: The colour of each state on the page: failure red, trouble amber, work in progress blue, gaps grey.
COLOURS: Final[dict[WindowState, str]] = {
    WindowState.DELIVERED: "#2e9d4f",
    WindowState.FAILED: "#d62828",
    WindowState.RETRYING: "#f29e02",
    WindowState.RUNNING: "#3a86ff",
    WindowState.NOT_RUN: "#d4d4d8",
    WindowState.EXPIRED: "#3f3f46",
}
#: What each state means, in words (legend of both views).
LEGEND: Final[dict[WindowState, str]] = {
    WindowState.DELIVERED: "delivered",
    WindowState.FAILED: "failed",
    WindowState.RETRYING: "retrying",
    WindowState.RUNNING: "running",
    WindowState.NOT_RUN: "not run",
    WindowState.EXPIRED: "older than MDCA keeps",
}
#: When one character stands for several windows, the state it shows: the one that needs attention first.
_SEVERITY: Final = (
    WindowState.FAILED,
    WindowState.EXPIRED,
    WindowState.RETRYING,
    WindowState.NOT_RUN,
    WindowState.RUNNING,
    WindowState.DELIVERED,
)
#: Problem windows listed under a service's strip in the terminal, at most.
_LISTED: Final = 10


# -- text ------------------------------------------------------------------------------------------------------


def render_text(coverage: Coverage, width: int = 96) -> str:
    """The terminal view: per service a strip of at most ``width`` characters, totals, freshness, problem windows."""
    lines = [
        f"MDCA coverage of the last {coverage.days} day(s): windows ending after {_short(coverage.since)}, "
        f"as of {_short(coverage.generated_at)}",
        "legend: " + "  ".join(f"{SYMBOLS[state]} {LEGEND[state]}" for state in WindowState),
    ]
    if not coverage.services:
        lines.append("No enabled service in the configuration.")
    for service in coverage.services:
        lines.append("")
        lines.extend(_service_text(service, coverage.generated_at, width))
    failed = coverage.problems
    lines.append("")
    lines.append(
        f"status: {failed} window(s) failed or older than MDCA keeps"
        if failed
        else "status: no window failed or expired"
    )
    return "\n".join(lines)


def _service_text(service: ServiceCoverage, now: datetime, width: int) -> list[str]:
    config, totals = service.config, service.totals
    lines = [f"{config.label}  ({config.dag_id}, windows of {format_duration(config.period)})"]
    windows = service.windows
    if windows:
        per_char = max(1, -(-len(windows) // max(1, width)))
        strip = "".join(SYMBOLS[_worst(windows[i : i + per_char])] for i in range(0, len(windows), per_char))
        lines.append(f"  {_short(windows[0].start)} [{strip}] {_short(windows[-1].end)}")
        if per_char > 1:
            lines.append(f"  (one character = {per_char} windows, the state needing attention first shown)")
    else:
        lines.append("  no window due in the view yet")
    counts = ", ".join(f"{totals.windows.get(state, 0)} {LEGEND[state]}" for state in WindowState)
    lines.append(f"  windows: {counts}")
    lines.append(f"  records: {totals.fetched} fetched, {totals.delivered} delivered, {totals.late} late caught")
    lines.append("  " + _freshness_text(service))
    for state in (WindowState.FAILED, WindowState.EXPIRED, WindowState.RETRYING):
        lines.extend(_listed(windows, state))
    return lines


def _worst(windows: Sequence[Window]) -> WindowState:
    states = {window.state for window in windows}
    return next(state for state in _SEVERITY if state in states)


def _freshness_text(service: ServiceCoverage) -> str:
    newest = service.totals.newest_delivered
    if newest is None:
        return "freshness: nothing delivered yet"
    when = f", delivered {_short(newest.delivered_at)}" if newest.delivered_at else ""
    age = _duration(newest.freshness_seconds)
    return f"freshness: newest delivered window ends {_short(newest.end)}, {age} ago{when}"


def _listed(windows: Sequence[Window], state: WindowState) -> list[str]:
    chosen = [window for window in windows if window.state is state]
    lines = [
        f"  {LEGEND[state]}: [{_short(w.start)}, {_short(w.end)})" + (f"  run {w.run_id}" if w.run_id else "")
        for w in chosen[:_LISTED]
    ]
    if len(chosen) > _LISTED:
        lines.append(f"  ... and {len(chosen) - _LISTED} more {LEGEND[state]}")
    return lines


def _short(moment: datetime | None) -> str:
    return iso(moment) if moment else "-"


def _duration(seconds: float) -> str:
    """An age to the nearest two units: ``42s``, ``5m``, ``3h20m``, ``2d4h`` (negative: ``0s``).

    A window's period is shown exactly instead, as the config spells it (``format_duration``).
    """
    total = max(0, int(seconds))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{value}{unit}" for value, unit in parts if value][:2]
    return "".join(shown) or "0s"


# -- HTML ------------------------------------------------------------------------------------------------------

_CSS = (
    "body{font:14px/1.4 system-ui,sans-serif;margin:16px 24px;color:#18181b;background:#fff}"
    "h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:0 0 6px}h2 small{font-weight:400;color:#52525b}"
    ".meta{color:#52525b;margin:0 0 12px}form{display:inline}input{width:4em}"
    ".legend{display:flex;flex-wrap:wrap;gap:12px;list-style:none;padding:0;margin:0 0 16px}"
    ".legend li{display:flex;align-items:center;gap:4px}"
    ".svc{border-top:1px solid #e4e4e7;padding:12px 0}"
    ".strip{display:flex;flex-wrap:wrap;gap:1px;margin:0 0 8px}"
    ".c{display:block;width:7px;height:14px}"
    ".c:hover{outline:2px solid #18181b}"
    # One row each for the windows, the records and the newest delivery, its name first: "delivered" is said of
    # windows and of records, and a row's name tells which.
    ".totals .row{display:flex;gap:12px;align-items:baseline;margin:0 0 2px}"
    ".totals .what{flex:none;width:5.5em;color:#52525b;font-weight:600}"
    ".totals dl{display:flex;flex-wrap:wrap;gap:4px 20px;margin:0}.totals dl div{display:flex;gap:4px}"
    ".totals dt{color:#52525b}.totals dd{margin:0;font-weight:600}"
    ".ok{color:#2e9d4f}.bad{color:#d62828}"
    # Cells and legend swatches are coloured by their data-state: no class repeats it in each of thousands of cells.
    + "".join(
        f".c[data-state={state.value}],[data-state={state.value}]>.c{{background:{COLOURS[state]}}}"
        for state in WindowState
    )
)


def render_html(coverage: Coverage, *, json_href: str = "coverage.json") -> str:
    """The coverage page: a legend, then per service a strip of window cells (linked to their runs) and totals."""
    status_class = "bad" if coverage.problems else "ok"
    status = (
        f"{coverage.problems} window(s) failed or older than MDCA keeps"
        if coverage.problems
        else "no window failed or expired"
    )
    days = coverage.days
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        "<title>MDCA coverage</title><style>",
        _CSS,
        "</style></head><body>",
        "<h1>MDCA coverage</h1>",
        f'<p class="meta">Windows ending in the last {days} day(s), after {_e(iso(coverage.since))}; '
        f'as of <time id="generated-at">{_e(iso(coverage.generated_at))}</time>. '
        f'<span id="status" class="{status_class}" data-problems="{coverage.problems}">{_e(status)}</span>. '
        f'<form method="get"><label>Days <input name="days" type="number" min="1" max="{MAX_DAYS}" value="{days}">'
        f'</label> <button type="submit">Show</button></form> '
        f'<a id="json" href="{_e(json_href)}?days={days}">JSON</a></p>',
        _legend_html(),
    ]
    if not coverage.services:
        parts.append('<p id="empty">No enabled service in the configuration.</p>')
    parts.extend(_service_html(service) for service in coverage.services)
    parts.append("</body></html>")
    return "".join(parts)


def _legend_html() -> str:
    items = "".join(
        f'<li data-state="{state.value}"><span class="c"></span>{_e(LEGEND[state])}</li>' for state in WindowState
    )
    return f'<ul class="legend" id="legend">{items}</ul>'


def _service_html(service: ServiceCoverage) -> str:
    config = service.config
    tenant = config.tenant or ""
    heading = _e(config.label)
    cells = "".join(_cell_html(window) for window in service.windows)
    if not service.windows:
        cells = '<span class="none">no window due in the view yet</span>'
    return (
        f'<section class="svc" id="svc-{_e(config.dag_id)}" data-dag-id="{_e(config.dag_id)}" '
        f'data-service="{_e(config.service)}" data-tenant="{_e(tenant)}">'
        f"<h2>{heading} <small>{_e(config.dag_id)} · windows of {format_duration(config.period)}"
        f"{_span_html(service.windows)}</small></h2>"
        f'<div class="strip">{cells}</div>{_totals_html(service)}</section>'
    )


def _cell_html(window: Window) -> str:
    state = window.state.value
    counts = "".join(
        f' data-{name}="{value}"'
        for name, value in (("fetched", window.fetched), ("late", window.late), ("delivered", window.delivered))
        if value is not None
    )
    attributes = (
        f'class="c" data-state="{state}" data-window-start="{iso(window.start)}"{counts} title="{_e(_tooltip(window))}"'
    )
    if window.url:  # the run id is in the link: not repeated, 2016 cells a service make a week of 5-minute windows
        return f'<a {attributes} href="{_e(window.url)}"></a>'
    return f"<span {attributes}></span>"


def _tooltip(window: Window) -> str:
    end = iso(window.end)
    if end[:11] == iso(window.start)[:11]:  # the same day: its time alone
        end = end[11:]
    text = f"{iso(window.start)} - {end} {LEGEND[window.state]}"
    figures = [
        f"{name} {value}"
        for name, value in (("fetched", window.fetched), ("late", window.late), ("delivered", window.delivered))
        if value is not None
    ]
    if figures:
        text += ": " + ", ".join(figures)
    return text


def _span_html(windows: Sequence[Window]) -> str:
    """`` · <first start> to <last end>``: the time the strip covers (its cells say it one by one on hover)."""
    if not windows:
        return ""
    return f" · <time>{iso(windows[0].start)}</time> to <time>{iso(windows[-1].end)}</time>"


#: A total: its ``data-total`` key, its label and its value.
_Total = tuple[str, str, str]


def _totals_html(service: ServiceCoverage) -> str:
    totals = service.totals
    windows: list[_Total] = [
        (f"windows-{state.value}", LEGEND[state], str(totals.windows.get(state, 0))) for state in WindowState
    ]
    records: list[_Total] = [
        ("fetched", "fetched", str(totals.fetched)),
        ("delivered", "delivered", str(totals.delivered)),
        ("late", "late caught", str(totals.late)),
    ]
    newest = totals.newest_delivered
    if newest is None:
        freshness: list[_Total] = [("freshness", "freshness", "nothing delivered yet")]
    else:
        freshness = [
            ("freshness", "freshness", f"{_duration(newest.freshness_seconds)} (to {iso(newest.end)})"),
            ("delivered-at", "delivered at", _short(newest.delivered_at)),
        ]
    rows = "".join(
        _totals_row(name, items) for name, items in (("windows", windows), ("records", records), ("newest", freshness))
    )
    return f'<div class="totals">{rows}</div>'


def _totals_row(name: str, items: Sequence[_Total]) -> str:
    """One named row of totals: ``windows``, ``records`` or ``newest`` (the freshness of the newest delivery)."""
    listed = "".join(
        f'<div data-total="{key}"><dt>{_e(label)}</dt><dd>{_e(value)}</dd></div>' for key, label, value in items
    )
    return f'<div class="row" data-row="{name}"><span class="what">{name}</span><dl>{listed}</dl></div>'


def _e(text: str) -> str:
    return html.escape(text, quote=True)
