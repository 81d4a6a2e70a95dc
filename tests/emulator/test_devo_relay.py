"""The Devo TLS syslog relay emulator over real sockets: mutual TLS, parsing, storage and fault knobs."""

from __future__ import annotations

import doctest
import json
import socket
import ssl
import time
from collections.abc import Iterator

import pytest
from cryptography import x509

from mdca_emulator import CertificateAuthority, DevoEmulator, devo_http, devo_relay, devo_store
from mdca_emulator import devo as devo_module
from tests.emulator.devo_support import (
    client_context,
    delta,
    event,
    no_cert_context,
    refused,
    relay_stats,
    running_devo,
    send,
    send_fails,
    syslog,
    unique_tag,
    wait_until,
)


@pytest.fixture(scope="session")
def devo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevoEmulator]:
    yield from running_devo(tmp_path_factory)


@pytest.fixture(autouse=True)
def clean_faults(devo: DevoEmulator) -> Iterator[None]:
    yield
    devo.faults.reset()


def _lines(tag: str, count: int, start: int = 0) -> list[bytes]:
    """`count` syslog lines of equal length (fixed-width ids), so byte offsets are easy to compute."""
    return [syslog(tag, event(i, pad="x" * 40)) for i in range(start, start + count)]


class TestStorage:
    def test_lines_are_stored_per_tag_counted_and_written_as_ndjson(self, devo):
        alerts, files = unique_tag("alerts"), unique_tag("files")
        payload = b"".join(
            [
                syslog(alerts, event(1)),
                syslog(files, event(2), stamp="Jan 01 00:00:00"),
                syslog(alerts, event(3), host="other-host"),
                b"<13>Dec 31 23:59:59 h " + alerts.encode() + b": not json, kept as text\n",
            ]
        )
        with delta(lambda: relay_stats(devo)) as grown:
            send(devo, payload)
        assert devo.store.count(alerts) == 3 and devo.store.count(files) == 1
        assert devo.store.ids(alerts) == ["id-00001", "id-00003"]
        assert devo.store.events(alerts)[2] == "not json, kept as text"
        assert (devo.store.directory / f"{files}.ndjson").read_text() == event(2) + "\n"
        assert {alerts, files} <= set(devo.store.tags())
        assert grown["lines"] == 4 and grown["bytes"] == len(payload) and grown["connections"] == 1
        assert grown["malformed"] == grown["partial_lines"] == 0

    def test_a_large_batch_in_many_writes_arrives_complete_and_in_order(self, devo):
        tag = unique_tag("bulk")
        lines = _lines(tag, 20_000)
        with (
            socket.create_connection(devo.relay_address, timeout=10) as raw,
            client_context(devo).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            for start in range(0, len(lines), 777):  # writes that split lines and TLS records anywhere
                tls.sendall(b"".join(lines[start : start + 777]))
            tls.unwrap()
        assert devo.store.ids(tag) == [f"id-{i:05d}" for i in range(20_000)]

    def test_malformed_lines_are_counted_and_kept_never_dropped_silently(self, devo):
        tag = unique_tag("mixed")
        bad = [
            b"no syslog header at all",
            b"<14>Nov  3 09:05:01 host " + tag.encode() + b": ",  # empty message
            b"<14>Foo  3 09:05:01 host " + tag.encode() + b": {}",  # no such month
            b"<14>Nov  3 09:05:01 host ../escape: {}",  # a tag that is no file name
            b"",  # an empty line
        ]
        payload = syslog(tag, event(1)) + b"".join(line + b"\n" for line in bad) + syslog(tag, event(2))
        with delta(lambda: relay_stats(devo)) as grown:
            send(devo, payload)
        assert devo.store.ids(tag) == ["id-00001", "id-00002"]
        assert grown["malformed"] == len(bad) and grown["lines"] == 2
        assert set(bad) <= set(devo.store.malformed())

    def test_a_final_partial_line_is_discarded_and_counted(self, devo):
        tag = unique_tag("partial")
        payload = syslog(tag, event(1)) + syslog(tag, event(2))[:-1]  # the last newline never comes
        with delta(lambda: relay_stats(devo)) as grown:
            send(devo, payload)
        assert devo.store.ids(tag) == ["id-00001"]
        assert grown["partial_lines"] == 1 and grown["malformed"] == 0


class TestMutualTls:
    def test_a_client_without_a_certificate_is_refused(self, devo):
        tag = unique_tag("nocert")
        before = relay_stats(devo)["handshake_failures"]
        assert refused(devo, no_cert_context(devo), syslog(tag, event(1)))
        wait_until(lambda: relay_stats(devo)["handshake_failures"] == before + 1)
        assert devo.store.count(tag) == 0

    def test_a_client_certificate_from_another_ca_is_refused(self, devo, tmp_path):
        stranger = CertificateAuthority.load_or_create(tmp_path / "other-ca").issue_client_cert("devo-client")
        tag = unique_tag("otherca")
        before = relay_stats(devo)["handshake_failures"]
        assert refused(devo, client_context(devo, cert=stranger), syslog(tag, event(1)))
        wait_until(lambda: relay_stats(devo)["handshake_failures"] == before + 1)
        assert devo.store.count(tag) == 0

    @pytest.mark.parametrize(
        ("certificate", "reason"),
        [("none", "CERTIFICATE_REQUIRED"), ("another CA's", "UNKNOWN_CA")],
        ids=["no-cert", "other-ca"],
    )
    def test_a_refused_tls13_client_reads_the_reason_and_nothing_is_stored(self, devo, tmp_path, certificate, reason):
        # TLS 1.3 finishes the client's handshake before the relay has judged the client certificate, so the
        # refusal is a TLS alert on the client's first read. (Its unwrap() may even succeed: a sender must not
        # take a clean-looking close after a 1.3 handshake as proof of delivery.)
        if certificate == "none":
            context = no_cert_context(devo)
        else:
            stranger = CertificateAuthority.load_or_create(tmp_path / "other-ca").issue_client_cert("devo-client")
            context = client_context(devo, cert=stranger)
        tag = unique_tag("alert")
        with (
            socket.create_connection(devo.relay_address, timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() == "TLSv1.3"
            tls.sendall(syslog(tag, event(1)))
            with pytest.raises(ssl.SSLError) as refusal:
                tls.recv(1)
        assert refusal.value.reason is not None and reason in refusal.value.reason
        assert devo.store.count(tag) == 0

    def test_a_client_that_does_not_trust_the_emulator_ca_fails_its_own_verification(self, devo):
        untrusting = client_context(devo, trust=False)  # the system CAs only
        with (
            socket.create_connection(devo.relay_address, timeout=10) as raw,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            untrusting.wrap_socket(raw, server_hostname="127.0.0.1")

    def test_tls_below_1_2_is_refused(self, devo):
        context = client_context(devo)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client really offer TLS 1.1, so the relay says no
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
        before = relay_stats(devo)["handshake_failures"]
        assert refused(devo, context)
        wait_until(lambda: relay_stats(devo)["handshake_failures"] == before + 1)

    def test_the_accepted_certificate_is_the_emulators_devo_client(self, devo):
        cert = x509.load_pem_x509_certificate(devo.client_cert()[0].read_bytes())
        assert cert.subject.rfc4514_string() == "CN=devo-client" and cert.issuer == devo.ca.cert.subject


class TestFaults:
    def test_drop_after_bytes_cuts_one_connection_keeping_the_complete_lines(self, devo):
        tag = unique_tag("drop")
        lines = _lines(tag, 10)
        size = len(lines[0])
        devo.faults.update(drop_after_bytes=3 * size + size // 2)
        with delta(lambda: relay_stats(devo)) as grown:
            assert send_fails(devo, b"".join(lines))  # no clean close: the sender must count this batch failed
        assert devo.store.ids(tag) == ["id-00000", "id-00001", "id-00002"]
        assert grown["partial_lines"] == 1 and grown["cut"] == 1
        assert devo.faults.settings.drop_after_bytes is None  # one connection only
        assert devo.stats()["faults_injected"].get("drop_after_bytes", 0) >= 1
        send(devo, b"".join(lines))  # the retry: at-least-once, the first three now twice
        assert devo.store.count(tag) == 13 and devo.store.ids(tag).count("id-00000") == 2

    def test_drop_every_connection_after_bytes_cuts_until_cleared(self, devo):
        tag = unique_tag("dropall")
        lines = _lines(tag, 4)
        devo.faults.update(drop_every_connection_after_bytes=len(lines[0]))
        for _ in range(2):
            assert send_fails(devo, b"".join(lines))
        assert devo.store.count(tag) == 2
        devo.faults.update(drop_every_connection_after_bytes=None)
        send(devo, b"".join(lines))
        assert devo.store.count(tag) == 6

    def test_drop_after_zero_bytes_stores_nothing(self, devo):
        tag = unique_tag("drop0")
        devo.faults.update(drop_after_bytes=0)
        assert send_fails(devo, b"".join(_lines(tag, 3)))
        assert devo.store.count(tag) == 0

    def test_refuse_connections_closes_the_next_n_before_the_handshake(self, devo):
        tag = unique_tag("refuse")
        devo.faults.update(refuse_connections=2)
        with delta(lambda: relay_stats(devo)) as grown:
            for _ in range(2):
                assert refused(devo, client_context(devo))
            send(devo, syslog(tag, event(1)))
        assert grown["refused"] == 2 and grown["connections"] == 3 and grown["handshake_failures"] == 0
        assert devo.store.count(tag) == 1 and devo.faults.settings.refuse_connections == 0

    def test_an_endless_line_cuts_the_connection_instead_of_filling_memory(self, devo, monkeypatch):
        monkeypatch.setattr(devo_relay, "MAX_LINE_BYTES", 4096)
        tag = unique_tag("endless")
        with delta(lambda: relay_stats(devo)) as grown:
            assert send_fails(devo, syslog(tag, event(1)) + syslog(tag, "x" * 10_000)[:-1])
        assert devo.store.count(tag) == 1
        assert grown["line_too_long"] == 1 and grown["cut"] == 1 and grown["partial_lines"] == 1

    def test_a_slow_reader_still_gets_everything(self, devo):
        tag = unique_tag("slow")
        devo.faults.update(read_delay_s=0.05)
        started = time.monotonic()
        with (
            socket.create_connection(devo.relay_address, timeout=10) as raw,
            client_context(devo).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            for i in range(4):
                tls.sendall(syslog(tag, event(i)))
                time.sleep(0.06)  # separate TLS records, separate reads
            tls.unwrap()
        assert time.monotonic() - started >= 0.2
        assert devo.store.ids(tag) == [f"id-{i:05d}" for i in range(4)]

    def test_stopping_keeps_the_complete_lines_and_resets_open_connections(self, tmp_path):
        tag = unique_tag("stop")
        with (
            DevoEmulator(tmp_path) as devo,
            socket.create_connection(devo.relay_address, timeout=10) as raw,
            client_context(devo).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(syslog(tag, event(1)) + b"<14>Nov  3 09:05:01 h t: unfinished")
            wait_until(lambda: devo.store.count(tag) == 1)
            devo.stop()
            # A reset, not an EOF: a sender waiting for the close must not take its batch as delivered.
            with pytest.raises(ConnectionResetError):
                tls.unwrap()
        assert json.loads((tmp_path / "devo-store" / f"{tag}.ndjson").read_text()) == json.loads(event(1))
        assert devo.stats()["relay"]["partial_lines"] == 1


@pytest.mark.parametrize("module", [devo_relay, devo_http, devo_store, devo_module], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
