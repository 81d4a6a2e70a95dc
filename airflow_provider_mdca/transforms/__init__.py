"""Pure event transforms applied between MDCA and Devo: alert flattening and field obfuscation.

Nothing here imports Airflow: the functions take and return plain JSON-shaped dicts.
"""

from __future__ import annotations

from airflow_provider_mdca.transforms.flatten import (
    FlattenStats,
    count_field,
    entity_field,
    flatten_alert,
    flatten_alerts,
    flatten_event,
    list_field,
)
from airflow_provider_mdca.transforms.flatten_json import flatten_alerts_json
from airflow_provider_mdca.transforms.obfuscate import (
    ObfuscationRule,
    ObfuscationStats,
    Obfuscator,
    parse_path,
    parse_rules,
)

__all__ = [
    "FlattenStats",
    "ObfuscationRule",
    "ObfuscationStats",
    "Obfuscator",
    "count_field",
    "entity_field",
    "flatten_alert",
    "flatten_alerts",
    "flatten_alerts_json",
    "flatten_event",
    "list_field",
    "parse_path",
    "parse_rules",
]
