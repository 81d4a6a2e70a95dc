"""Pipeline benchmark: the collector's three stages, the API budget, and a naive collector, end to end (not a test).

What it measures (issue 4, "Benchmark"), against the emulators (MDCA + Entra ID + Devo, one child process):

1. Stages. Each stage of ``airflow_provider_mdca.pipeline`` runs in a child process of its own, as an Airflow task
   does: fetch (``MdcaClient.fetch`` -> ``fetch_to_stage`` into a local staging folder), flatten (alerts:
   ``flatten_stage``) and ship (``ship_stage`` to the Devo emulator, over the TLS relay and over HTTP), with
   throttling off, on 1,000,000 activities and 100,000 alerts, and again on 10,000-record windows.

   Columns. ``records/s``: the stage's records over the stage's own time (interpreter start and imports excluded):
   records fetched for fetch, alerts read for flatten, events shipped for ship (for alerts: the flattened
   events). ``stage max`` and ``emu max``: records per CPU-second of the stage's process and of the emulator
   process, i.e. the rate each could sustain with a whole core to itself. The lower one is the bottleneck; when the
   emulator's is below the target, the emulator, not the collector, limits the stage (the output says so). A fetch
   waits for each page; the emulator builds the next page while the client takes in the last (its read-ahead, as a
   real MDCA computes on servers of its own), so the two overlap. Without that, they would take turns: about
   records / (stage + emulator CPU seconds), which the notes print for a slow stage. ``others``: cores used by
   every other process of the machine meanwhile (a busy machine slows the wall-clock rate, not the ceilings).
   ``peak MB``: the child's ``ru_maxrss``, imports included (about 32 MB of it). ``d10k``: that peak minus the same
   stage's peak on the 10k window (streaming stays flat however large the window).

   Targets: ``rate`` >= 20,000 records/s (full windows; on a 10k window the TLS sender's one-off 1 s certificate
   check dominates), ``<=256`` peak <= 256 MB on both windows, ``flat`` d10k <= 32 MB. After each ship the Devo
   emulator's count for the tag must equal what the stage delivered.
2. API efficiency. The emulator throttled at R requests/minute and the client's limiter at R (``MdcaConfig``): a
   many-page alerts window must take at most 1.05 x pages / R minutes with zero 429 answers (counted by the client
   and by the emulator). Reuses ``bench_fetch``'s tenant, client and ``measure``.
3. A naive collector, as common collectors are written: ``requests`` + ``json``, the whole window read into one
   list (scan paging, 5,000 a page, the legacy API token), then one HTTP POST per event to the Devo HTTP API's
   ``/event`` endpoint over a keep-alive session (what per-event webhook-style senders do). Measured the same way
   (child process, records/s, peak RSS) on a smaller window, then extrapolated linearly to the full one (it says
   so), and compared with the pipeline's end to end (fetch + ship of the same service, same API: HTTP).

The staging folder is a plain local ``pathlib.Path`` (the operators use ``ObjectStoragePath("file://...")``); the
figures exclude Airflow's own footprint in a task process.

    make bench                                                        # runs it after bench_fetch and bench_ship
    make bench PIPELINE_ARGS=--quick
    .venv/bin/python bench/bench_pipeline.py                          # the issue's sizes, about 4 minutes
    .venv/bin/python bench/bench_pipeline.py --quick                  # a smoke run (targets not enforced)
    .venv/bin/python bench/bench_pipeline.py --activities 200000 --alerts 20000 --naive 5000

Exit status 1 when an enforced target fails; everything is printed either way.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from mdca_emulator.process import EmulatorProcess

# Only the standard library and requests at module level: every child process imports this file, and the naive
# collector's memory must not carry the provider's modules. Provider imports live in the functions that use them.

RATE_TARGET = 20_000.0
PEAK_TARGET_MB = 256.0
FLAT_TARGET_MB = 32.0
THROTTLE_SLACK = 1.05
NAIVE_PAGE = 5000
HOURS = 1  # every tenant's data sits in [START, START + 1 h): bench_fetch's layout

Figures = dict[str, Any]


# --- child processes: one stage each, reporting one JSON line --------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _window() -> tuple[datetime, datetime]:
    from bench_fetch import START

    return START, START + timedelta(hours=HOURS)


def _attached(state_dir: str) -> EmulatorProcess:
    """The running emulator, described by its ``emulator.json`` (0600), for bench_fetch's ``_client``."""
    from mdca_emulator.process import EmulatorProcess

    emulator = EmulatorProcess(state_dir=Path(state_dir))
    emulator.info = json.loads((Path(state_dir) / "emulator.json").read_text(encoding="utf-8"))
    return emulator


def _stage_fetch(spec: Figures) -> Figures:
    from bench_fetch import _client

    from airflow_provider_mdca.pipeline import fetch_to_stage
    from airflow_provider_mdca.staging import window_dir

    service = spec["service"]
    start, end = _window()
    window = window_dir(Path(spec["staging"]), service, start, end)
    with _client(_attached(spec["state_dir"]), spec["tenant"], None) as client:
        began = time.perf_counter()
        records = client.fetch(service, start, end)
        manifest, summary = fetch_to_stage(records, window, service=service, start=start, end=end, stats=records.stats)
        seconds = time.perf_counter() - began
        requests_made = records.stats.requests
    return {
        "records": summary.records,
        "out": summary.records,
        "seconds": seconds,
        "manifest": str(manifest),
        "note": f"{requests_made} requests, {summary.parts} parts, {summary.bytes / 2**20:.0f} MB staged",
    }


def _stage_flatten(spec: Figures) -> Figures:
    from airflow_provider_mdca.pipeline import flatten_stage

    began = time.perf_counter()
    manifest, summary = flatten_stage(Path(spec["manifest"]))
    seconds = time.perf_counter() - began
    return {
        "records": summary.stats["alerts_in"],
        "out": summary.records,
        "seconds": seconds,
        "manifest": str(manifest),
        "note": f"{summary.records:,} events out",
    }


def _stage_ship(spec: Figures) -> Figures:
    from bench_ship import configs

    from airflow_provider_mdca.devo import make_sender
    from airflow_provider_mdca.shipping import ship_stage

    info = json.loads((Path(spec["state_dir"]) / "emulator.json").read_text(encoding="utf-8"))
    sender = make_sender(configs(info["devo"])[spec["transport"]])
    try:
        began = time.perf_counter()
        summary = ship_stage(Path(spec["manifest"]), sender, tag=spec["tag"])
        seconds = time.perf_counter() - began
    finally:
        sender.close()
    stats = sender.totals
    return {
        "records": summary.delivered,
        "out": summary.delivered,
        "seconds": seconds,
        "note": f"{stats.batches} batches, {stats.bytes / 2**20:.0f} MB on the wire",
    }


def _stage_naive(spec: Figures) -> Figures:
    """requests + json + the whole window in one list + one POST per event: how common collectors do it."""
    from urllib.parse import quote

    info = json.loads((Path(spec["state_dir"]) / "emulator.json").read_text(encoding="utf-8"))
    tenant = next(t for t in info["tenants"] if t["tenant_id"] == spec["tenant"])
    devo = info["devo"]
    start_ms = spec["start_ms"]
    end_ms = start_ms + HOURS * 3_600_000
    session = requests.Session()
    # REQUESTS_CA_BUNDLE would otherwise override verify; it also spares the naive requests' environment scan on
    # every request (about 0.5 ms each): in its favour.
    session.trust_env = False
    session.verify = info["ca_bundle"]
    headers = {"Authorization": f"Token {tenant['files_access_token']}"}
    body: dict[str, Any] = {"filters": {"date": {"gte": start_ms, "lte": end_ms - 1}}, "isScan": True}
    body["limit"] = NAIVE_PAGE
    began = time.perf_counter()
    records: list[dict[str, Any]] = []
    while True:
        response = session.post(f"{tenant['mdca_url']}api/v1/activities/", json=body, headers=headers, timeout=120)
        response.raise_for_status()
        page = response.json()
        records.extend(page["data"])
        if not page["hasNext"]:
            break
        body["filters"] = page["nextQueryFilters"]
    fetched = time.perf_counter()
    url = f"{devo['http_url']}/event/{quote(devo['domain'])}/token!{quote(devo['token'])}/bench-naive/{spec['tag']}"
    for record in records:
        response = session.post(url, data=json.dumps(record), timeout=60)
        response.raise_for_status()
    done = time.perf_counter()
    session.close()
    return {
        "records": len(records),
        "out": len(records),
        "seconds": done - began,
        "fetch_seconds": fetched - began,
        "send_seconds": done - fetched,
        "note": "",
    }


_STAGES: dict[str, Callable[[Figures], Figures]] = {
    "fetch": _stage_fetch,
    "flatten": _stage_flatten,
    "ship": _stage_ship,
    "naive": _stage_naive,
}


# What each stage imports, loaded before the measurement starts: CPU and time figures are the stage's work only.
_IMPORTS: dict[str, tuple[str, ...]] = {
    "fetch": ("bench_fetch", "airflow_provider_mdca.pipeline", "mdca_emulator.process"),
    "flatten": ("airflow_provider_mdca.pipeline",),
    "ship": ("bench_ship", "airflow_provider_mdca.devo", "airflow_provider_mdca.pipeline"),
    "naive": ("urllib.parse",),
}


def _child(spec: Figures) -> int:
    for module in _IMPORTS[spec["stage"]]:
        importlib.import_module(module)
    baseline = _rss_now_mb()
    pid = spec["emulator_pid"]
    emulator_before, own_before, busy_before = _cpu_seconds(pid), _own_cpu_seconds(), _machine_busy_seconds()
    wall_before = time.perf_counter()
    figures = _STAGES[spec["stage"]](spec)
    figures["wall_s"] = time.perf_counter() - wall_before
    figures["emulator_cpu_s"] = _cpu_seconds(pid) - emulator_before
    figures["stage_cpu_s"] = _own_cpu_seconds() - own_before
    figures["machine_busy_s"] = _machine_busy_seconds() - busy_before
    figures["baseline_mb"] = baseline
    figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures), flush=True)
    return 0


def _machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine spent (all cores), from the first line of ``/proc/stat``."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def run_child(spec: Figures) -> Figures:
    """Run one stage in a fresh interpreter (as a task runs in its own process); its figures."""
    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {spec['stage']} child failed with status {done.returncode} (its stderr is above)")
    figures: Figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


# --- the parent: emulator, stages, checks, report ------------------------------------------------------------------


@dataclass
class StageRun:
    """One stage on one window, with its figures and the same stage's figures on the 10k window."""

    service: str
    stage: str
    full: Figures
    small: Figures | None = None
    verdicts: dict[str, bool] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.service} {self.stage}"

    @property
    def rate(self) -> float:
        return float(self.full["records"]) / float(self.full["seconds"])

    @property
    def flat_mb(self) -> float | None:
        return None if self.small is None else float(self.full["peak_mb"]) - float(self.small["peak_mb"])

    def ceiling(self, process: str) -> float:
        """Records per CPU-second of ``stage`` or ``emulator``: its rate if it had a whole core to itself."""
        seconds = float(self.full[f"{process}_cpu_s"])
        if process == "emulator" and self.stage == "flatten":
            return float("inf")  # flattening reads and writes staging only: the emulator idles
        return float(self.full["records"]) / seconds if seconds > 0 else float("inf")

    @property
    def others(self) -> float:
        """Cores used by every other process of the machine while the stage ran (other people's work)."""
        full = self.full
        other = float(full["machine_busy_s"]) - float(full["stage_cpu_s"]) - float(full["emulator_cpu_s"])
        return max(other, 0.0) / float(full["wall_s"])


class Bench:
    """Drives the children against one emulator process and collects what they report."""

    def __init__(self, root: Path, emulator: EmulatorProcess, emulator_pid: int) -> None:
        self.root = root
        self.emulator = emulator
        self.state_dir = str(emulator.state_dir)
        self.pid = emulator_pid

    def child(self, stage: str, **spec: Any) -> Figures:
        return run_child({"stage": stage, "state_dir": self.state_dir, "emulator_pid": self.pid, **spec})

    def devo_count(self, tag: str) -> int:
        devo = self.emulator.info["devo"]
        response = requests.get(f"{devo['admin_url'].rstrip('/')}/tags", verify=devo["ca_bundle"], timeout=60)
        response.raise_for_status()
        return int(response.json()["tags"].get(tag, 0))

    def mdca_stats(self, tenant_id: str) -> Figures:
        url = f"{self.emulator.info['admin_url'].rstrip('/')}/tenants/{tenant_id}/stats"
        response = requests.get(url, verify=self.emulator.ca_bundle, timeout=60)
        response.raise_for_status()
        stats: Figures = response.json()
        return stats

    def chain(self, service: str, label: str, tenant: str, transports: list[str]) -> dict[str, Figures]:
        """fetch (-> flatten) -> ship per transport, for one window; each stage's figures by stage name."""
        staging = self.root / label / "staging"
        out: dict[str, Figures] = {}
        fetched = out["fetch"] = self.child("fetch", service=service, tenant=tenant, staging=str(staging))
        manifest = Path(fetched["manifest"])
        if service == "alerts":
            flattened = out["flatten"] = self.child("flatten", manifest=str(manifest))
            manifest = Path(flattened["manifest"])
        for transport in transports:
            copy = self._stage_copy(manifest, self.root / label / f"ship-{transport}")
            tag = f"bench.pipeline.{service}.{label}.{transport}"
            shipped = out[f"ship {transport}"] = self.child("ship", manifest=str(copy), transport=transport, tag=tag)
            shipped["devo_count"] = self.devo_count(tag)
        return out

    @staticmethod
    def _stage_copy(manifest: Path, base: Path) -> Path:
        """The stage under a window of its own (hard links): each transport ships a window not delivered before."""
        stage_folder = manifest.parent
        window = stage_folder.parent
        target = base / window.parent.name / window.name / stage_folder.name
        shutil.copytree(stage_folder, target, copy_function=os.link)
        return target / manifest.name


def _mb(value: Any) -> str:
    return f"{float(value):.0f}"


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "FAIL")


def print_stages(runs: list[StageRun], small: int, enforce: bool) -> list[str]:
    """The stage table; returns notes (bottlenecks, Devo count mismatches)."""
    size = f"{small // 1000}k" if small % 1000 == 0 else f"{small}"
    head = (
        f"{'stage':<20} {'records':>10} {'s':>7} {'records/s':>10} {'stage max':>10} {'emu max':>10} {'others':>6} "
        f"{'peak MB':>7} {f'{size} peak':>8} {f'd{size}':>5}  {'rate':>4} {'<=256':>5} {'flat':>4}  notes"
    )
    print(head)
    print("-" * len(head))
    notes: list[str] = []
    for run in runs:
        full, tiny, flat = run.full, run.small, run.flat_mb
        run.verdicts = {
            "rate": run.rate >= RATE_TARGET,
            "peak": float(full["peak_mb"]) <= PEAK_TARGET_MB
            and (tiny is None or float(tiny["peak_mb"]) <= PEAK_TARGET_MB),
        }
        if flat is not None:
            run.verdicts["flat"] = flat <= FLAT_TARGET_MB
        if "devo_count" in full:
            run.verdicts["devo"] = full["devo_count"] == full["records"]
            if not run.verdicts["devo"]:
                notes.append(
                    f"{run.label}: Devo holds {full['devo_count']:,} events, the stage delivered {full['records']:,}"
                )
        print(
            f"{run.label:<20} {full['records']:>10,} {full['seconds']:>7.2f} {run.rate:>10,.0f} "
            f"{_rate(run.ceiling('stage')):>10} {_rate(run.ceiling('emulator')):>10} {run.others:>6.2f} "
            f"{_mb(full['peak_mb']):>7} {_mb(tiny['peak_mb']) if tiny else '-':>8} "
            f"{f'{flat:+.0f}' if flat is not None else '-':>5}  "
            f"{_mark(run.verdicts['rate']):>4} {_mark(run.verdicts['peak']):>5} {_mark(run.verdicts.get('flat')):>4}"
            f"  {full['note']}"
        )
        if not run.verdicts["rate"]:
            notes.append(_why_slow(run))
    if not enforce:
        notes.append("quick run: targets printed, not enforced (the issue's figures need the default sizes)")
    return notes


def _rate(value: float) -> str:
    return "-" if value == float("inf") else f"{value:,.0f}"


def _why_slow(run: StageRun) -> str:
    """Which process a stage that missed the rate target waited for, from the CPU each one spent per record."""
    full = run.full
    stage, emulator = run.ceiling("stage"), run.ceiling("emulator")
    side = "Devo" if run.stage.startswith("ship") else "MDCA"
    context = ""
    if emulator != float("inf"):
        turns = float(full["records"]) / (float(full["stage_cpu_s"]) + float(full["emulator_cpu_s"]))
        context = f"; were they to take turns (request, then answer), about {turns:,.0f}/s on an idle machine"
    if run.stage == "ship tls":
        context += "; includes the TLS sender's one-off 1 s wait for a certificate refusal"
    if run.others > 0.1:
        context += f"; other processes used {run.others:.2f} of {os.cpu_count()} cores meanwhile"
    if emulator < RATE_TARGET and emulator <= stage:
        return (
            f"{run.label}: the emulator is the bottleneck: its {side} side spends {1e6 / emulator:.0f} us of CPU per "
            f"record, at most {emulator:,.0f} records/s on a whole core (the stage itself: {stage:,.0f}/s){context}"
        )
    if stage < RATE_TARGET:
        produced = float(full["out"]) / float(full["seconds"])
        output = f" ({produced:,.0f} records out/s)" if full["out"] != full["records"] else ""
        return (
            f"{run.label}: the stage's own CPU is the bottleneck: {1e6 / stage:.0f} us per record, at most "
            f"{stage:,.0f} records/s on a whole core{output}{context}"
        )
    return (
        f"{run.label}: neither process is short of CPU per record (stage {stage:,.0f}/s, emulator {_rate(emulator)}/s "
        f"on a whole core){context}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--activities", type=int, help="activities in the full window (default 1,000,000)")
    parser.add_argument("--alerts", type=int, help="alerts in the full window (default 100,000)")
    parser.add_argument("--small", type=int, help="records in the small window (default 10,000)")
    parser.add_argument("--naive", type=int, help="activities the naive collector reads and sends (default 10,000)")
    parser.add_argument("--transports", default="tls,http", help="ship transports, comma-separated")
    parser.add_argument("--throttle-rpm", type=int, default=120, help="R for the API-efficiency check")
    parser.add_argument("--throttle-pages", type=int, help="pages for the API-efficiency check (default 40)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run; targets not enforced")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(json.loads(args.child))
    quick = args.quick
    activities = args.activities or (30_000 if quick else 1_000_000)
    alerts = args.alerts or (10_000 if quick else 100_000)
    small = args.small or (5_000 if quick else 10_000)  # >= one 5,000-record scan page
    naive = args.naive or (1_000 if quick else 10_000)
    pages = args.throttle_pages or (6 if quick else 40)
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mdca-bench-pipeline-") as tmp:
        status = _run(Path(tmp), activities, alerts, small, naive, pages, args.throttle_rpm, transports, not quick)
    print(f"\ntotal {time.perf_counter() - began:.0f} s")
    return status


def _run(
    root: Path,
    activities: int,
    alerts: int,
    small: int,
    naive: int,
    pages: int,
    rpm: int,
    transports: list[str],
    enforce: bool,
) -> int:
    from bench_fetch import START_MS, _client, _tenant, measure

    from mdca_emulator.process import EmulatorProcess

    tenants = [
        _tenant("bench-full", activities, alerts, HOURS, None),
        _tenant("bench-small", small, small, HOURS, None),
        _tenant("bench-naive", naive, 0, HOURS, None),
        _tenant("bench-throttled", 0, pages * 100 - 50, HOURS, rpm),
    ]
    print(
        f"pipeline benchmark: {activities:,} activities, {alerts:,} alerts (small windows: {small:,}), "
        f"ship over {' + '.join(transports)}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n"
    )
    failures: list[str] = []
    with EmulatorProcess(state_dir=root / "emulator", tenants=tenants) as emulator:
        assert emulator._proc is not None  # the emulator's pid, to read its CPU time
        bench = Bench(root, emulator, emulator._proc.pid)

        # 1. stages
        runs: list[StageRun] = []
        for service in ("activities", "alerts"):
            full = bench.chain(service, "full", "bench-full", transports)
            tiny = bench.chain(service, "small", "bench-small", transports)
            runs += [StageRun(service, stage, figures, tiny.get(stage)) for stage, figures in full.items()]
        notes = print_stages(runs, small, enforce)
        for run in runs:
            failures += [f"{run.label}: {name}" for name, ok in run.verdicts.items() if not ok]

        # 2. API efficiency (bench_fetch's tenant, client and measure)
        with _client(emulator, "bench-throttled", rpm) as client:
            client.get_token()  # outside the measurement, as in bench_fetch
            figures = measure(client, "alerts", HOURS)
            fetched_pages = int(figures["pages"])
        served_429 = int(bench.mdca_stats("bench-throttled")["throttled"])
        bound = THROTTLE_SLACK * fetched_pages * 60 / rpm
        throttle_ok = figures["seconds"] <= bound and figures["throttled"] == 0 and served_429 == 0
        if not throttle_ok:
            failures.append("API efficiency")
        print(
            f"\nAPI efficiency: R={rpm}/min on both sides, {figures['records']:,.0f} alerts in {fetched_pages} pages "
            f"({figures['requests']:.0f} requests): {figures['seconds']:.1f} s, bound 1.05 x pages / R = {bound:.1f} s "
            f"({figures['seconds'] / bound:.3f} of it); 429s: {figures['throttled']:.0f} seen by the client, "
            f"{served_429} served  {_mark(throttle_ok)}"
        )

        # 3. the naive collector
        naive_tag = "bench.pipeline.naive"
        plain = bench.child("naive", tenant="bench-naive", start_ms=START_MS, tag=naive_tag)
        plain["devo_count"] = bench.devo_count(naive_tag)
    _print_naive(plain, naive, activities, runs, transports, small)
    if plain["devo_count"] != plain["records"]:
        failures.append("naive delivery count")

    for note in notes:
        print(f"note: {note}")
    if failures and enforce:
        print(f"\nFAIL: {', '.join(failures)}")
        return 1
    print(f"\n{'PASS' if not failures else 'targets not enforced'}: {', '.join(failures) or 'every target met'}")
    return 0


def _print_naive(
    plain: Figures, size: int, activities: int, runs: list[StageRun], transports: list[str], small: int
) -> None:
    records = int(plain["records"])
    scale = activities / records if records else 0.0
    rate = records / float(plain["seconds"])
    growth = float(plain["peak_mb"]) - float(plain["baseline_mb"])
    projected_mb = float(plain["baseline_mb"]) + growth * scale
    print(
        f"\nnaive collector (requests + json, the window in one list, one HTTP POST per event to /event), "
        f"{records:,} activities measured: fetch {plain['fetch_seconds']:.2f} s "
        f"({records / plain['fetch_seconds']:,.0f}/s), send {plain['send_seconds']:.2f} s "
        f"({records / plain['send_seconds']:,.0f}/s), end to end {rate:,.0f} records/s; "
        f"peak {_mb(plain['peak_mb'])} MB "
        f"({_mb(plain['baseline_mb'])} MB after imports, +{growth:.0f} MB for the window); Devo holds "
        f"{plain['devo_count']:,}"
    )
    if scale != 1.0:
        print(
            f"  extrapolated linearly to {activities:,} activities (not measured): "
            f"{activities / rate / 60:,.1f} min, peak about {projected_mb:,.0f} MB"
        )
    stages = {run.stage: run for run in runs if run.service == "activities"}
    fetch = stages.get("fetch")
    if fetch is None:
        return
    for transport in transports:
        ship = stages.get(f"ship {transport}")
        if ship is None:
            continue
        seconds = float(fetch.full["seconds"]) + float(ship.full["seconds"])
        e2e = float(fetch.full["records"]) / seconds
        peak = max(float(fetch.full["peak_mb"]), float(ship.full["peak_mb"]))
        line = (
            f"pipeline, {fetch.full['records']:,} activities, fetch + ship {transport}: {seconds:.1f} s, "
            f"{e2e:,.0f} records/s end to end, peak {peak:.0f} MB (the larger stage) -> {e2e / rate:.1f}x the naive "
            f"throughput, {projected_mb / peak:.1f}x less memory than the naive's (extrapolated) peak"
        )
        if fetch.small is not None and ship.small is not None and size == small:
            small_peak = max(float(fetch.small["peak_mb"]), float(ship.small["peak_mb"]))
            line += f"; on the same {small:,} window, measured: {small_peak:.0f} MB vs {_mb(plain['peak_mb'])} MB"
        print(line)


if __name__ == "__main__":
    sys.exit(main())
