"""The obfuscation key, read from an Airflow connection or Variable when a task runs, and the obfuscator built on it.

The ship operator (and ``mdca-collector validate``) use it; the obfuscation itself is the pure transform
:mod:`airflow_provider_mdca.transforms.obfuscate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from airflow_provider_mdca._compat import BaseHook, Variable, mask_secret
from airflow_provider_mdca.errors import InitVariablesError
from airflow_provider_mdca.transforms.obfuscate import Obfuscator, parse_rules

__all__ = ["build_obfuscator", "get_obfuscation_key"]


def get_obfuscation_key(*, conn_id: str | None = None, variable: str | None = None) -> bytes:
    """The HMAC key: the password of connection ``conn_id``, or the value of Airflow Variable ``variable``.

    Exactly one source must be named. The key is masked in Airflow's logs and never appears in an error.
    """
    if (conn_id is None) == (variable is None):
        raise InitVariablesError(3, "obfuscation key: name exactly one of a connection id or a Variable")
    if conn_id is not None:
        secret = BaseHook.get_connection(conn_id).password
        where = f"connection {conn_id!r} field password"
    else:
        assert variable is not None
        secret = Variable.get(variable)
        where = f"Variable {variable!r}"
    if not secret:
        raise InitVariablesError(3, f"obfuscation key: {where} is empty")
    mask_secret(secret)
    return secret.encode("utf-8")


def build_obfuscator(
    paths: Sequence[str | Mapping[str, str]] | Mapping[str, str],
    *,
    key_conn_id: str | None = None,
    key_variable: str | None = None,
) -> Obfuscator | None:
    """An obfuscator for a service's configured paths (None when there are none); loads the key only if needed."""
    rules = parse_rules(paths)
    if not rules:
        return None
    needs_key = any(rule.method == "hmac" for rule in rules)
    key = get_obfuscation_key(conn_id=key_conn_id, variable=key_variable) if needs_key else None
    return Obfuscator(rules, key=key)
