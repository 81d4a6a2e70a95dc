"""Flatten staged alerts into one event per combination of related entities (the seed collector's rule)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_mdca._compat import BaseOperator, Context, Stats
from airflow_provider_mdca.metrics import ServiceMetrics
from airflow_provider_mdca.operators._staging import peak_memory_mb, staged_location
from airflow_provider_mdca.operators.obfuscation import build_obfuscator
from airflow_provider_mdca.pipeline import flatten_stage
from airflow_provider_mdca.staging import DEFAULT_MAX_PART_BYTES
from airflow_provider_mdca.transforms.flatten import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS

__all__ = ["MdcaFlattenAlertsOperator"]


class MdcaFlattenAlertsOperator(BaseOperator):
    """Staged alerts → staged flattened events (the window's ``flattened`` stage), streaming part to part.

    An alert with more than ``max_events_per_alert`` combinations, or whose events would take more than
    ``max_bytes_per_alert`` bytes, is kept whole, once, marked ``flatten_capped``. Returns the flattened stage's
    manifest location.

    :param manifest: the fetched alerts' manifest location (template it from the fetch task's XCom).
    :param max_events_per_alert: the cap on one alert's events.
    :param max_bytes_per_alert: the cap on the size of one alert's events together (compact JSON).
    :param obfuscation: obfuscation rules applied to each alert before it is flattened, so that their paths are the
        alert's own (``entities[].label``); give the ship task the same rules: it skips those applied here.
    :param obfuscation_key_conn_id: the connection whose password is the HMAC key, when a rule hashes.
    :param obfuscation_key_variable: or the Variable holding it.
    :param staging_url: the staging base URL (the fetch task's): the manifest must lie under it; default
        ``[mdca] staging_url``, else ``file://$AIRFLOW_HOME/mdca/staging``.
    :param staging_conn_id: the connection of the object store used as staging, if any.
    :param tenant: the tenant of a multi-tenant collector (the fetch task's): its windows are staged below
        ``tenants/<tenant>``.
    """

    template_fields: Sequence[str] = ("manifest", "staging_url", "staging_conn_id")
    ui_color = "#e8d4fb"

    def __init__(
        self,
        *,
        manifest: str,
        max_events_per_alert: int = DEFAULT_MAX_EVENTS,
        max_bytes_per_alert: int = DEFAULT_MAX_BYTES,
        obfuscation: Sequence[str | Mapping[str, str]] | Mapping[str, str] | None = None,
        obfuscation_key_conn_id: str | None = None,
        obfuscation_key_variable: str | None = None,
        staging_conn_id: str | None = None,
        staging_url: str | None = None,
        max_part_bytes: int = DEFAULT_MAX_PART_BYTES,
        tenant: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_events_per_alert < 1:
            raise ValueError(f"max_events_per_alert must be at least 1, got {max_events_per_alert}")
        if max_bytes_per_alert < 1:
            raise ValueError(f"max_bytes_per_alert must be at least 1, got {max_bytes_per_alert}")
        self.manifest = manifest
        self.max_events_per_alert = max_events_per_alert
        self.max_bytes_per_alert = max_bytes_per_alert
        self.obfuscation = obfuscation
        self.obfuscation_key_conn_id = obfuscation_key_conn_id
        self.obfuscation_key_variable = obfuscation_key_variable
        self.staging_conn_id = staging_conn_id
        self.staging_url = staging_url  # the manifest must lie under it (default: the configured staging base)
        self.max_part_bytes = max_part_bytes
        self.tenant = tenant

    def execute(self, context: Context) -> str:
        """Flatten the staged alerts; return the flattened manifest's location."""
        if not self.manifest:
            raise ValueError("flatten: no manifest location (did the fetch task push one to XCom?)")
        source = staged_location(self.manifest, self.staging_url, self.staging_conn_id, self.tenant)
        obfuscator = None
        if self.obfuscation:
            obfuscator = build_obfuscator(
                self.obfuscation,
                key_conn_id=self.obfuscation_key_conn_id,
                key_variable=self.obfuscation_key_variable,
            )
        path, summary = flatten_stage(
            source,
            max_events_per_alert=self.max_events_per_alert,
            max_bytes_per_alert=self.max_bytes_per_alert,
            max_part_bytes=self.max_part_bytes,
            obfuscator=obfuscator,
        )
        self.log.info(
            "Statistics: service=alerts window=[%s, %s) alerts_in=%d events_out=%d capped=%d capped_by_bytes=%d "
            "obfuscation_unmatched=%s parts=%d elapsed=%.3fs peak_memory=%.1fMiB",
            summary.window_start,
            summary.window_end,
            summary.stats.get("alerts_in", 0),
            summary.records,
            summary.stats.get("capped", 0),
            summary.stats.get("capped_by_bytes", 0),
            ",".join(obfuscator.unmatched()) if obfuscator is not None else "",
            summary.parts,
            summary.elapsed_seconds,
            peak_memory_mb(),
        )
        metrics = ServiceMetrics(Stats, tenant=self.tenant, service="alerts")
        metrics.flattened(events=summary.records, elapsed_seconds=summary.elapsed_seconds)
        return str(path)
