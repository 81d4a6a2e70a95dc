"""The Devo emulators' store, fault knobs and the :class:`DevoEmulator` object, without sockets where possible."""

from __future__ import annotations

import json
import threading

import pytest

from mdca_emulator import CertificateAuthority, DevoEmulator, DevoFaults, DevoStore
from mdca_emulator.devo import derive_token
from mdca_emulator.devo_relay import parse_line


class TestStore:
    def test_appends_counts_and_decodes_lazily(self, tmp_path):
        store = DevoStore(tmp_path)
        store.append("a.b", [b'{"_id": "1"}', b'{"_id": "1"}', b"[1, 2]", b"not json"])
        store.append_block("c", b'{"k": 5}\n', 1)
        assert store.count("a.b") == 4 and store.count("never") == 0
        assert store.tags() == ["a.b", "c"] and store.counts() == {"a.b": 4, "c": 1}
        assert store.ids("a.b") == ["1", "1"]  # duplicates kept
        assert store.ids("c", key="k") == ["5"]
        assert store.events("a.b")[2:] == [[1, 2], "not json"]
        assert (tmp_path / "a.b.ndjson").read_bytes().count(b"\n") == 4
        store.close()

    def test_a_reopened_store_continues_its_files(self, tmp_path):
        first = DevoStore(tmp_path)
        first.append("t", [b"{}", b"{}"])
        first.close()
        (tmp_path / "not-a-tag.txt").write_text("ignored")
        second = DevoStore(tmp_path)
        second.append("t", [b"{}"])
        assert second.counts() == {"t": 3} and len(second.raw_lines("t")) == 3
        second.close()

    def test_reset_deletes_files_counts_and_counters(self, tmp_path):
        store = DevoStore(tmp_path)
        store.append("t", [b"{}"])
        store.add_malformed([b"bad"])
        store.reset()
        assert store.counts() == {} and not list(tmp_path.glob("*.ndjson")) and store.malformed() == []
        assert store.stats()["relay"]["malformed"] == 0
        store.append("t", [b"{}"])  # usable afterwards
        assert store.count("t") == 1
        store.close()

    def test_tags_that_are_no_safe_file_name_are_refused(self, tmp_path):
        store = DevoStore(tmp_path)
        for tag in ("../x", ".hidden", "a/b", "", "x" * 256):
            with pytest.raises(ValueError, match="invalid tag"):
                store.append(tag, [b"{}"])
        assert store.events("../x") == []

    def test_concurrent_appends_lose_nothing(self, tmp_path):
        store = DevoStore(tmp_path)

        def write(worker: int) -> None:
            for i in range(200):
                store.append("t", [json.dumps({"_id": f"{worker}-{i}"}).encode()])

        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.count("t") == 800 and len(set(store.ids("t"))) == 800
        store.close()

    def test_stats_shape(self, tmp_path):
        stats = DevoStore(tmp_path).stats()
        assert set(stats) == {"relay", "http", "faults_injected", "tags"}
        assert stats["http"] == {"requests": 0, "bytes": 0, "lines": 0, "incomplete_bodies": 0, "by_status": {}}


class TestFaults:
    def test_knobs_are_consumed_as_documented(self):
        injected: list[str] = []
        faults = DevoFaults(on_inject=injected.append)
        faults.update(refuse_connections=1, drop_after_bytes=10, fault_queue=["503", "reset"])
        assert faults.take_refusal() and not faults.take_refusal()
        assert faults.take_drop_limit() == (10, "drop_after_bytes") and faults.take_drop_limit() is None
        faults.update({"drop_every_connection_after_bytes": 5})
        assert faults.take_drop_limit() == faults.take_drop_limit() == (5, "drop_every_connection_after_bytes")
        assert [faults.take_http_fault(), faults.take_http_fault(), faults.take_http_fault()] == ["503", "reset", None]
        assert injected == ["refuse_connection", "http_503", "http_reset"]

    @pytest.mark.parametrize(
        "changes",
        [
            {"refuse_connections": -1},
            {"refuse_connections": True},
            {"drop_after_bytes": "10"},
            {"read_delay_s": float("nan")},
            {"http_read_delay_s": 3600},
            {"fault_queue": ["418"]},
            {"fault_queue": 5},
            {"unknown": 1},
        ],
        ids=lambda changes: next(iter(changes)),
    )
    def test_bad_values_are_refused_and_change_nothing(self, changes):
        faults = DevoFaults()
        faults.update(read_delay_s=0.5)
        with pytest.raises(ValueError, match=next(iter(changes))):
            faults.update({"refuse_connections": 2, **changes})  # the valid knob beside it is not applied either
        assert faults.to_dict() == {**DevoFaults().to_dict(), "read_delay_s": 0.5}

    def test_a_single_fault_name_is_a_queue_of_one_and_reset_clears_all(self):
        faults = DevoFaults()
        assert faults.update(fault_queue="429").fault_queue == ("429",)
        faults.reset()
        assert faults.to_dict() == {
            "refuse_connections": 0,
            "drop_after_bytes": None,
            "drop_every_connection_after_bytes": None,
            "read_delay_s": 0.0,
            "fault_queue": [],
            "http_read_delay_s": 0.0,
        }


class TestParseLine:
    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            (b"<14>Nov  3 09:05:01 h a.b: {}", ("a.b", b"{}")),
            (b"<0>Jan 01 00:00:00 h a: x y: z", ("a", b"x y: z")),
            (b"<191>Dec 3 23:59:59 h-1.example a_b-c: m", ("a_b-c", b"m")),
            (b"<14>Nov  3 09:05:01 h a.b:{}", None),  # no space after the colon
            (b"<14>Nov  3 09:05 h a.b: {}", None),
            (b"14>Nov  3 09:05:01 h a.b: {}", None),
        ],
    )
    def test_syslog_lines(self, line, expected):
        assert parse_line(line) == expected


class TestEmulatorObject:
    def test_token_is_derived_per_domain_and_describe_is_complete(self, tmp_path):
        ca = CertificateAuthority.load_or_create(tmp_path)
        devo = DevoEmulator(tmp_path, domain="acme", ca=ca, store_dir=tmp_path / "events")
        assert devo.token == derive_token("acme") != derive_token("emu_domain") and devo.ca is ca
        with devo:
            info = devo.describe()
            assert json.loads(json.dumps(info)) == info
            assert info["relay_port"] == devo.relay_address[1] and info["http_url"] == devo.http_url
            assert info["store_dir"] == str(tmp_path / "events") and info["token"] == devo.token
            assert info["ca_bundle"] == str(ca.ca_cert_path) and info["client_cert"].endswith("client-devo-client.pem")
        with pytest.raises(RuntimeError):
            _ = devo.http_url  # stopped

    def test_an_explicit_token_and_bad_settings(self, tmp_path):
        assert DevoEmulator(tmp_path, token="s3cr3t").token == "s3cr3t"
        for bad in ({"domain": ""}, {"domain": "a/b"}, {"token": ""}, {"token": "a/b"}):
            with pytest.raises(ValueError, match=r"domain|token"):
                DevoEmulator(tmp_path, **bad)
