"""Task callbacks of the collector's DAGs: the operator is told what is down while an outage lasts.

Each DAG built by :mod:`airflow_provider_mdca.dag_factory` gets one :class:`OutageCallbacks` per service:

- ``on_retry_callback``: a failed try that Airflow will retry logs one line saying what is down (MDCA, Entra ID,
  Devo, staging), since when (the outage's first failed try, across windows: :class:`~.recovery.OutageBook`), which
  try this is and until when it will be retried; counts the retry (the metric ``task_retries``,
  :mod:`airflow_provider_mdca.metrics`); then the configured notifiers for ``retry`` are called;
- ``on_failure_callback``: the last try failed (the outage outlasted ``recovery_horizon``, or the error is not one a
  retry can cure): it logs, loudly, the window that is not delivered and the one command that delivers every such
  window once the cause is repaired; then the ``failure`` notifiers;
- ``on_success_callback``: a try that succeeds ends the outages it proves over (a fetch: MDCA and Entra ID; a ship:
  Devo; any task: staging) and logs how long they lasted.

Notifiers are Airflow's own (``BaseNotifier`` subclasses such as the Slack, SMTP or Teams providers' notifiers, or any
callable taking the task's context), named in the collector config's ``notify`` and built when the DAG is parsed (no
connection is read then: a notifier reads its connection when it is called).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_mdca.config.durations import format_duration
from airflow_provider_mdca.config.model import NotifierSpec
from airflow_provider_mdca.errors import InitVariablesError
from airflow_provider_mdca.metrics import ServiceMetrics, StatsEmitter
from airflow_provider_mdca.recovery import OutageBook, component_of, outage_line
from airflow_provider_mdca.timestamps import format_iso

__all__ = ["OutageCallbacks", "build_notifiers", "deliver_command"]

log = logging.getLogger(__name__)

Callback = Callable[[Mapping[str, Any]], Any]

# What a successful try of each task proves is up again (by task id, as dag_factory names them).
_PROVES: dict[str, tuple[str, ...]] = {
    "fetch": ("MDCA", "Entra ID", "staging"),
    "flatten": ("staging",),
    "ship": ("Devo", "staging"),
    "cleanup": ("staging",),
}


def deliver_command(dag_id: str | None = None) -> str:
    """The one command that delivers every window left undelivered by a failed run (``mdca-collector``)."""
    return "mdca-collector undelivered --deliver" + (f" --dag-id {dag_id}" if dag_id else "")


class OutageCallbacks:
    """The retry, failure and success callbacks of one service's tasks.

    :param staging_base: a callable returning the staging base (an ``ObjectStoragePath``), called only when a
        callback runs, so that building the DAG touches no storage.
    :param retry_span: how long the tasks are retried (``recovery_horizon``), for the log line's "until when".
    :param tenant: the tenant of a multi-tenant collector (None: single-tenant), for the metrics' names.
    :param stats: a callable returning where metrics go, called only when a retry is counted; default Airflow's
        ``Stats`` (imported then: this module imports nothing from Airflow).
    """

    def __init__(
        self,
        *,
        service: str,
        staging_base: Callable[[], Any],
        retry_span: timedelta,
        notifiers: Mapping[str, list[Callback]] | None = None,
        tenant: str | None = None,
        stats: Callable[[], StatsEmitter] | None = None,
        dag_id: str | None = None,
    ) -> None:
        self.service = service
        self.tenant = tenant
        self.dag_id = dag_id or f"mdca_{service}"  # named in the recovery command when the context has no task
        self.stats = stats or _airflow_stats
        self.staging_base = staging_base
        self.retry_span = retry_span
        self.notifiers = {event: list((notifiers or {}).get(event, [])) for event in ("retry", "failure")}

    def on_retry(self, context: Mapping[str, Any]) -> None:
        """A failed try that will be retried: one line on what is down and since when, then the notifiers."""
        outage = self._note_failure(context)
        if outage is not None:
            log.warning("%s", self._line(context, outage))
        self._count_retry(context)
        self._notify("retry", context)

    def on_failure(self, context: Mapping[str, Any]) -> None:
        """The run gives up on this window: say so loudly, with the command that delivers it, then notify."""
        outage = self._note_failure(context)
        ti = context.get("ti")
        dag_id = getattr(ti, "dag_id", None) or self.dag_id
        what = self._line(context, outage) if outage is not None else str(context.get("exception"))
        log.error(
            "NOT DELIVERED: %s %s is not delivered to Devo after %s of retries (%s). Nothing staged is lost. Once the "
            "cause is repaired, deliver every such window, each record once, with: %s",
            self.service,
            _window(context),
            _span_text(self.retry_span),
            what,
            deliver_command(dag_id),
        )
        self._notify("failure", context)

    def on_success(self, context: Mapping[str, Any]) -> None:
        """A try that succeeded: the outages it proves over end (logged with how long they lasted)."""
        proves = _PROVES.get(getattr(context.get("ti"), "task_id", ""), ())
        if not proves:
            return
        book = self._book()
        if book is None:
            return
        now = datetime.now(timezone.utc)
        for outage in book.recovered(proves):
            log.info(
                "%s is back: it was down from %s for %s (%d failed tries); %s %s delivered on",
                outage.component,
                _iso(outage.since),
                _span_text(now - outage.since),
                outage.failures,
                self.service,
                _window(context),
            )

    def _count_retry(self, context: Mapping[str, Any]) -> None:
        try:
            emitter = self.stats()
        except Exception as exc:  # a metric is a report, never a control
            log.warning("task_retries of %s was not counted: %s", self.service, exc)
            return
        metrics = ServiceMetrics(emitter, tenant=self.tenant, service=self.service)
        metrics.task_retried(getattr(context.get("ti"), "task_id", None))

    def _note_failure(self, context: Mapping[str, Any]) -> Any:
        exc = context.get("exception")
        book = self._book()
        if book is None or not isinstance(exc, BaseException):
            return None
        return book.failed(component_of(exc), exc)

    def _book(self) -> OutageBook | None:
        try:
            return OutageBook(self.staging_base() / self.service)
        except Exception as exc:  # a report, never a control
            log.warning("the outage record of %s is not available: %s", self.service, exc)
            return None

    def _line(self, context: Mapping[str, Any], outage: Any) -> str:
        ti = context.get("ti")
        task = context.get("task")
        return outage_line(
            outage,
            task=f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')}",
            window=_window(context),
            try_number=int(getattr(ti, "try_number", 1) or 1),
            retries=int(getattr(task, "retries", 0) or 0),
            horizon=self.retry_span,
        )

    def _notify(self, event: str, context: Mapping[str, Any]) -> None:
        for notifier in self.notifiers[event]:
            try:
                notifier(context)
            except Exception:  # one broken notifier must not hide the others, nor the task's own error
                log.exception("the %s notifier %r failed", event, notifier)


def build_notifiers(specs: Iterable[NotifierSpec], *, where: str) -> dict[str, list[Callback]]:
    """The notifiers named in ``notify``, by event (``retry``, ``failure``), built now (at DAG parse time).

    :param where: the config path for messages (``services.alerts.notify``).
    :raises InitVariablesError: a notifier cannot be imported or built; the message names the entry.
    """
    built: dict[str, list[Callback]] = {"retry": [], "failure": []}
    for index, spec in enumerate(specs):
        notifier = _build(spec, f"{where}[{index}]")
        for event in spec.on:
            built[event].append(notifier)
    return built


def _build(spec: NotifierSpec, where: str) -> Callback:
    module_name, _, name = spec.notifier.rpartition(".")
    try:
        target = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise InitVariablesError(1, f"{where}.notifier: cannot import {spec.notifier!r} ({exc})") from None
    if not callable(target):
        raise InitVariablesError(1, f"{where}.notifier: {spec.notifier!r} is not callable")
    if isinstance(target, type) or spec.args:
        try:
            target = target(**dict(spec.args))
        except Exception as exc:
            raise InitVariablesError(1, f"{where}.args: {spec.notifier} refused them ({exc})") from None
    if not callable(target):
        raise InitVariablesError(1, f"{where}.notifier: {spec.notifier!r} did not build a callable notifier")
    return target  # type: ignore[no-any-return]


def _airflow_stats() -> StatsEmitter:
    """Airflow's ``Stats``, imported when a callback first needs it (building a DAG needs no metrics)."""
    from airflow_provider_mdca._compat import Stats

    return Stats


def _window(context: Mapping[str, Any]) -> str:
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    return f"[{_iso(start)}, {_iso(end)})"


def _iso(moment: Any) -> str:
    if isinstance(moment, datetime):
        return format_iso(moment)
    return str(moment)


def _span_text(delta: timedelta) -> str:
    return format_duration(timedelta(seconds=int(delta.total_seconds())))
