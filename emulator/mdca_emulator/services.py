"""The MDCA services the emulator serves: the provider's registry (:mod:`airflow_provider_mdca.services`), read here.

The registry is the one home of every per-service fact: names, endpoints, paging, credentials, the window's filter
and record fields. The emulator keeps no list of its own: it serves exactly the services the collector collects,
routes by the registry's endpoints, and takes the tenant settings of each from whether it is windowed.

What the emulator adds per service is the shape of its records (``records.SHAPES``) and the few answers MDCA gives
only for some services (``mdca.py``), each a table keyed by the registry's names. :func:`check_table` holds those
tables to the registry when they are imported, so a service added to (or renamed in) the registry without its record
shape fails at once instead of being served wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from airflow_provider_mdca.services import SERVICES, AuthKind, Paging, Service

__all__ = [
    "NAMES",
    "SERVICES",
    "SNAPSHOTS",
    "WINDOWED",
    "AuthKind",
    "Paging",
    "Service",
    "by_path",
    "check_table",
    "get",
]

#: Every service, in the registry's order.
NAMES: tuple[str, ...] = tuple(SERVICES)
#: The services read window by window (a filter on a time field).
WINDOWED: tuple[str, ...] = tuple(name for name, service in SERVICES.items() if service.windowed)
#: The services read whole every time (snapshots).
SNAPSHOTS: tuple[str, ...] = tuple(name for name, service in SERVICES.items() if not service.windowed)

# The path segments of each endpoint ("api/v1/subnet/" -> ("api", "v1", "subnet")), to the service's name.
_BY_PATH: dict[tuple[str, ...], str] = {
    tuple(part for part in service.endpoint.split("/") if part): name for name, service in SERVICES.items()
}


def get(name: str) -> Service:
    """The service called `name`; ValueError naming the valid names otherwise."""
    try:
        return SERVICES[name]
    except KeyError:
        raise ValueError(f"unknown service {name!r}; expected one of {', '.join(NAMES)}") from None


def by_path(parts: Sequence[str]) -> str | None:
    """The name of the service whose endpoint is the path `parts` (``["api", "v1", "subnet"]``), or None."""
    return _BY_PATH.get(tuple(parts))


def check_table(table: Mapping[str, object], what: str, *, complete: bool) -> None:
    """Raise RuntimeError unless `table`'s keys are registry names (and, when `complete`, all of them)."""
    unknown = sorted(set(table) - set(SERVICES))
    missing = sorted(set(SERVICES) - set(table)) if complete else []
    if unknown or missing:
        raise RuntimeError(
            f"the emulator's {what} are out of step with airflow_provider_mdca.services.SERVICES: "
            f"missing {missing}, not in the registry {unknown}"
        )
