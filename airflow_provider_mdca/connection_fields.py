"""Connection form fields, as data.

One source for ``get_provider_info()`` (Airflow >= 3.2 reads ``conn-fields`` / ``ui-field-behaviour``)
and for the hook classmethods that Airflow 2.11 still calls.

Imports nothing from Airflow, so the provider info stays cheap to load.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MDCA_CONN_FIELDS", "MDCA_UI_FIELD_BEHAVIOUR"]

MDCA_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "tenant_id": {
        "label": "Tenant ID",
        "description": "Required. The Entra ID directory (tenant) ID of the app registration.",
        "schema": {"type": ["string", "null"]},
    },
    "token_url": {
        "label": "Token URL",
        "description": "Entra ID login host; change it for sovereign clouds (e.g. https://login.microsoftonline.us/).",
        "schema": {"type": ["string", "null"], "default": "https://login.microsoftonline.com/"},
    },
    "files_access_token": {
        "label": "Files API token",
        "description": "Only for the files service: the legacy API token from the Defender for Cloud Apps portal "
        "(Settings -> API tokens). No Entra ID permission covers files.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "verify": {
        "label": "TLS verification",
        "description": "true (system CAs, or REQUESTS_CA_BUNDLE) or the path of a CA bundle. TLS is always verified.",
        "schema": {"type": ["string", "null"], "default": "true"},
    },
    "requests_per_minute": {
        "label": "Requests per minute",
        "description": "Client-side limit; MDCA allows 30 requests a minute per tenant for all endpoints together.",
        "schema": {"type": ["number", "null"], "default": 30},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Seconds to wait for one API response.",
        "schema": {"type": ["number", "null"], "default": 120},
    },
}

MDCA_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port"],
    "relabeling": {"host": "API base URL", "login": "Client ID", "password": "Client secret"},
    "placeholders": {
        "host": "https://mytenant.us2.portal.cloudappsecurity.com/",
        "login": "00000000-0000-0000-0000-000000000000 (application ID)",
        "password": "client secret of the app registration",
        "tenant_id": "00000000-0000-0000-0000-000000000000",
        "token_url": "https://login.microsoftonline.com/",
        "verify": "true",
        "requests_per_minute": "30",
        "timeout": "120",
    },
}
