"""Entra ID (Azure AD) v2.0: OpenID discovery and the client-credentials token endpoint.

Just enough of Entra for MSAL's ``ConfidentialClientApplication`` (authority ``<token_url><tenant>``,
``instance_discovery=False``) and for plain ``requests`` callers: discovery, tokens, and Entra's error bodies
(``error``, ``error_description`` starting with ``AADSTSnnnn:``, ``error_codes``, ``timestamp``, ``trace_id``,
``correlation_id``). Secrets and tokens are never written to a log or an error message.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hmac
import uuid
from collections.abc import Mapping
from urllib.parse import parse_qs, unquote_plus

from mdca_emulator.reply import Reply, json_reply
from mdca_emulator.state import TenantState

__all__ = ["MDCA_SCOPE", "jwks", "openid_configuration", "parse_form", "token"]

# The "Microsoft Cloud App Security" API's application id; a client-credentials token for it needs /.default.
MDCA_SCOPE = "05a65629-4c1b-48c1-a78b-804c4abdd4af/.default"
# OIDC scopes a client may add to any request without changing what the token is for.
_HARMLESS_SCOPES = frozenset({"openid", "profile", "offline_access"})
_MISSING_SECRET = (
    "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type."
)


def _error(
    status: int,
    error: str,
    code: int,
    description: str,
    correlation_id: str | None,
    base_url: str,
) -> Reply:
    trace_id, correlation = str(uuid.uuid4()), correlation_id or str(uuid.uuid4())
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    return json_reply(
        status,
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace_id} "
            f"Correlation ID: {correlation} Timestamp: {stamp}",
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation,
            "error_uri": f"{base_url}/error?code={code}",
        },
    )


def _unknown_tenant(tenant_id: str, correlation_id: str | None, base_url: str, error: str) -> Reply:
    return _error(
        400,
        error,
        90002,
        f"Tenant '{tenant_id}' not found. Check to make sure you have the correct tenant ID and are signing "
        "into the correct cloud.",
        correlation_id,
        base_url,
    )


def openid_configuration(state: TenantState | None, tenant_id: str, base_url: str) -> Reply:
    """``GET /<tenant>/v2.0/.well-known/openid-configuration``: the v2.0 discovery document."""
    if state is None:
        return _unknown_tenant(tenant_id, None, base_url, "invalid_tenant")
    root = f"{base_url}/{tenant_id}"
    return json_reply(
        200,
        {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{root}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{root}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base_url}/oidc/userinfo",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "tid",
                "ver",
                "oid",
            ],
            "kerberos_endpoint": f"{root}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "emulator.local",
            "cloud_graph_host_name": "graph.emulator.local",
            "msgraph_host": "graph.emulator.local",
        },
    )


def jwks() -> Reply:
    """``GET /<tenant>/discovery/v2.0/keys``: no keys (tokens are opaque; nobody verifies them but us)."""
    return json_reply(200, {"keys": []})


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """client_secret_basic: ``Authorization: Basic base64(urlencode(id):urlencode(secret))``."""
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as single values (the last wins)."""
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[-1] for key, values in fields.items()}


def token(
    state: TenantState | None,
    tenant_id: str,
    form: Mapping[str, str],
    authorization: str | None,
    correlation_id: str | None,
    base_url: str,
) -> Reply:
    """``POST /<tenant>/oauth2/v2.0/token`` with the client-credentials grant."""
    if state is None:
        return _unknown_tenant(tenant_id, correlation_id, base_url, "invalid_request")
    reply = _token(state, form, authorization, correlation_id, base_url)
    state.record_token_request(reply.status == 200)
    return reply


def _token(
    state: TenantState,
    form: Mapping[str, str],
    authorization: str | None,
    correlation_id: str | None,
    base_url: str,
) -> Reply:
    config = state.settings()
    fail = functools.partial(_error, correlation_id=correlation_id, base_url=base_url)
    # An outage answers before looking at the request, as a broken front end would.
    if config.token_fault == 500:
        return fail(500, "server_error", 50000, "There was an error issuing a token.")
    if config.token_fault == 503:
        return fail(503, "temporarily_unavailable", 90033, "A transient error has occurred. Try again.")
    grant = form.get("grant_type", "")
    if grant != "client_credentials":
        text = f"The app requested an unsupported grant type '{grant}'."
        return fail(400, "unsupported_grant_type", 70003, text)
    client_id, secret = _basic_credentials(authorization) or (
        form.get("client_id", ""),
        form.get("client_secret", ""),
    )
    if not client_id:
        return fail(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
    if client_id != config.client_id:
        return fail(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{config.tenant_id}'.",
        )
    if not secret:
        return fail(
            401,
            "invalid_client",
            7000216,
            _MISSING_SECRET,
        )
    if not hmac.compare_digest(secret.encode(), config.client_secret.encode()):
        return fail(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client "
            f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
        )
    scopes = set(form.get("scope", "").split()) - _HARMLESS_SCOPES
    if scopes != {MDCA_SCOPE}:
        return fail(
            400,
            "invalid_scope",
            70011,
            f"The provided value for the input parameter 'scope' is not valid. Expected '{MDCA_SCOPE}'.",
        )
    if config.token_fault == 403:
        return fail(403, "unauthorized_client", 7000112, f"Application '{client_id}' is disabled.")
    access_token, lifetime = state.issue_token()
    return json_reply(
        200,
        {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        },
        {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
    )
