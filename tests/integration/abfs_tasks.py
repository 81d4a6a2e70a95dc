"""The collector's task steps, run in processes of their own as Airflow runs tasks: fetch, ship, clean up, read.

Usage: ``python -m tests.integration.abfs_tasks '[["fetch", {...}], ["ship", {...}]]'``: the steps run in order in
this one process, as successive tasks on one worker would, and each prints one JSON line with its result. Each step
builds what its operator builds (``staging_base`` / ``staging_path`` with the staging connection, the hooks with
their connections); the clean-up step runs the operator itself. A failed step is logged with its traceback, as
Airflow's task log would show it, and printed as ``{"error": ..., "message": ...}``; the next step still runs, and
the exit code is 1. Logging is at INFO for every library, so a test can read everything the steps said.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_mdca.hooks.devo import DevoHook
from airflow_provider_mdca.hooks.mdca import MdcaHook
from airflow_provider_mdca.operators._staging import staging_base, staging_path
from airflow_provider_mdca.operators.cleanup import MdcaStagingCleanupOperator
from airflow_provider_mdca.pipeline import fetch_to_stage
from airflow_provider_mdca.shipping import ship_stage
from airflow_provider_mdca.staging import read_stage, window_dir

log = logging.getLogger("abfs_tasks")


def fetch(args: dict[str, Any]) -> dict[str, Any]:
    """MdcaFetchOperator.execute's steps: the window's folder under the staging base, records from the hook."""
    start, end = datetime.fromisoformat(args["start"]), datetime.fromisoformat(args["end"])
    window = window_dir(staging_base(args["staging_url"], args["staging_conn_id"]), args["service"], start, end)
    hook = MdcaHook(mdca_conn_id=args["mdca_conn_id"])
    log.info("Fetching %s for the window [%s, %s) into %s", args["service"], start, end, window)
    records = hook.fetch(args["service"], start, end)
    manifest, summary = fetch_to_stage(
        records,
        window,
        service=args["service"],
        start=start,
        end=end,
        stats=records.stats,
        max_part_bytes=args.get("max_part_bytes", 64 * 1024 * 1024),
    )
    log.info("Staged %s", summary.as_dict())
    return {"manifest": str(manifest), "records": summary.records, "parts": summary.parts}


def ship(args: dict[str, Any]) -> dict[str, Any]:
    """DevoShipOperator.execute's steps: the manifest's location from XCom, the Devo hook, the ledger."""
    hook = DevoHook(devo_conn_id=args["devo_conn_id"])
    try:
        summary = ship_stage(staging_path(args["manifest"], args["staging_conn_id"]), hook, tag=args["tag"])
    finally:
        hook.close()
    log.info("Shipped %s", summary.as_dict())
    return summary.as_dict()


def cleanup(args: dict[str, Any]) -> dict[str, Any]:
    """The retention clean-up operator itself (its execute needs nothing from the context)."""
    operator = MdcaStagingCleanupOperator(
        task_id="cleanup",
        service=args["service"],
        staging_url=args["staging_url"],
        staging_conn_id=args["staging_conn_id"],
        retention=timedelta(seconds=args["retention_seconds"]),
    )
    context: Any = {}  # the clean-up reads nothing from it
    return {"removed": operator.execute(context)}


def read(args: dict[str, Any]) -> dict[str, Any]:
    """Read every record of a staged stage back, checking each part (as the flatten step does)."""
    path = staging_path(args["manifest"], args["staging_conn_id"])
    return {"records": sum(1 for _ in read_stage(path))}


STEPS = {"fetch": fetch, "ship": ship, "cleanup": cleanup, "read": read}


def main(argv: list[str]) -> int:
    # After the imports: Airflow configures logging when imported, and this replaces it with plain INFO to stderr.
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        force=True,
        format="%(relativeCreated)7.0fms %(levelname)s %(name)s %(message)s",
    )
    status = 0
    for name, args in json.loads(argv[0]):
        try:
            result = STEPS[name](args)
        except Exception as exc:
            log.exception("Step %s failed", name)
            result, status = {"error": type(exc).__name__, "message": str(exc)}, 1
        print(json.dumps(result), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
