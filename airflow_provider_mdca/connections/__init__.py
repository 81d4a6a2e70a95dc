"""The provider's two Airflow connection types, ``mdca`` and ``devo``: their form fields and their parsing.

- :mod:`.forms` — the connection forms as data (the provider info and Airflow 2.11's form are built from it);
- :mod:`.parsing` — what both connections share: the extra as a mapping, ``verify``, errors naming the field;
- :mod:`.mdca` — :class:`MdcaConfig`, a validated view of an ``mdca`` connection (what the MDCA client needs);
- :mod:`.devo` — :class:`DevoConfig`, a validated view of a ``devo`` connection (what a Devo sender needs).

Imports nothing from Airflow: the hooks read the connection and hand its fields over.
"""

from __future__ import annotations

from airflow_provider_mdca.connections.devo import DevoConfig
from airflow_provider_mdca.connections.mdca import MdcaConfig

__all__ = ["DevoConfig", "MdcaConfig"]
