"""Find and stop the Entra ID token agents (``airflow_provider_mdca.token_agent``) serving a directory.

The test run, the demo and the benchmarks give each run its own agent directory (``MDCA_TOKEN_AGENT_DIR``) and stop
its agents when they end: an agent otherwise lives until it has been idle for an hour.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from pathlib import Path

__all__ = ["agent_pids", "stop_agents"]

_MODULE = b"airflow_provider_mdca.token_agent"


def agent_pids(directory: Path) -> list[int]:
    """The agents serving ``directory`` (their command line names it)."""
    wanted = os.fsencode(str(directory))
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if _MODULE in argv and wanted in argv:
                found.append(int(entry.name))
    return found


def stop_agents(directory: Path) -> None:
    """Kill the agents of ``directory`` and remove it."""
    for pid in agent_pids(directory):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(directory, ignore_errors=True)
