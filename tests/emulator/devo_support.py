"""Helpers for the Devo emulator tests: one emulator per session (per xdist worker), syslog lines, TLS clients.

Tests share the session's emulator and stay independent by using a fresh tag each (:func:`unique_tag`) and by
comparing counters before and after (:func:`delta`); fault knobs are cleared after every test (``clean_faults``).
Sessions use ``trust_env=False``: this machine exports ``REQUESTS_CA_BUNDLE``, which would override ``verify``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mdca_emulator import DevoEmulator

TAG_PREFIX = "test.devo"


def running_devo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevoEmulator]:
    """Body of a session fixture: a started emulator in its own state directory."""
    with DevoEmulator(tmp_path_factory.mktemp("devo")) as devo:
        yield devo


def unique_tag(name: str = "t") -> str:
    return f"{TAG_PREFIX}.{name}.{uuid.uuid4().hex[:10]}"


def syslog(tag: str, message: str | bytes, host: str = "test-host", stamp: str = "Nov  3 09:05:01") -> bytes:
    body = message.encode() if isinstance(message, str) else message
    return f"<14>{stamp} {host} {tag}: ".encode() + body + b"\n"


def event(i: int, **extra: Any) -> str:
    return json.dumps({"_id": f"id-{i:05d}", **extra}, separators=(",", ":"))


def client_context(devo: DevoEmulator, cert: tuple[Path, Path] | None = None, trust: bool = True) -> ssl.SSLContext:
    """A relay client: trusts the emulator CA (or the system CAs), presents `cert` (default: the emulator's)."""
    context = ssl.create_default_context(cafile=str(devo.ca_bundle)) if trust else ssl.create_default_context()
    cert_path, key_path = cert or devo.client_cert()
    context.load_cert_chain(cert_path, key_path)
    return context


def no_cert_context(devo: DevoEmulator) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(devo.ca_bundle))


def send(devo: DevoEmulator, payload: bytes, context: ssl.SSLContext | None = None) -> None:
    """Write `payload` on one relay connection and close cleanly (close_notify, then wait for the relay's)."""
    with (
        socket.create_connection(devo.relay_address, timeout=10) as raw,
        (context or client_context(devo)).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(payload)
        tls.unwrap()


def send_fails(devo: DevoEmulator, payload: bytes) -> bool:
    """Whether :func:`send` fails (a cut connection: reset while writing or instead of the closing handshake)."""
    try:
        send(devo, payload)
    except OSError:  # ConnectionResetError, BrokenPipeError, ssl.SSLError
        return True
    return False


def refused(devo: DevoEmulator, context: ssl.SSLContext, payload: bytes = b"") -> bool:
    """Whether the relay refuses a connection: the handshake fails, or (TLS 1.3) the first read does.

    With TLS 1.3 the client finishes its handshake before the server has checked the client certificate, so
    the refusal arrives as an alert on the first read (a refusal before the handshake: an EOF or a reset).
    """
    try:
        with (
            socket.create_connection(devo.relay_address, timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            if payload:
                tls.sendall(payload)
            return tls.recv(1) == b""
    except (ssl.SSLError, OSError):
        return True


def new_session(devo: DevoEmulator) -> requests.Session:
    session = requests.Session()
    session.verify = str(devo.ca_bundle)
    session.trust_env = False
    return session


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `predicate` (for effects of server threads that a client cannot wait for)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def relay_stats(devo: DevoEmulator) -> dict[str, int]:
    relay: dict[str, int] = devo.stats()["relay"]
    return relay


@contextlib.contextmanager
def delta(read: Callable[[], dict[str, int]]) -> Iterator[dict[str, int]]:
    """Counters' growth across the block: ``with delta(lambda: relay_stats(devo)) as grown: ...``."""
    before = dict(read())
    grown: dict[str, int] = {}
    yield grown
    after = read()
    grown.update({key: after.get(key, 0) - before.get(key, 0) for key in after})
