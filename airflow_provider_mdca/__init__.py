"""Apache Airflow provider for Microsoft Defender for Cloud Apps (MDCA) into the Devo SIEM."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    """The provider metadata Airflow reads through the ``apache_airflow_provider`` entry point.

    Keep it importable without Airflow and without side effects: one invalid provider breaks every
    ``airflow`` command.
    """
    from airflow_provider_mdca.connections.forms import (
        DEVO_CONN_FIELDS,
        DEVO_UI_FIELD_BEHAVIOUR,
        MDCA_CONN_FIELDS,
        MDCA_UI_FIELD_BEHAVIOUR,
    )

    return {
        "package-name": "airflow-provider-mdca",
        "name": "Microsoft Defender for Cloud Apps to Devo",
        "description": "Collects Microsoft Defender for Cloud Apps activities, alerts, entities, subnets and files "
        "into Devo, one Airflow data interval at a time.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Microsoft Defender for Cloud Apps",
                "external-doc-url": "https://learn.microsoft.com/en-us/defender-cloud-apps/api-introduction",
                "tags": ["security"],
            },
            {
                "integration-name": "Devo",
                "external-doc-url": "https://docs.devo.com/space/latest/94652410/Sending+data+to+Devo",
                "tags": ["security"],
            },
        ],
        "hooks": [
            {
                "integration-name": "Microsoft Defender for Cloud Apps",
                "python-modules": ["airflow_provider_mdca.hooks.mdca"],
            },
            {"integration-name": "Devo", "python-modules": ["airflow_provider_mdca.hooks.devo"]},
        ],
        "connection-types": [
            {
                "connection-type": "mdca",
                "hook-class-name": "airflow_provider_mdca.hooks.mdca.MdcaHook",
                "hook-name": "Microsoft Defender for Cloud Apps",
                "conn-fields": MDCA_CONN_FIELDS,
                "ui-field-behaviour": MDCA_UI_FIELD_BEHAVIOUR,
            },
            {
                "connection-type": "devo",
                "hook-class-name": "airflow_provider_mdca.hooks.devo.DevoHook",
                "hook-name": "Devo",
                "conn-fields": DEVO_CONN_FIELDS,
                "ui-field-behaviour": DEVO_UI_FIELD_BEHAVIOUR,
            },
        ],
    }
