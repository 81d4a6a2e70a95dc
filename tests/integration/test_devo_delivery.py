"""DevoHook against the Devo emulators over real sockets, both transports, through real Airflow connections."""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_mdca.errors import DeliveryError, InitVariablesError
from airflow_provider_mdca.hooks.devo import DevoHook
from mdca_emulator import CertificateAuthority
from mdca_emulator.devo import DevoEmulator

_numbers = itertools.count()


@pytest.fixture(scope="module")
def devo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevoEmulator]:
    with DevoEmulator(tmp_path_factory.mktemp("devo")) as emulator:
        yield emulator


@pytest.fixture
def tag() -> str:
    """A table of its own for each test, so tests share the emulator and never each other's events."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"casb.microsoft_defender.cloud_apps.alerts.test{worker}n{next(_numbers)}"


def tls_connection(devo: DevoEmulator, **extra: Any) -> dict[str, Any]:
    cert, key = devo.client_cert()
    host, port = devo.relay_address
    fields = {"transport": "tls", "cert": str(cert), "private_key": str(key), "chain": str(devo.ca_bundle), **extra}
    return {"conn_type": "devo", "host": host, "port": port, "extra": fields}


def http_connection(devo: DevoEmulator, **extra: Any) -> dict[str, Any]:
    fields = {"transport": "http", "domain": devo.domain, "verify": str(devo.ca_bundle), **extra}
    return {"conn_type": "devo", "host": devo.http_url, "password": devo.token, "extra": fields}


def hook_for(monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any]) -> DevoHook:
    conn_id = f"devo_test_{next(_numbers)}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return DevoHook(devo_conn_id=conn_id)


def events(n: int, start: int = 0) -> Iterator[dict[str, Any]]:
    for i in range(start, start + n):
        yield {"_id": f"evt{i:07d}", "title": "Impossible travel - José 中文", "n": i, "text": "two\nlines"}


def expected_ids(n: int, start: int = 0) -> list[str]:
    return [f"evt{i:07d}" for i in range(start, start + n)]


CONNECTIONS = {"tls": tls_connection, "http": http_connection}


@pytest.mark.parametrize("transport", sorted(CONNECTIONS))
def test_100k_events_are_each_delivered_once_with_the_right_tag(devo, tag, monkeypatch, transport):
    hook = hook_for(monkeypatch, CONNECTIONS[transport](devo, batch_bytes=2_000_000))
    stats = hook.send(tag, events(100_000))
    assert stats.events == 100_000
    assert sorted(devo.store.ids(tag)) == expected_ids(100_000)
    stored = devo.store.events(tag)
    assert stored[0]["title"] == "Impossible travel - José 中文" and stored[0]["text"] == "two\nlines"
    assert stats.events == 100_000 and stats.batches > 1 and stats.bytes > 0


def test_a_relay_that_drops_the_connection_mid_stream_is_retried(devo, tag, monkeypatch):
    hook = hook_for(monkeypatch, tls_connection(devo, batch_bytes=500_000, backoff_base=0.01))
    devo.faults.update(drop_after_bytes=300_000)  # per connection: inside the first batch (500 KB)
    stats = hook.send(tag, events(20_000))
    assert stats.events == 20_000
    ids = devo.store.ids(tag)
    assert set(ids) == set(expected_ids(20_000))  # nothing lost
    doubled = [i for i, n in Counter(ids).items() if n > 1]
    # The at-least-once edge: only lines of the cut batch that the relay had stored arrive twice.
    assert len(doubled) <= hook.get_config().batch_events and stats.retries == 1
    assert len(doubled) < 20_000 // 2


def test_retries_exhausted_say_exactly_what_was_delivered(devo, tag, monkeypatch):
    hook = hook_for(monkeypatch, tls_connection(devo, batch_bytes=300_000, max_retries=2, backoff_base=0.01))

    def stream() -> Iterator[dict[str, Any]]:
        for number, event in enumerate(events(10_000)):
            if number == 5_000:  # batch 1 (about 3,200 events) is delivered by now: break the relay for good
                devo.faults.update(drop_every_connection_after_bytes=50_000)
            yield event

    try:
        with pytest.raises(DeliveryError) as info:
            hook.send(tag, stream())
    finally:
        devo.faults.update(drop_every_connection_after_bytes=None)
    error = info.value
    assert error.code == 501 and error.tag == tag and error.batch == 2
    stored = set(devo.store.ids(tag))
    assert error.delivered > 0 and error.undelivered > 0
    # Every acknowledged event is stored; beyond those, only a prefix of the failed batch may be (the
    # relay keeps the complete lines it read before the cut: the documented at-least-once edge).
    assert set(expected_ids(error.delivered)) <= stored
    assert stored <= set(expected_ids(error.delivered + error.undelivered))
    assert f"{error.delivered} events delivered, {error.undelivered} not delivered" in str(error)


def test_an_untrusted_relay_certificate_is_refused_before_a_byte_is_sent(devo, tag, monkeypatch, tmp_path):
    other_ca = CertificateAuthority.load_or_create(tmp_path / "other-ca")
    hook = hook_for(monkeypatch, tls_connection(devo, chain=str(other_ca.ca_cert_path)))
    with pytest.raises(DeliveryError) as info:
        hook.send(tag, events(10))
    assert info.value.code == 503
    assert devo.store.ids(tag) == []


def test_a_missing_client_certificate_is_refused(devo, monkeypatch):
    conn = tls_connection(devo)
    del conn["extra"]["cert"]
    with pytest.raises(InitVariablesError, match=r"field 'extra\.cert'"):
        hook_for(monkeypatch, conn).get_conn()


def test_a_client_certificate_from_another_ca_is_refused_by_the_relay(devo, tag, monkeypatch, tmp_path):
    other_ca = CertificateAuthority.load_or_create(tmp_path / "other-ca")
    cert, key = other_ca.issue_client_cert("intruder")
    hook = hook_for(monkeypatch, tls_connection(devo, cert=str(cert), private_key=str(key), max_retries=0))
    with pytest.raises(DeliveryError) as info:
        hook.send(tag, events(10))
    assert info.value.code == 502
    assert "refused the client certificate" in str(info.value)
    assert devo.store.ids(tag) == []


def test_http_401_names_the_token_problem_without_the_token(devo, tag, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-token-0123456789abcdef"
    conn = http_connection(devo)
    conn["password"] = wrong
    with pytest.raises(DeliveryError) as info:
        hook_for(monkeypatch, conn).send(tag, events(5))
    assert info.value.code == 502
    assert "HTTP ingestion token was refused" in str(info.value)
    assert wrong not in str(info.value) + repr(info.value) + caplog.text
    assert devo.token not in str(info.value) + caplog.text


def test_http_5xx_and_429_are_retried(devo, tag, monkeypatch):
    hook = hook_for(monkeypatch, http_connection(devo, backoff_base=0.01, batch_bytes=100_000))
    devo.faults.update(fault_queue=["503", "429", "reset", "502"])
    stats = hook.send(tag, events(3_000))
    assert stats.events == 3_000
    assert sorted(devo.store.ids(tag)) == expected_ids(3_000)
    assert stats.retries == 4


@pytest.mark.parametrize("transport", sorted(CONNECTIONS))
def test_test_connection_proves_the_credentials(devo, monkeypatch, transport):
    ok, message = hook_for(monkeypatch, CONNECTIONS[transport](devo)).test_connection()
    assert ok, message


def test_test_connection_fails_for_a_wrong_token(devo, monkeypatch):
    conn = http_connection(devo)
    conn["password"] = "another-wrong-token-987654"
    ok, message = hook_for(monkeypatch, conn).test_connection()
    assert not ok
    assert "DeliveryError 502" in message and "another-wrong-token-987654" not in message
