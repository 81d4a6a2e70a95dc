"""The Devo HTTP ingestion emulator and the ``/_admin/devo/`` API over real HTTPS."""

from __future__ import annotations

import gzip
import json
import logging
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from mdca_emulator import DEVO_HTTP_FAULTS, DevoEmulator
from mdca_emulator.devo_http import MAX_BODY_BYTES
from tests.emulator.devo_support import (
    client_context,
    event,
    new_session,
    no_cert_context,
    running_devo,
    send,
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


@pytest.fixture
def session(devo: DevoEmulator) -> Iterator[requests.Session]:
    with new_session(devo) as client:
        yield client


def _body(*ids: int) -> bytes:
    return "".join(event(i) + "\n" for i in ids).encode()


def _status_counts(devo: DevoEmulator) -> dict[str, int]:
    counts: dict[str, int] = devo.stats()["http"]["by_status"]
    return counts


class TestIngestion:
    def test_a_plain_body_is_stored_line_by_line(self, devo, session):
        tag = unique_tag("plain")
        response = session.post(devo.ingest_url(tag), data=_body(1, 2, 3))
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "ok", "received": 3}
        assert devo.store.ids(tag) == ["id-00001", "id-00002", "id-00003"]
        assert (devo.store.directory / f"{tag}.ndjson").read_bytes() == _body(1, 2, 3)

    def test_a_gzip_body_of_several_members_is_inflated(self, devo, session):
        tag = unique_tag("gzip")
        body = gzip.compress(_body(1, 2)) + gzip.compress(_body(3).replace(b"\n", b"\r\n"))
        response = session.post(devo.ingest_url(tag), data=body, headers={"Content-Encoding": "gzip"})
        assert response.json() == {"status": "ok", "received": 3}
        assert devo.store.ids(tag) == ["id-00001", "id-00002", "id-00003"]

    def test_event_stores_one_event_and_answers_204(self, devo, session):
        tag = unique_tag("event")
        response = session.post(devo.ingest_url(tag, kind="event"), data=event(7).encode())
        assert response.status_code == 204 and response.content == b""
        assert devo.store.ids(tag) == ["id-00007"]

    def test_relay_and_http_share_one_store(self, devo, session):
        tag = unique_tag("both")
        send(devo, syslog(tag, event(1)), client_context(devo))
        session.post(devo.ingest_url(tag), data=_body(2)).raise_for_status()
        assert devo.store.ids(tag) == ["id-00001", "id-00002"]


class TestRefusals:
    def test_a_wrong_or_missing_token_is_401_and_never_echoed(self, devo, session, caplog):
        caplog.set_level(logging.DEBUG, logger="mdca_emulator")
        tag = unique_tag("auth")
        wrong = "wrong-token-0123456789"
        urls = [
            devo.ingest_url(tag).replace(devo.token, wrong),
            devo.ingest_url(tag).replace(f"token!{devo.token}", "token!"),
            devo.ingest_url(tag).replace(f"token!{devo.token}", devo.token),  # no token! marker
            devo.ingest_url(tag).replace(devo.domain, "another_domain"),
        ]
        for url in urls:
            response = session.post(url, data=_body(1))
            assert response.status_code == 401
            assert response.json() == {"error": "invalid token", "status": 401}
            assert devo.token not in response.text and wrong not in response.text
        assert devo.store.count(tag) == 0
        ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("mdca_emulator"))
        assert "token!***" in ours  # the requests were logged ...
        assert devo.token not in ours and wrong not in ours  # ... without their tokens

    def test_a_body_over_32_mib_after_inflation_is_413(self, devo, session):
        tag = unique_tag("bomb")
        bomb = gzip.compress(b"\n" * (MAX_BODY_BYTES + 1), compresslevel=9)  # ~33 KB on the wire
        response = session.post(devo.ingest_url(tag), data=bomb, headers={"Content-Encoding": "gzip"})
        assert response.status_code == 413 and devo.store.count(tag) == 0

    def test_a_declared_length_over_the_limit_is_413_without_reading_it(self, devo):
        tag = unique_tag("huge")
        path = devo.ingest_url(tag).removeprefix(devo.http_url)
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
        address = urlsplit(devo.http_url)
        with (
            socket.create_connection((address.hostname, address.port), timeout=10) as raw,
            no_cert_context(devo).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(head.encode())
            answer = tls.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 413") and "Connection: close" in answer

    def test_a_body_cut_short_is_not_stored(self, devo):
        tag = unique_tag("short")
        path = devo.ingest_url(tag).removeprefix(devo.http_url)
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
        address = urlsplit(devo.http_url)
        before = devo.stats()["http"]["incomplete_bodies"]
        with (
            socket.create_connection((address.hostname, address.port), timeout=10) as raw,
            no_cert_context(devo).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(head.encode() + _body(1))  # far fewer than 1000 bytes, then the client goes away
        wait_until(lambda: devo.stats()["http"]["incomplete_bodies"] == before + 1)
        assert devo.store.count(tag) == 0

    def test_unknown_paths_are_404_and_other_methods_405(self, devo, session):
        assert session.post(f"{devo.http_url}/stream/{devo.domain}", data=b"x").status_code == 404
        assert session.get(f"{devo.http_url}/nothing/here").json() == {"error": "not found", "status": 404}
        assert session.get(devo.ingest_url(unique_tag())).status_code == 405

    def test_an_invalid_tag_or_gzip_is_400_and_an_unknown_encoding_415(self, devo, session):
        assert session.post(devo.ingest_url(".hidden"), data=_body(1)).status_code == 400
        tag = unique_tag("enc")
        bad_gzip = session.post(devo.ingest_url(tag), data=b"not gzip", headers={"Content-Encoding": "gzip"})
        assert bad_gzip.status_code == 400
        brotli = session.post(devo.ingest_url(tag), data=b"x", headers={"Content-Encoding": "br"})
        assert brotli.status_code == 415 and devo.store.count(tag) == 0


class TestFaults:
    def test_each_queued_fault_applies_to_one_request_in_order(self, devo, session):
        tag = unique_tag("faults")
        queue = ["500", "502", "503", "429", "429-no-retry-after", "reset"]
        devo.faults.update(fault_queue=queue)
        seen: list[tuple[int, str | None] | str] = []
        for _ in queue:
            try:
                response = session.post(devo.ingest_url(tag), data=_body(1))
            except requests.ConnectionError:
                seen.append("reset")
            else:
                seen.append((response.status_code, response.headers.get("Retry-After")))
        assert seen == [(500, None), (502, None), (503, None), (429, "1"), (429, None), "reset"]
        assert devo.store.count(tag) == 0  # a refused request stores nothing
        assert session.post(devo.ingest_url(tag), data=_body(1)).status_code == 200
        assert devo.faults.settings.fault_queue == ()
        injected = devo.stats()["faults_injected"]
        assert all(injected.get(f"http_{name}", 0) >= 1 for name in queue)

    def test_reset_after_store_stores_but_loses_the_answer(self, devo, session):
        tag = unique_tag("lost")
        devo.faults.update(fault_queue=["reset-after-store"])
        with pytest.raises(requests.ConnectionError):
            session.post(devo.ingest_url(tag), data=_body(1))
        session.post(devo.ingest_url(tag), data=_body(1)).raise_for_status()  # the client's retry
        assert devo.store.ids(tag) == ["id-00001", "id-00001"]

    def test_faults_do_not_touch_the_admin_api(self, devo, session):
        devo.faults.update(fault_queue=["500"])
        assert session.get(f"{devo.admin_url}stats").status_code == 200
        assert devo.faults.settings.fault_queue == ("500",)

    def test_a_slow_http_reader(self, devo, session):
        tag = unique_tag("slowhttp")
        devo.faults.update(http_read_delay_s=0.2)
        started = time.monotonic()
        session.post(devo.ingest_url(tag), data=_body(1)).raise_for_status()
        assert time.monotonic() - started >= 0.2 and devo.store.count(tag) == 1

    def test_http_fault_names_are_exported(self):
        assert "429-no-retry-after" in DEVO_HTTP_FAULTS


class TestAdmin:
    def test_tags_ids_events_and_stats_round_trip(self, devo, session):
        tag = unique_tag("admin")
        session.post(devo.ingest_url(tag), data=_body(1, 1, 2) + b"plain text\n").raise_for_status()
        assert session.get(f"{devo.admin_url}tags").json()["tags"][tag] == 4
        ids = session.get(f"{devo.admin_url}tags/{tag}/ids").json()
        assert ids == {"tag": tag, "key": "_id", "count": 3, "ids": ["id-00001", "id-00001", "id-00002"]}
        other_key = session.get(f"{devo.admin_url}tags/{tag}/ids", params={"key": "missing"}).json()
        assert other_key["ids"] == []
        events = session.get(f"{devo.admin_url}tags/{tag}/events").json()["events"]
        assert events[-1] == "plain text" and events[0] == json.loads(event(1))
        stats = session.get(f"{devo.admin_url}stats").json()
        assert stats["tags"][tag] == 4 and stats["http"]["by_status"]["200"] >= 1
        assert {"connections", "bytes", "lines", "malformed", "partial_lines"} <= set(stats["relay"])

    def test_faults_patch_round_trip_and_validation(self, devo, session):
        patched = session.patch(f"{devo.admin_url}faults", json={"refuse_connections": 1, "fault_queue": ["503"]})
        assert patched.status_code == 200
        assert patched.json()["refuse_connections"] == 1 and patched.json()["fault_queue"] == ["503"]
        assert devo.faults.settings.refuse_connections == 1
        for bad in ({"refuse_connections": -1}, {"no_such_knob": 1}, {"fault_queue": ["418"]}, [1]):
            response = session.patch(f"{devo.admin_url}faults", json=bad)
            assert response.status_code == 400, bad
        assert session.get(f"{devo.admin_url}faults").json()["fault_queue"] == ["503"]  # all or nothing

    def test_malformed_lines_are_listed(self, devo, session):
        marker = f"garbage {unique_tag()}"
        send(devo, marker.encode() + b"\n", client_context(devo))
        listed = session.get(f"{devo.admin_url}malformed").json()
        assert marker in listed["lines"] and listed["count"] >= 1

    def test_reset_empties_the_store_and_clears_the_knobs(self, tmp_path):
        with DevoEmulator(tmp_path) as devo, new_session(devo) as session:
            tag = unique_tag("reset")
            session.post(devo.ingest_url(tag), data=_body(1)).raise_for_status()
            devo.faults.update(refuse_connections=3)
            assert session.post(f"{devo.admin_url}reset").json() == {"reset": True}
            assert session.get(f"{devo.admin_url}tags").json() == {"tags": {}}
            assert not list(devo.store.directory.glob("*.ndjson"))
            assert devo.faults.settings.refuse_connections == 0
            assert devo.stats()["http"]["requests"] == 1  # the GET above: the reset zeroed the counters

    def test_unknown_admin_routes(self, devo, session):
        assert session.get(f"{devo.admin_url}nothing").status_code == 404
        assert session.delete(f"{devo.admin_url}stats").status_code == 405
