"""Syslog over mutual TLS to Devo's relay, with the standard library only.

Devo's recommended way in. The relay gives no application-level acknowledgement, so a batch counts as
delivered when every byte is written and the connection then closes cleanly: we send TLS close_notify and
wait for the relay to close its side. A cut before that fails the batch and it is sent again whole on a new
connection. **At-least-once edge**: when the relay had already stored part of the cut batch, those events
arrive twice; a smaller ``batch_bytes`` narrows the window. This sender never falls back to unverified TLS.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import tempfile
from collections.abc import Iterator

from airflow_provider_mdca.connections.devo import DevoConfig
from airflow_provider_mdca.devo.framing import syslog_prefix
from airflow_provider_mdca.devo.sender import Sender
from airflow_provider_mdca.errors import DeliveryError
from airflow_provider_mdca.retry import RetryableError

__all__ = ["TlsRelaySender", "build_context"]

_CHUNK = 1 << 20
_ACCEPTANCE_WAIT = 1.0  # seconds to wait, once per sender, for a TLS 1.3 client-certificate refusal


class TlsRelaySender(Sender):
    """One TLS connection per batch to ``host:port``, client certificate required, server verified."""

    transport = "tls"

    def __init__(self, config: DevoConfig, **kwargs: object) -> None:
        super().__init__(config, **kwargs)  # type: ignore[arg-type]
        self._context = build_context(config)
        self._certificate_accepted = False

    def _deliver(self, tag: str, batch: list[bytes]) -> int:
        prefix = syslog_prefix(self.config.hostname, tag)
        payload = b"".join(prefix + line + b"\n" for line in batch)
        with self._connect() as conn:
            try:
                view = memoryview(payload)
                for offset in range(0, len(view), _CHUNK):
                    conn.sendall(view[offset : offset + _CHUNK])
            except (OSError, ssl.SSLError) as exc:
                raise RetryableError(f"connection failed while sending: {exc.__class__.__name__}") from None
            self._raise_pending_alert(conn)
            _close_cleanly(conn)
        return len(payload)

    def _raise_pending_alert(self, conn: ssl.SSLSocket, wait: float = 0.0) -> None:
        """Surface an alert the relay already sent (TLS 1.3 refuses a client certificate after the handshake)."""
        conn.settimeout(wait)
        try:
            conn.recv(1)
        except (ssl.SSLWantReadError, TimeoutError):
            pass  # nothing pending: the relay has said nothing, as it should
        except ssl.SSLError as exc:
            if _is_certificate_rejection(exc):
                raise self._rejected(exc) from None
            raise RetryableError(f"the relay sent a TLS alert: {exc.reason or exc}") from None
        except OSError as exc:
            raise RetryableError(f"connection failed: {exc.__class__.__name__}") from None
        finally:
            conn.settimeout(self.config.timeout)

    def _rejected(self, exc: ssl.SSLError) -> DeliveryError:
        return DeliveryError(
            502,
            f"the relay refused the client certificate ({exc.reason or exc.__class__.__name__})",
            url=self.endpoint_for_errors(""),
            remedy="check the connection's extra.cert and extra.private_key: the domain's certificate and key",
        )

    def _connect(self) -> ssl.SSLSocket:
        try:
            raw = socket.create_connection((self.config.host, self.config.port), timeout=self.config.timeout)
        except OSError as exc:
            raise RetryableError(f"cannot connect to the relay: {exc.__class__.__name__}: {exc}") from None
        try:
            conn = self._context.wrap_socket(raw, server_hostname=self.config.host)
        except ssl.SSLCertVerificationError as exc:
            raw.close()
            raise DeliveryError(
                503,
                f"certificate verification failed: {exc.verify_message}",
                url=self.endpoint_for_errors(""),
                remedy="set the connection's extra.chain to the CA chain that signs the relay's certificate",
            ) from None
        except ssl.SSLError as exc:
            raw.close()
            if _is_certificate_rejection(exc):
                raise self._rejected(exc) from None
            raise RetryableError(f"TLS handshake failed: {exc.reason or exc}") from None
        except OSError as exc:
            raw.close()
            raise RetryableError(f"TLS handshake failed: {exc.__class__.__name__}") from None
        if conn.version() == "TLSv1.3" and not self._certificate_accepted:
            # TLS 1.3 completes the client's handshake before the relay checks the client certificate; a
            # refusal arrives as an alert afterwards. Wait for it once per sender (an accepted certificate
            # brings session tickets or silence), so a refused batch can never look delivered.
            try:
                self._raise_pending_alert(conn, wait=_ACCEPTANCE_WAIT)
            except BaseException:
                conn.close()
                raise
            self._certificate_accepted = True
        return conn

    def test(self) -> str:
        with self._connect() as conn:
            version = conn.version()
            _close_cleanly(conn)
        return f"TLS handshake with {self.config.host}:{self.config.port} ({version}) with the client certificate"


def _close_cleanly(conn: ssl.SSLSocket) -> None:
    """Send close_notify and wait for the relay to close its side; anything else fails the batch."""
    try:
        raw = conn.unwrap()
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
        return  # the relay closed after reading everything; no close_notify of its own
    except (OSError, ssl.SSLError) as exc:
        raise RetryableError(f"the connection did not close cleanly: {exc.__class__.__name__}") from None
    try:
        while raw.recv(4096):
            pass
    except OSError as exc:
        raise RetryableError(f"the connection did not close cleanly: {exc.__class__.__name__}") from None
    finally:
        raw.close()


def _is_certificate_rejection(exc: ssl.SSLError) -> bool:
    reason = (exc.reason or "").upper()
    return any(
        word in reason for word in ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_UNKNOWN")
    )


def build_context(config: DevoConfig) -> ssl.SSLContext:
    """A client TLS context for the relay.

    TLS >= 1.2, the relay verified against ``chain`` alone when it is set (the system's CAs only when it is not:
    a chain names the one authority the relay's certificate must come from), hostname checked, and the client
    certificate loaded from PEM text or files.
    """
    if config.chain:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # no CA loaded: only the chain below is trusted
    else:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if config.chain:
        context.load_verify_locations(cadata=DevoConfig.pem(config.chain).decode())
    assert config.cert and config.key
    with _pem_file(DevoConfig.pem(config.cert)) as cert_path, _pem_file(DevoConfig.pem(config.key)) as key_path:
        context.load_cert_chain(cert_path, key_path)
    return context


@contextlib.contextmanager
def _pem_file(data: bytes) -> Iterator[str]:
    """A path to ``data`` that exists only while loading: ``ssl`` reads keys from paths only.

    Linux keeps it in memory (memfd); elsewhere a 0600 file in a private temporary directory.
    """
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("devo-pem", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory() as folder:  # pragma: no cover - non-Linux
        path = os.path.join(folder, "pem")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        yield path
