"""``mdca-emulator`` / ``python -m mdca_emulator``: run the emulator until SIGTERM or SIGINT.

On start it writes ``<state-dir>/emulator.json`` (mode 0600: it holds the tenants' credentials) and prints the
same JSON as one line on stdout, so a parent process can read one line and connect::

    {"base_url": ..., "token_url": ..., "ca_bundle": ..., "admin_url": ...,
     "tenants": [{"tenant_id", "mdca_url", "client_id", "client_secret", "files_access_token"}],
     "devo": {"relay_host", "relay_port", "http_url", "admin_url", "domain", "token", "ca_bundle",
              "client_cert", "client_key", "store_dir"}}

The Devo relay and HTTP ingestion emulator (``devo.py``) runs beside the MDCA one with the same CA; ``--no-devo``
leaves it out (and the ``devo`` key with it).

``--clock-rate R`` (with ``--clock-origin``, default now) compresses the server clock: every tenant's time runs R
times as fast as the wall clock, so that an Airflow scheduler sees consecutive windows of MDCA time pass while
records are stored from 0 to 72 hours late; ``POST /_admin/clock`` changes it while running. ``--time-model`` sets
the model of tenants whose configuration names none (``realistic`` unless said).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

from mdca_emulator.demo import demo_tenant
from mdca_emulator.devo import DEFAULT_DOMAIN, DevoEmulator
from mdca_emulator.server import LOOPBACK, EmulatorServer
from mdca_emulator.state import TIME_MODELS, TenantConfig

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdca-emulator",
        description="Run the MDCA and Entra ID emulator on 127.0.0.1 until SIGTERM or SIGINT.",
    )
    parser.add_argument("--host", default=LOOPBACK, help="listen address; only 127.0.0.1 is allowed")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    parser.add_argument("--state-dir", type=Path, help="CA, certificates, emulator.json (default: temp)")
    parser.add_argument("--config", type=Path, help="JSON file: one TenantConfig object or a list of them")
    parser.add_argument("--seed", type=int, help="seed for tenants whose config sets none (default 0)")
    parser.add_argument(
        "--time-model",
        choices=TIME_MODELS,
        help="time model for tenants whose config sets none (default realistic: late records, changing alerts)",
    )
    clock = parser.add_argument_group("server clock (compressed time, for end-to-end runs)")
    clock.add_argument(
        "--clock-origin",
        type=_epoch_ms,
        help="the time the clock shows at start: epoch ms or ISO 8601 (default: now)",
    )
    clock.add_argument(
        "--clock-rate",
        type=float,
        help="emulated seconds per real second, e.g. 60: a real second is an emulated minute (default 1)",
    )
    parser.add_argument("--log-level", default="WARNING", help="Python logging level (default WARNING)")
    devo = parser.add_argument_group("Devo relay and HTTP ingestion emulator")
    devo.add_argument("--no-devo", action="store_true", help="do not start the Devo emulator")
    devo.add_argument("--devo-domain", default=DEFAULT_DOMAIN, help=f"Devo domain (default {DEFAULT_DOMAIN})")
    devo.add_argument("--devo-relay-port", type=int, default=0, help="TLS relay port (0: any free port)")
    devo.add_argument("--devo-http-port", type=int, default=0, help="HTTP ingestion port (0: any free port)")
    devo.add_argument("--devo-store-dir", type=Path, help="NDJSON per tag (default: <state-dir>/devo-store)")
    return parser


def _epoch_ms(text: str) -> int:
    """Epoch milliseconds from digits, or from ISO 8601 text (UTC when it names no zone)."""
    if text.strip().lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not epoch ms or ISO 8601: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def load_tenants(path: Path, seed: int | None, time_model: str | None = None) -> list[TenantConfig]:
    """Tenant configs from a JSON file; `seed` and `time_model` fill in where a config has none."""
    raw: Any = json.loads(path.read_text(encoding="utf-8"))
    items = raw if isinstance(raw, list) else [raw]
    defaults: dict[str, Any] = {} if seed is None else {"seed": seed}
    if time_model is not None:
        defaults["time_model"] = time_model
    return [TenantConfig.from_dict({**defaults, **item}) for item in items]


def _devo(args: argparse.Namespace, server: EmulatorServer) -> contextlib.AbstractContextManager[DevoEmulator | None]:
    """The Devo emulator to run beside `server` (sharing its CA), or nothing with ``--no-devo``."""
    if args.no_devo:
        return contextlib.nullcontext()
    return DevoEmulator(
        server.state_dir,
        domain=args.devo_domain,
        store_dir=args.devo_store_dir,
        relay_port=args.devo_relay_port,
        http_port=args.devo_http_port,
        ca=server.ca,
    )


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Run the emulator; returns the process exit status (0 after SIGTERM/SIGINT)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.host not in (LOOPBACK, "localhost"):
        parser.error(f"--host must be {LOOPBACK}: the emulator never listens beyond loopback")
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    state_dir: Path = args.state_dir or Path(tempfile.mkdtemp(prefix="mdca-emulator-"))
    try:
        if args.config:
            tenants = load_tenants(args.config, args.seed, args.time_model)
        else:
            tenants = [demo_tenant(seed=args.seed or 0, time_model=args.time_model)]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        parser.error(f"bad --config: {exc}")
    if args.clock_rate is not None and args.clock_rate < 0:
        parser.error("--clock-rate must be >= 0")
    if not args.devo_domain or "/" in args.devo_domain:
        parser.error("--devo-domain must be non-empty and contain no '/'")

    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with EmulatorServer(state_dir, args.port, tenants) as server, _devo(args, server) as devo:
        if args.clock_origin is not None or args.clock_rate is not None:
            rate = 1.0 if args.clock_rate is None else args.clock_rate
            server.set_rate(rate, args.clock_origin)
        info = server.describe()
        if devo is not None:
            info["devo"] = devo.describe()
        text = json.dumps(info)
        _write_private(state_dir / "emulator.json", text + "\n")
        print(text, flush=True)
        # Short waits keep the main thread responsive to signals.
        while not stopping.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
