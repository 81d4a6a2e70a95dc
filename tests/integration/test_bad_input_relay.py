"""The bad-input suite, Devo's TLS relay side: a relay that behaves any way at all, over real TLS on 127.0.0.1.

Each connection the sender opens meets the next generated behaviour (refuse the handshake, send garbage, hang up
mid-batch, stall past the sender's timeout, or read everything and close cleanly). Whatever the sequence, the send
ends within its retry budget, either delivered or with DeliveryError, and nothing shows the private key.
"""

from __future__ import annotations

import contextlib
import pickle
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_mdca.connections.devo import DevoConfig
from airflow_provider_mdca.devo.tls import TlsRelaySender
from airflow_provider_mdca.errors import DeliveryError
from mdca_emulator import CertificateAuthority

BEHAVIOURS = ("accept", "close", "garbage", "hang_up", "stall")
TIMEOUT = 0.3


class HostileRelay:
    """A TLS listener that treats connection n the way ``script[n]`` says (then accepts)."""

    def __init__(self, ca: CertificateAuthority) -> None:
        self.context = ca.server_context(require_client_cert=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.script: list[str] = []
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        port: int = self.listener.getsockname()[1]
        return port

    def _serve(self) -> None:
        while self.running:
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            behaviour = self.script.pop(0) if self.script else "accept"
            threading.Thread(target=self._treat, args=(raw, behaviour), daemon=True).start()

    def _treat(self, raw: socket.socket, behaviour: str) -> None:
        with contextlib.suppress(OSError, ssl.SSLError), raw:
            raw.settimeout(5)
            if behaviour == "close":
                return
            if behaviour == "garbage":
                raw.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" * 10)
                return
            if behaviour == "stall":
                time.sleep(TIMEOUT * 4)
                return
            with self.context.wrap_socket(raw, server_side=True) as conn:
                if behaviour == "hang_up":
                    conn.recv(100)
                    conn.shutdown(socket.SHUT_RDWR)  # no close_notify: a batch longer than this is cut
                    return
                while conn.recv(65536):
                    pass
                conn.unwrap().close()

    def close(self) -> None:
        self.running = False
        self.listener.close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HostileRelay, CertificateAuthority]]:
    ca = CertificateAuthority.load_or_create(tmp_path_factory.mktemp("relay-ca"))
    hostile = HostileRelay(ca)
    yield hostile, ca
    hostile.close()


def sender_for(relay: HostileRelay, ca: CertificateAuthority) -> tuple[TlsRelaySender, str]:
    cert, key = ca.issue_client_cert("collector")
    key_pem = Path(key).read_text()
    config = DevoConfig.from_connection(
        host="localhost",
        port=relay.port,
        password=None,
        extra={
            "cert": Path(cert).read_text(),
            "private_key": key_pem,
            "chain": str(ca.ca_cert_path),
            "timeout": TIMEOUT,
            "max_retries": 3,
        },
    )
    return TlsRelaySender(config, sleep=lambda _: None), key_pem


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=st.lists(st.sampled_from(BEHAVIOURS), max_size=6), events=st.integers(1, 4_000))
def test_a_hostile_relay_ends_in_delivery_or_a_delivery_error(
    relay: tuple[HostileRelay, CertificateAuthority], script: list[str], events: int
) -> None:
    hostile, ca = relay
    hostile.script[:] = list(script)
    sender, key_pem = sender_for(hostile, ca)
    began = time.monotonic()
    try:
        outcome: Any = sender.send("my.app.tag", ({"_id": f"e{i}"} for i in range(events))).events
    except DeliveryError as exc:
        outcome = exc
    finally:
        sender.close()
    assert time.monotonic() - began < 4 * (TIMEOUT + 1) * 4, "the send did not end within its retry budget"
    if isinstance(outcome, DeliveryError):
        assert outcome.code == 501 and outcome.tag == "my.app.tag"
        shown = str(outcome) + repr(outcome) + pickle.dumps(outcome).decode("latin-1")
        assert all(line not in shown for line in key_pem.splitlines() if len(line) > 20)
    else:
        assert outcome == events
