"""The connection forms of ``mdca`` and ``devo``, as data, and Airflow 2.11's form built from them.

One source for ``get_provider_info()`` (Airflow >= 3.2 reads ``conn-fields`` / ``ui-field-behaviour``)
and for the hook classmethods that Airflow 2.11 still calls (:func:`form_widgets`, :func:`field_behaviour`).

Imports nothing from Airflow, so the provider info stays cheap to load; Airflow 2.11's form classes are imported
only when its webserver asks for the widgets.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DEVO_CONN_FIELDS",
    "DEVO_UI_FIELD_BEHAVIOUR",
    "MDCA_CONN_FIELDS",
    "MDCA_UI_FIELD_BEHAVIOUR",
    "field_behaviour",
    "form_widgets",
]

MDCA_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "tenant_id": {
        "label": "Tenant ID",
        "description": "Required. The Entra ID directory (tenant) ID of the app registration.",
        "schema": {"type": ["string", "null"]},
    },
    "token_url": {
        "label": "Token URL",
        "description": "Entra ID login host; empty: https://login.microsoftonline.com/ (global Azure). Set it for "
        "sovereign clouds (e.g. https://login.microsoftonline.us/).",
        # No schema default: Airflow masks the values of extra keys whose name holds "token", so a default here is
        # shown and saved as "***". The connection falls back to the global host when the field is empty.
        "schema": {
            "type": ["string", "null"],
            "examples": ["https://login.microsoftonline.com/", "https://login.microsoftonline.us/"],
        },
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

DEVO_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "transport": {
        "label": "Transport",
        "description": "tls: syslog over mutual TLS to the domain's relay (Devo's recommended way in); "
        "http: the HTTP ingestion API.",
        "schema": {"type": ["string", "null"], "default": "tls", "enum": ["tls", "http"]},
    },
    "cert": {
        "label": "Client certificate",
        "description": "tls: the domain's X.509 certificate, PEM text or a file path.",
        "schema": {"type": ["string", "null"], "format": "multiline"},
    },
    "private_key": {
        "label": "Client key",
        "description": "tls: the certificate's private key, PEM text or a file path.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "chain": {
        "label": "CA chain",
        "description": "tls: the CA chain that signs the relay's certificate (system CAs when empty).",
        "schema": {"type": ["string", "null"], "format": "multiline"},
    },
    "domain": {
        "label": "Devo domain",
        "description": "http: the Devo domain the token belongs to.",
        "schema": {"type": ["string", "null"]},
    },
    "hostname": {
        "label": "Sender hostname",
        "description": "The hostname Devo records for these events (default: this machine's name).",
        "schema": {"type": ["string", "null"]},
    },
    "verify": {
        "label": "TLS verification (http)",
        "description": "http: true (system CAs, or REQUESTS_CA_BUNDLE) or a CA bundle path. TLS is always verified.",
        "schema": {"type": ["string", "null"], "default": "true"},
    },
    "batch_bytes": {
        "label": "Batch size (bytes)",
        "description": "Events per request or connection, by size; default 8 MB (the HTTP API allows 32 MB).",
        "schema": {"type": ["integer", "null"], "default": 8388608},
    },
}

DEVO_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "login"],
    "relabeling": {"host": "Relay host or HTTP endpoint", "password": "HTTP ingestion token"},
    "placeholders": {
        "host": "collector-us.devo.io (tls) or https://http-us.devo.io (http)",
        "port": "443",
        "password": "http only",
        "transport": "tls",
        "domain": "mydomain",
    },
}


def form_widgets(fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """WTForms fields for Airflow 2.11's connection form (Airflow >= 3.2 reads ``conn-fields`` instead)."""
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextAreaFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import PasswordField, StringField

    widgets: dict[str, Any] = {}
    for name, spec in fields.items():
        fmt = spec["schema"].get("format")
        if fmt == "password":
            field_class, widget = PasswordField, BS3PasswordFieldWidget()
        elif fmt == "multiline":
            field_class, widget = StringField, BS3TextAreaFieldWidget()
        else:
            field_class, widget = StringField, BS3TextFieldWidget()
        widgets[name] = field_class(lazy_gettext(spec["label"]), widget=widget, description=spec["description"])
    return widgets


def field_behaviour(behaviour: dict[str, Any]) -> dict[str, Any]:
    """Airflow 2.11's snake_case form of a ``ui-field-behaviour`` mapping."""
    return {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }
