"""A throw-away certificate authority for the emulators' loopback TLS.

The emulators speak real HTTPS so that the client's TLS verification is exercised exactly as in production:
the client is given ``ca.pem`` as its trust anchor, never ``verify=False``. The CA also issues client
certificates, because the Devo relay emulator speaks mutual TLS.

Files in the state directory::

    ca.pem, ca-key.pem                 the CA (key 0600)
    server.pem, server-key.pem         leaf for 127.0.0.1 and localhost (key 0600)
    client-<name>.pem, -key.pem        client leaves issued on demand (key 0600)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateAuthority"]

_VALIDITY = dt.timedelta(days=365)
# Certificates are back-dated a little so that a clock a few minutes behind does not reject them.
_BACKDATE = dt.timedelta(minutes=5)
# Reuse stored certificates only while they stay valid this much longer; otherwise issue fresh ones.
_MIN_REMAINING = dt.timedelta(days=7)
_SERVER_IP = ipaddress.ip_address("127.0.0.1")
_SERVER_DNS = "localhost"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: far cheaper to generate and to handshake with than RSA, which keeps test start-up fast.
    return ec.generate_private_key(ec.SECP256R1())


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` with `mode` so that no reader ever sees a partial or world-readable key."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _still_valid(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - _now() > _MIN_REMAINING


class CertificateAuthority:
    """A self-signed CA kept in a directory, able to issue server and client certificates.

    Use :meth:`load_or_create` rather than the constructor: it reuses the files of an earlier run when they
    are still valid, so a restarted emulator keeps the CA its clients already trust.
    """

    def __init__(self, directory: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.directory = directory
        self.cert = cert
        self._key = key

    # -- construction ---------------------------------------------------------------------------------------

    @classmethod
    def load_or_create(cls, state_dir: Path) -> CertificateAuthority:
        """Load the CA and server certificate from `state_dir`, creating (or renewing) whatever is missing."""
        state_dir = Path(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        ca = cls._load(state_dir) or cls._create(state_dir)
        if not ca._server_cert_usable():
            ca.issue_server_cert()
        return ca

    @classmethod
    def _load(cls, state_dir: Path) -> CertificateAuthority | None:
        cert_path, key_path = state_dir / "ca.pem", state_dir / "ca-key.pem"
        if not (cert_path.exists() and key_path.exists()):
            return None
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except ValueError:
            return None  # damaged files: start over rather than fail
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not _still_valid(cert):
            return None
        return cls(state_dir, cert, key)

    @classmethod
    def _create(cls, state_dir: Path) -> CertificateAuthority:
        key = _new_key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MDCA emulator test CA")])
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_atomic(state_dir / "ca-key.pem", _key_pem(key), 0o600)
        _write_atomic(state_dir / "ca.pem", _cert_pem(cert), 0o644)
        # A new CA invalidates any leaf signed by an old one.
        for stale in ("server.pem", "server-key.pem"):
            (state_dir / stale).unlink(missing_ok=True)
        return cls(state_dir, cert, key)

    # -- paths ----------------------------------------------------------------------------------------------

    @property
    def ca_cert_path(self) -> Path:
        """The CA certificate (PEM): the trust anchor clients verify against."""
        return self.directory / "ca.pem"

    @property
    def server_cert_path(self) -> Path:
        """The server leaf certificate (PEM) for 127.0.0.1 and localhost."""
        return self.directory / "server.pem"

    @property
    def server_key_path(self) -> Path:
        """The server leaf's private key (PEM, mode 0600)."""
        return self.directory / "server-key.pem"

    # -- issuing --------------------------------------------------------------------------------------------

    def _leaf(
        self,
        common_name: str,
        key: ec.EllipticCurvePrivateKey,
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
    ) -> x509.Certificate:
        now = _now()
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(min(now + _VALIDITY, self.cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(aki, critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self._key, hashes.SHA256())

    def _write_leaf(
        self,
        stem: str,
        cert: x509.Certificate,
        key: ec.EllipticCurvePrivateKey,
    ) -> tuple[Path, Path]:
        cert_path, key_path = self.directory / f"{stem}.pem", self.directory / f"{stem}-key.pem"
        _write_atomic(key_path, _key_pem(key), 0o600)
        _write_atomic(cert_path, _cert_pem(cert), 0o644)
        return cert_path, key_path

    def issue_server_cert(self) -> tuple[Path, Path]:
        """Issue the server certificate for ``127.0.0.1`` and ``localhost``; returns (cert, key) paths."""
        key = _new_key()
        sans: list[x509.GeneralName] = [x509.IPAddress(_SERVER_IP), x509.DNSName(_SERVER_DNS)]
        cert = self._leaf(_SERVER_DNS, key, sans, ExtendedKeyUsageOID.SERVER_AUTH)
        return self._write_leaf("server", cert, key)

    def issue_client_cert(self, common_name: str) -> tuple[Path, Path]:
        """Issue a client certificate (EKU clientAuth) with CN `common_name`; returns (cert, key) paths."""
        key = _new_key()
        stem = "client-" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", common_name) or "client")
        cert = self._leaf(common_name, key, [], ExtendedKeyUsageOID.CLIENT_AUTH)
        return self._write_leaf(stem, cert, key)

    def _server_cert_usable(self) -> bool:
        if not (self.server_cert_path.exists() and self.server_key_path.exists()):
            return False
        try:
            cert = x509.load_pem_x509_certificate(self.server_cert_path.read_bytes())
        except ValueError:
            return False
        return cert.issuer == self.cert.subject and _still_valid(cert)

    # -- contexts -------------------------------------------------------------------------------------------

    def server_context(self, require_client_cert: bool = False) -> ssl.SSLContext:
        """A TLS ≥ 1.2 server context with the server certificate, optionally demanding a client one."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert_path, self.server_key_path)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=str(self.ca_cert_path))
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only this CA (hostname checking on)."""
        context = ssl.create_default_context(cafile=str(self.ca_cert_path))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context
