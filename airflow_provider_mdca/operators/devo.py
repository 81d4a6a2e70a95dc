"""Ship a staged window to Devo, each event once, and announce the Devo table as an Asset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_mdca._compat import Asset, BaseOperator, Context, Stats
from airflow_provider_mdca.hooks.devo import DevoHook
from airflow_provider_mdca.metrics import ServiceMetrics
from airflow_provider_mdca.operators._staging import peak_memory_mb, staged_location
from airflow_provider_mdca.operators.obfuscation import build_obfuscator
from airflow_provider_mdca.services import get_service
from airflow_provider_mdca.shipping import ship_stage

__all__ = ["DevoShipOperator", "devo_asset"]


def devo_asset(tag: str) -> Asset:
    """The Asset (a Dataset on Airflow 2.11) that stands for a Devo table: ``devo://<tag>``."""
    return Asset(f"devo://{tag}")


class DevoShipOperator(BaseOperator):
    """Staged events → obfuscation → Devo, to the service's table, each event once.

    Resumable: Devo's acknowledgements go into the window's delivery ledger batch by batch, so a retry continues after
    the last acknowledged batch, and a rerun of the window (cleared in the UI, or backfilled again) ships only what
    was not delivered before — unless the run's param ``reship`` is true, which ships the window again (once per run).
    On success the window is marked delivered (retention may then remove it) and an Asset event for ``devo://<tag>``
    carries the counts in its extra.

    :param service: the MDCA service whose events these are (sets the default tag).
    :param manifest: the staged stage's manifest location (template it from the fetch or flatten task's XCom).
    :param devo_conn_id: the ``devo`` connection.
    :param tag: the Devo table; default ``casb.microsoft_defender.cloud_apps.<service>``.
    :param obfuscation: obfuscation rules (see :mod:`airflow_provider_mdca.transforms.obfuscate`). For flattened alerts
        the flatten task applies them before flattening; rules it applied are not applied again here. A rule that
        reaches no field in the window is warned about and listed in ``obfuscation_unmatched``.
    :param obfuscation_key_conn_id: the connection whose password is the HMAC key, when a rule hashes.
    :param obfuscation_key_variable: or the Variable holding it.
    :param extra_fields: static fields added to every event (the seed collector's ``environment``); a field the
        record already has wins.
    :param staging_url: the staging base URL (the fetch task's): the manifest must lie under it; default
        ``[mdca] staging_url``, else ``file://$AIRFLOW_HOME/mdca/staging``.
    :param staging_conn_id: the connection of the object store used as staging, if any.
    :param tenant: the tenant of a multi-tenant collector (the fetch task's): its windows are staged below
        ``tenants/<tenant>``.
    """

    template_fields: Sequence[str] = ("manifest", "devo_conn_id", "staging_url", "staging_conn_id")
    ui_color = "#d4fbe0"

    def __init__(
        self,
        *,
        service: str,
        manifest: str,
        devo_conn_id: str = DevoHook.default_conn_name,
        tag: str | None = None,
        obfuscation: Sequence[str | Mapping[str, str]] | Mapping[str, str] | None = None,
        obfuscation_key_conn_id: str | None = None,
        obfuscation_key_variable: str | None = None,
        extra_fields: Mapping[str, Any] | None = None,
        staging_conn_id: str | None = None,
        staging_url: str | None = None,
        tenant: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.service_name = get_service(service).name
        self.tag = tag or get_service(service).devo_table
        kwargs.setdefault("outlets", [devo_asset(self.tag)])
        super().__init__(**kwargs)
        self.manifest = manifest
        self.devo_conn_id = devo_conn_id
        self.obfuscation = obfuscation
        self.obfuscation_key_conn_id = obfuscation_key_conn_id
        self.obfuscation_key_variable = obfuscation_key_variable
        self.extra_fields = dict(extra_fields) if extra_fields else None
        self.staging_conn_id = staging_conn_id
        self.staging_url = staging_url  # the manifest must lie under it (default: the configured staging base)
        self.tenant = tenant

    def execute(self, context: Context) -> dict[str, Any]:
        """Ship the window; return its delivery summary (counts only)."""
        if not self.manifest:
            raise ValueError(f"{self.service_name}: no manifest location (did the fetch task push one to XCom?)")
        # Before any secret is read.
        manifest = staged_location(self.manifest, self.staging_url, self.staging_conn_id, self.tenant)
        obfuscator = None
        if self.obfuscation:
            obfuscator = build_obfuscator(
                self.obfuscation,
                key_conn_id=self.obfuscation_key_conn_id,
                key_variable=self.obfuscation_key_variable,
            )
        reship = _truthy(context["params"].get("reship", False))
        metrics = ServiceMetrics(Stats, tenant=self.tenant, service=self.service_name)
        hook = DevoHook(devo_conn_id=self.devo_conn_id)
        try:
            summary = ship_stage(
                manifest,
                hook,
                tag=self.tag,
                obfuscator=obfuscator,
                extra_fields=self.extra_fields,
                reship_run=context["run_id"] if reship else None,
                attempt=context["ti"].try_number,
                on_acknowledged=metrics.delivered,
            )
        finally:
            hook.close()
        figures = summary.as_dict()
        self.log.info(
            "Statistics: service=%s tag=%s window=[%s, %s) staged=%d delivered=%d skipped_delivered_before=%d "
            "parts_skipped=%d bytes=%d batches=%d retries=%d reship=%s obfuscation_unmatched=%s elapsed=%.3fs "
            "peak_memory=%.1fMiB",
            self.service_name,
            self.tag,
            summary.window_start,
            summary.window_end,
            summary.staged,
            summary.delivered,
            summary.skipped_delivered_before,
            summary.parts_skipped,
            summary.bytes,
            summary.batches,
            summary.retries,
            summary.reship,
            ",".join(summary.obfuscation_unmatched),
            summary.elapsed_seconds,
            peak_memory_mb(),
        )
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = figures
        metrics.shipped(
            elapsed_seconds=summary.elapsed_seconds,
            window_end=summary.window_end,
        )
        return figures


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
