"""How a configuration value is named in a message: short, and typed where the type is the problem."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["describe"]


def describe(value: object) -> str:
    """A value for a message: short, and typed where the type is the problem."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return f"a {type(value).__name__}" if not isinstance(value, (list, tuple, Mapping)) else _container(value)


def _container(value: object) -> str:
    return "a list" if isinstance(value, (list, tuple)) else "a mapping"
