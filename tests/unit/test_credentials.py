"""Credentials are never shown: not in an error, its pickle, a log line or a header that went wrong."""

from __future__ import annotations

import logging
import pickle
import socket

import pytest
import requests

from airflow_provider_mdca.client.auth import LegacyTokenAuth
from airflow_provider_mdca.client.ratelimit import RateLimiter
from airflow_provider_mdca.client.stats import FetchStats
from airflow_provider_mdca.client.transport import RequestContext, Transport
from airflow_provider_mdca.connections.devo import DevoConfig
from airflow_provider_mdca.connections.mdca import MdcaConfig
from airflow_provider_mdca.errors import InitVariablesError, PullError
from airflow_provider_mdca.redaction import redact_text

KEY_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7kq1Xsecretkeymaterial"
PEM_KEY = f"-----BEGIN PRIVATE KEY-----\n{KEY_BODY}\n-----END PRIVATE KEY-----\n"
PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIBcertificate\n-----END CERTIFICATE-----\n"


def devo_tls(**extra: object) -> DevoConfig:
    return DevoConfig.from_connection(
        host="collector-us.devo.io", port=None, password=None, extra={"cert": PEM_CERT, **extra}
    )


def shown(error: BaseException) -> str:
    """Everything a user could see of an error: its text, its repr and its pickle."""
    return str(error) + repr(error) + pickle.dumps(error).decode("latin-1")


@pytest.mark.parametrize(
    "value",
    [
        KEY_BODY,  # a bare base64 body, no PEM armour
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw\nggSjAgEAAoIBAQC7kq1X",  # two lines of it
        "localhost:/etc/ssl/private/devo.key",  # a path that does not exist
    ],
    ids=["base64 body", "two lines", "missing path"],
)
def test_a_key_that_is_neither_pem_nor_a_file_is_never_echoed(value: str) -> None:
    with pytest.raises(InitVariablesError) as info:
        devo_tls(private_key=value)
    assert "'extra.private_key': is neither PEM text" in str(info.value)
    for part in value.splitlines():
        assert part not in shown(info.value)


@pytest.mark.parametrize(
    "value",
    [
        f"Bag Attributes\n    localKeyID: 01 00 00 00\nKey Attributes: <No Attributes>\n{PEM_KEY}",
        f"\ufeff{PEM_KEY}",
    ],
    ids=["openssl pkcs12 output", "byte-order mark"],
)
def test_pem_after_a_preamble_is_pem(value: str) -> None:
    config = devo_tls(private_key=value)
    assert DevoConfig.pem(config.key or "").startswith(b"-----BEGIN PRIVATE KEY-----")


def test_the_old_extra_name_key_still_works_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="airflow_provider_mdca.connections.devo"):
        config = devo_tls(key=PEM_KEY)
    assert config.key == PEM_KEY
    assert "rename it to 'private_key'" in caplog.text and KEY_BODY not in caplog.text


def test_a_missing_key_under_the_old_name_is_named_by_that_name() -> None:
    with pytest.raises(InitVariablesError, match=r"'extra\.key': is neither PEM text") as info:
        devo_tls(key=KEY_BODY)
    assert KEY_BODY not in shown(info.value)


def mdca(**fields: object) -> MdcaConfig:
    values: dict[str, object] = {
        "host": "https://t.portal.cloudappsecurity.com/",
        "login": "client-id",
        "password": "client-secret-value",
        "extra": {"tenant_id": "tenant"},
    }
    values.update(fields)
    return MdcaConfig.from_connection(**values)  # type: ignore[arg-type]


def test_a_trailing_line_break_is_dropped_from_every_credential() -> None:
    config = mdca(
        login="client-id\n",
        password="client-secret-value\r\n",
        extra={"tenant_id": " tenant\n", "files_access_token": "files-token-value\n"},
    )
    assert (config.client_id, config.client_secret, config.tenant_id, config.files_access_token) == (
        "client-id",
        "client-secret-value",
        "tenant",
        "files-token-value",
    )
    devo = DevoConfig.from_connection(
        host="https://http-us.devo.io",
        port=None,
        password="devo-token-value\n",
        extra={"transport": "http", "domain": "d"},
    )
    assert devo.token == "devo-token-value"


def test_the_client_and_tenant_ids_are_identifiers_not_secrets_to_mask() -> None:
    mdca(login="ordinary-client", password="a-secret-kept-hidden", extra={"tenant_id": "ordinary-tenant"})
    message = "connection field 'extra.ordinary-tenant' for ordinary-client"
    assert redact_text(message) == message
    assert redact_text("password a-secret-kept-hidden") == "password ***"


@pytest.mark.parametrize(
    ("fields", "name", "secret"),
    [
        ({"password": "client-se\ncret-value"}, "password", "client-se"),
        (
            {"extra": {"tenant_id": "t", "files_access_token": "files-tok\r\nX-Injected: 1"}},
            "extra.files_access_token",
            "files-tok",
        ),
        ({"login": "client\x00id"}, "login", "client\x00id"),
    ],
    ids=["client secret", "files token", "client id"],
)
def test_a_control_character_inside_a_credential_is_refused_by_name(
    fields: dict[str, object], name: str, secret: str
) -> None:
    with pytest.raises(InitVariablesError) as info:
        mdca(**fields)
    assert f"field {name!r}: holds a line break" in str(info.value) and secret not in shown(info.value)


def test_a_header_http_refuses_is_a_provider_error_that_hides_the_credential() -> None:
    # A token that reached the transport with a line break (not through a connection, which refuses it). The request
    # fails in http.client before anything is sent; a listening socket lets it get that far.
    token = "files-token\nvalue-0123456789"
    with socket.create_server(("127.0.0.1", 0)) as listener, requests.Session() as session:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        config = MdcaConfig(
            base_url=url, tenant_id="t", client_id="c", client_secret="s3cr3t-value", requests_per_minute=None
        )
        transport = Transport(config, session, limiter=RateLimiter(None), sleep=lambda _: None)
        with pytest.raises(PullError) as info:
            transport.post_json(
                url + "api/v1/files/",
                {},
                auth=LegacyTokenAuth(token),
                context=RequestContext("files", None),
                stats=FetchStats(),
            )
    assert info.value.code == 300 and "request header" in str(info.value)
    assert "files-token" not in shown(info.value) and "value-0123456789" not in shown(info.value)
