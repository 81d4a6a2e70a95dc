"""``mdca-collector``: check the collector's setup without running it (the seed's "validate collector setup and exit").

Commands::

    mdca-collector validate [--config PATH]      the configuration, then every connection the enabled services use
    mdca-collector show-config [--config PATH]   the effective settings of every service (the file holds no secret)
    mdca-collector setup [--config PATH]         create the fetch tasks' pools (one slot; each tenant its own)
    mdca-collector schema                        the configuration's JSON schema
    mdca-collector undelivered [--deliver]       the windows failed runs left out of Devo; --deliver runs them again
    mdca-collector status [--days N] [--json]    per tenant and service, the windows of the last days: delivered,
                                                 failed, retrying, running, not run, expired; records and freshness

``validate`` checks, each on one line with ``OK``, ``FAIL`` or ``SKIP``:

- the configuration against its schema;
- the Airflow pool of the fetch tasks exists (tasks in a missing pool are never scheduled);
- per ``mdca`` connection: an Entra ID token, then one record of each enabled service;
- per ``devo`` connection: the TLS handshake with the client certificate, or an authenticated HTTP call;
- the obfuscation key, where a rule hashes.

It pulls nothing beyond one record per service and delivers nothing. Exit status: 0 when every check passed, 1 when
one failed, 2 when the configuration is invalid.

``status`` prints the coverage (:mod:`airflow_provider_mdca.coverage`, read from Airflow's metadata database): per
tenant and service a strip of the windows of the last ``--days`` (default 7), totals and freshness; ``--json`` the
document of the UI plugin's ``coverage.json``. Exit status: 0 when no window failed or is older than MDCA keeps, 1 when
one did, 2 when the configuration is invalid.

The config is ``--config``, else ``$MDCA_COLLECTOR_CONFIG``, else ``mdca_collector.yaml`` in Airflow's DAGs folder.
Connections and Variables come from Airflow: its metadata database, ``AIRFLOW_CONN_<ID>`` / ``AIRFLOW_VAR_<NAME>``
variables, or a secrets backend.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import yaml

from airflow_provider_mdca.config import SCHEMA, CollectorConfig, ServiceConfig, load_collector_config
from airflow_provider_mdca.coverage import DEFAULT_DAYS
from airflow_provider_mdca.coverage.model import MAX_DAYS
from airflow_provider_mdca.errors import InitVariablesError, MdcaProviderError
from airflow_provider_mdca.redaction import redact_text
from airflow_provider_mdca.services import SERVICES, AuthKind

if TYPE_CHECKING:
    from airflow_provider_mdca.client import MdcaClient

__all__ = ["Check", "main", "validate"]

CONFIG_ENV = "MDCA_COLLECTOR_CONFIG"
CONFIG_NAME = "mdca_collector.yaml"
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


@dataclass(frozen=True)
class Check:
    """The outcome of one check: ``ok`` is True, False, or None when it could not be run (SKIP)."""

    subject: str
    ok: bool | None
    detail: str

    def line(self) -> str:
        """``OK    <subject>: <detail>``, as printed."""
        status = {True: "OK", False: "FAIL", None: "SKIP"}[self.ok]
        return f"{status:<5} {self.subject}: {self.detail}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except BrokenPipeError:  # e.g. `mdca-collector show-config | head`: the reader has all it wanted
        # Python's documented recipe: point stdout at devnull so the interpreter's last flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdca-collector",
        description=(
            "Check and operate the MDCA to Devo collector: configuration, connections, coverage, undelivered windows."
        ),
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    config_help = f"the collector config (default: ${CONFIG_ENV}, else {CONFIG_NAME} in Airflow's DAGs folder)"
    validate_cmd = commands.add_parser(
        "validate", help="check the configuration and every connection; pull no data, deliver nothing"
    )
    validate_cmd.add_argument("--config", type=Path, help=config_help)
    validate_cmd.set_defaults(command=_validate_command)
    show = commands.add_parser("show-config", help="print the effective settings of every service")
    show.add_argument("--config", type=Path, help=config_help)
    show.set_defaults(command=_show_config_command)
    undelivered = commands.add_parser(
        "undelivered", help="list the windows whose runs failed (not delivered); --deliver runs them again"
    )
    undelivered.add_argument("--config", type=Path, help=config_help)
    undelivered.add_argument("--dag-id", help="only this DAG (default: every enabled service's)")
    undelivered.add_argument(
        "--deliver", action="store_true", help="clear their failed tasks: the scheduler delivers them, each record once"
    )
    undelivered.set_defaults(command=_undelivered_command)
    status = commands.add_parser(
        "status", help="the coverage: each service's windows of the last days, records, freshness (exit 1: failures)"
    )
    status.add_argument("--config", type=Path, help=config_help)
    status.add_argument(
        "--days",
        type=_days,
        default=DEFAULT_DAYS,
        help=f"how many days back (default {DEFAULT_DAYS}, at most {MAX_DAYS})",
    )
    status.add_argument("--json", action="store_true", help="the JSON document of the UI plugin's coverage.json")
    status.set_defaults(command=_status_command)
    setup = commands.add_parser(
        "setup", help="create the pools the fetch tasks run in (one slot each; an existing pool is left as it is)"
    )
    setup.add_argument("--config", type=Path, help=config_help)
    setup.set_defaults(command=_setup_command)
    schema = commands.add_parser("schema", help="print the configuration's JSON schema")
    schema.set_defaults(command=lambda _args: _print(json.dumps(SCHEMA, indent=2)))
    return parser


def _print(text: str) -> int:
    print(text, flush=True)
    return EXIT_OK


def config_path(given: Path | None = None) -> Path:
    """The config to read: ``given``, else ``$MDCA_COLLECTOR_CONFIG``, else the one in Airflow's DAGs folder."""
    if given is not None:
        return given
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    from airflow.configuration import conf

    return Path(conf.get("core", "dags_folder")).expanduser() / CONFIG_NAME


def _load(given: Path | None) -> CollectorConfig | None:
    path = config_path(given)
    try:
        return load_collector_config(path)
    except InitVariablesError as exc:
        print(Check(f"config {path}", False, str(exc)).line(), flush=True)
        return None


def _show_config_command(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    print(f"# effective configuration of {config.source}", flush=True)
    return _print(yaml.safe_dump(config.as_dict(), sort_keys=False).rstrip())


def _undelivered_command(args: argparse.Namespace) -> int:
    from airflow_provider_mdca import undelivered

    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    try:
        windows = [w for w in undelivered.failed_windows(config) if args.dag_id in (None, w.dag_id)]
        undelivered.report(windows)
        if args.deliver:
            undelivered.deliver(windows)
            return EXIT_OK
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"FAIL  {redact_text(str(exc))}", flush=True)
        return EXIT_FAILED
    return EXIT_FAILED if windows else EXIT_OK


def _setup_command(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    failed = False
    for pool, services in _grouped(config.dag_configs, lambda s: s.pool).items():
        check = create_pool(pool, [s.label for s in services])
        print(check.line(), flush=True)
        failed |= check.ok is False
    return EXIT_FAILED if failed else EXIT_OK


def create_pool(pool: str, services: list[str]) -> Check:
    """Create ``pool`` with one slot unless it exists (its slots are then the operator's choice, left alone).

    One slot: the services that share a pool share one tenant's 30 requests a minute, so their fetches take turns.
    """
    found = _pool_check(pool)
    if found.ok is None:  # the metadata database could not be read: nothing can be created either
        return Check(found.subject, False, found.detail.replace("not checked", "not created", 1))
    if found.ok:
        return Check(found.subject, True, f"{found.detail}; left as is")
    try:
        from airflow.models.pool import Pool

        description = f"MDCA API requests of {', '.join(services)}: one tenant's 30 requests a minute"
        Pool.create_or_update_pool(pool, 1, description, False)
    except Exception as exc:  # the database refused the write
        reason = f"Airflow's metadata database refused it ({type(exc).__name__})"  # a driver's text may quote its URL
        return Check(found.subject, False, f"not created: {reason}")
    return Check(found.subject, True, f"created with 1 slot for {', '.join(services)}")


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        days = 0
    if not 1 <= days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"a whole number of days from 1 to {MAX_DAYS}, not {text!r}")
    return days


def _status_command(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    from airflow_provider_mdca.coverage.airflow_db import read_coverage
    from airflow_provider_mdca.coverage.render import render_text

    try:
        coverage = read_coverage(config.dag_configs, args.days)
    except Exception as exc:  # no reachable metadata database, or one not migrated
        # The type only: a driver's message may quote the database URL, credentials included.
        print(f"FAIL  cannot read Airflow's metadata database ({type(exc).__name__})", flush=True)
        return EXIT_FAILED
    _print(json.dumps(coverage.as_dict(), indent=2) if args.json else render_text(coverage))
    return EXIT_FAILED if coverage.problems else EXIT_OK


def _validate_command(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    return validate(config)


def validate(config: CollectorConfig, out: Callable[[str], None] = print) -> int:
    """Run every check of ``config`` (already loaded), print one line each, return the exit status."""
    enabled = config.dag_configs
    names = ", ".join(service.label for service in enabled) or "none"
    checks = [Check(f"config {config.source}", True, f"valid; services enabled: {names}")]
    out(checks[0].line())
    # Like `airflow connections test`: look connections up in every backend, the metadata database included
    # (Airflow 3 otherwise reads only environment variables and external backends outside a task).
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")
    for check in _all_checks(enabled):
        out(check.line())
        checks.append(check)
    failed = sum(check.ok is False for check in checks)
    if failed:
        out(f"validate: {failed} of {len(checks)} checks failed")
        return EXIT_FAILED
    out(f"validate: all checks passed ({len(checks)} run, {sum(c.ok is None for c in checks)} skipped)")
    return EXIT_OK


def _all_checks(services: list[ServiceConfig]) -> Iterator[Check]:
    for pool in dict.fromkeys(s.pool for s in services):
        yield _pool_check(pool)
    for conn_id, group in _grouped(services, lambda s: s.mdca_conn_id).items():
        yield from _mdca_checks(conn_id, [s.name for s in group])
    for conn_id, group in _grouped(services, lambda s: s.devo_conn_id).items():
        yield _devo_check(conn_id, [s.label for s in group])
    hashing = [s for s in services if any(rule.method == "hmac" for rule in s.obfuscation)]
    for _, group in _grouped(hashing, lambda s: (s.obfuscation_key_conn_id, s.obfuscation_key_variable)).items():
        yield _obfuscation_check(group)


K = TypeVar("K")


def _grouped(services: list[ServiceConfig], key: Callable[[ServiceConfig], K]) -> dict[K, list[ServiceConfig]]:
    groups: dict[K, list[ServiceConfig]] = {}
    for service in services:
        groups.setdefault(key(service), []).append(service)
    return groups


def _error_text(exc: BaseException) -> str:
    """Our errors are already redacted and say their kind and code; anything else gets its type named."""
    if isinstance(exc, MdcaProviderError):
        return str(exc)
    return f"{type(exc).__name__}: {redact_text(str(exc))}"


def _pool_check(pool: str) -> Check:
    subject = f"pool {pool!r}"
    try:
        from airflow.models.pool import Pool

        found = Pool.get_pool(pool)
    except Exception as exc:  # no reachable metadata database: a deployment question, not a config error
        return Check(subject, None, f"not checked: cannot read Airflow's metadata database ({type(exc).__name__})")
    if found is None:
        return Check(
            subject,
            False,
            "does not exist, so the fetch tasks would never be scheduled; create it with one slot (the services "
            f'share one tenant\'s request budget): mdca-collector setup, or airflow pools set {pool} 1 "MDCA API"',
        )
    return Check(subject, True, f"exists with {found.slots} slot{'s' if found.slots != 1 else ''}")


def _mdca_checks(conn_id: str, services: list[str]) -> Iterator[Check]:
    """An Entra ID token (when a service needs one), then one record of each service."""
    from airflow_provider_mdca.hooks.mdca import MdcaHook

    subject = f"mdca connection {conn_id!r}"
    try:
        client = MdcaHook(mdca_conn_id=conn_id).get_conn()
    except Exception as exc:
        yield Check(subject, False, _error_text(exc))
        yield from (Check(name, None, f"not checked: the {subject} is unusable") for name in services)
        return
    try:
        if any(SERVICES[name].auth is AuthKind.ENTRA for name in services):
            try:
                client.get_token()
            except Exception as exc:
                yield Check(subject, False, _error_text(exc))
                yield from (Check(name, None, f"not checked: the {subject} gave no token") for name in services)
                return
            yield Check(subject, True, "Entra ID token obtained")
        for name in services:
            yield _probe(client, name, subject)
    finally:
        client.close()


def _probe(client: MdcaClient, service: str, subject: str) -> Check:
    if not client.config.has_credential_for(SERVICES[service]):
        return Check(
            service,
            False,
            f"the {subject} has no extra files_access_token: the files service needs the portal's legacy API "
            "token (Settings -> API tokens); set it, or disable files",
        )
    try:
        client.probe(service)
    except Exception as exc:
        return Check(service, False, _error_text(exc))
    return Check(service, True, f"one record readable through the {subject}")


def _devo_check(conn_id: str, services: list[str]) -> Check:
    from airflow_provider_mdca.hooks.devo import DevoHook

    subject = f"devo connection {conn_id!r} ({', '.join(services)})"
    hook = DevoHook(devo_conn_id=conn_id)
    try:
        ok, message = hook.test_connection()
    except Exception as exc:  # e.g. the connection is not defined
        return Check(subject, False, _error_text(exc))
    finally:
        hook.close()
    return Check(subject, ok, redact_text(message))


def _obfuscation_check(group: list[ServiceConfig]) -> Check:
    from airflow_provider_mdca.operators.obfuscation import build_obfuscator

    first = group[0]
    source = (
        f"connection {first.obfuscation_key_conn_id!r}"
        if first.obfuscation_key_conn_id
        else f"Variable {first.obfuscation_key_variable!r}"
    )
    subject = f"obfuscation key ({', '.join(s.label for s in group)})"
    try:
        for service in group:
            build_obfuscator(
                service.obfuscation_config,
                key_conn_id=service.obfuscation_key_conn_id,
                key_variable=service.obfuscation_key_variable,
            )
    except Exception as exc:
        return Check(subject, False, f"{source}: {_error_text(exc)}")
    return Check(subject, True, f"{source} holds a usable key")


if __name__ == "__main__":
    sys.exit(main())
