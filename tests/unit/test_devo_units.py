"""Devo sender units: connection validation, framing and batching (no network)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_mdca.connections.devo import DevoConfig
from airflow_provider_mdca.devo.framing import encode_event, syslog_prefix
from airflow_provider_mdca.devo.sender import iter_batches
from airflow_provider_mdca.errors import DeliveryError, InitVariablesError

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nsecret-key-material\n-----END PRIVATE KEY-----\n"


def tls(**extra):
    return DevoConfig.from_connection(
        host="collector-us.devo.io", port=None, password=None, extra={"cert": PEM, "private_key": KEY, **extra}
    )


def http(password="http-token-123456", **extra):
    extra = {"transport": "http", "domain": "acme", **extra}
    return DevoConfig.from_connection(host="https://http-us.devo.io/", port=None, password=password, extra=extra)


def test_tls_is_the_default_transport_on_port_443():
    config = tls()
    assert (config.transport, config.port) == ("tls", 443)
    assert "secret-key-material" not in repr(config)


def test_http_config():
    config = http(hostname="collector-1")
    assert (config.host, config.domain, config.hostname) == ("https://http-us.devo.io", "acme", "collector-1")
    assert "http-token-123456" not in repr(config)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (
            lambda: DevoConfig.from_connection(host="r", port=None, password=None, extra={"private_key": KEY}),
            "extra.cert",
        ),
        (
            lambda: DevoConfig.from_connection(host="r", port=None, password=None, extra={"cert": PEM}),
            "extra.private_key",
        ),
        (lambda: tls(cert="/no/such/cert.pem"), "extra.cert"),
        (lambda: tls(chain="not pem and not a file"), "extra.chain"),
        (lambda: tls(transport="udp"), "extra.transport"),
        (lambda: http(password=None), "password"),
        (lambda: http(domain=""), "extra.domain"),
        (lambda: http(verify="false"), "extra.verify"),
        (lambda: http(batch_bytes=64 * 2**20), "extra.batch_bytes"),
        (lambda: http(hostname="two words"), "extra.hostname"),
        (
            lambda: DevoConfig.from_connection(
                host="http://plain", port=None, password="t", extra={"transport": "http"}
            ),
            "host",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_fields_name_the_field(build, field):
    with pytest.raises(InitVariablesError) as info:
        build()
    assert info.value.code == 1
    assert f"field {field!r}:" in str(info.value)
    assert "secret-key-material" not in str(info.value)


def test_pem_reads_text_or_a_file(tmp_path):
    path = tmp_path / "cert.pem"
    path.write_text(PEM)
    assert DevoConfig.pem(str(path)) == DevoConfig.pem(PEM) == PEM.encode()


def test_events_are_one_compact_line_with_unicode_kept():
    event = {"_id": "a", "text": "line1\nline2", "name": "José 中文", "n": 1.5}
    line = encode_event(event)
    assert b"\n" not in line
    assert json.loads(line) == event
    assert "José 中文".encode() in line


def test_an_unserialisable_event_is_delivery_error_505():
    with pytest.raises(DeliveryError) as info:
        encode_event({"_id": "x", "bad": object()})
    assert info.value.code == 505
    assert "'x'" in str(info.value)


def test_non_finite_numbers_are_sent_as_null_so_every_event_is_json():
    line = encode_event({"_id": "x", "nan": float("nan"), "inf": float("-inf"), "n": 1.5})
    assert json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} is not JSON")) == {
        "_id": "x",
        "nan": None,
        "inf": None,
        "n": 1.5,
    }


def test_syslog_prefix_shape():
    assert syslog_prefix("host-1", "casb.microsoft_defender.cloud_apps.alerts", now=1_700_000_000) == (
        b"<14>Nov 14 22:13:20 host-1 casb.microsoft_defender.cloud_apps.alerts: "
    )


def test_batches_respect_bytes_and_events_and_keep_order():
    lines = [bytes([65 + i % 26]) * (10 + i % 7) for i in range(1_000)]
    batches = list(iter_batches(lines, max_bytes=200, max_events=15))
    assert [line for batch in batches for line in batch] == lines
    assert all(sum(len(x) + 1 for x in b) <= 200 and len(b) <= 15 for b in batches)


def test_a_line_larger_than_a_batch_travels_alone():
    batches = list(iter_batches([b"x" * 50, b"y" * 500, b"z"], max_bytes=100, max_events=10))
    assert [len(b) for b in batches] == [1, 1, 1]
