"""Shipping benchmark: events/s and MB/s of the Devo senders per transport, against the emulator (not a test).

The Devo emulators run in their own process (``mdca-emulator``), so the figures are the sender's: JSON
encoding, framing or gzip, TLS and batching. Alert-shaped events of about 700 bytes each. The TLS figure
includes the one-off wait (1 s) for a TLS 1.3 client-certificate refusal on the first connection.

    make bench                                       # runs this after the fetch benchmark
    .venv/bin/python bench/bench_ship.py --events 200000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from typing import Any

from airflow_provider_mdca.devo import DevoConfig, make_sender
from airflow_provider_mdca.devo.framing import encode_event
from mdca_emulator.process import EmulatorProcess


def alert_events(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {
            "_id": f"{i:024x}",
            "timestamp": 1_790_000_000_000 + i,
            "title": "Impossible travel activity",
            "description": "Connexion depuis deux pays - José (中文) " * 8,
            "severityValue": i % 3,
            "statusValue": 1,
            "related_users": 2,
            "user_id": f"user{i % 97}@contoso.com",
            "user_label": "José Pérez",
            "related_ips": 1,
            "ip_id": f"10.{i % 255}.{i % 253}.{i % 251}",
        }


def configs(devo: dict[str, Any]) -> dict[str, DevoConfig]:
    return {
        "tls": DevoConfig(
            transport="tls",
            host=devo["relay_host"],
            port=int(devo["relay_port"]),
            cert=devo["client_cert"],
            key=devo["client_key"],
            chain=devo["ca_bundle"],
        ),
        "http": DevoConfig(
            transport="http",
            host=devo["http_url"],
            token=devo["token"],
            domain=devo["domain"],
            verify=devo["ca_bundle"],
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args(argv)
    payload_mb = sum(len(encode_event(e)) + 1 for e in alert_events(args.events)) / 2**20
    with EmulatorProcess(tenants=[]) as emulator:
        for transport, config in configs(emulator.info["devo"]).items():
            sender = make_sender(config)
            began = time.perf_counter()
            stats = sender.send(f"bench.ship.{transport}", alert_events(args.events))
            seconds = time.perf_counter() - began
            delivered, wire_mb = stats.events, stats.bytes / 2**20
            print(
                f"{transport:<5} {delivered:>9,} events  {delivered / seconds:>9,.0f} events/s  "
                f"{payload_mb / seconds:>6.1f} MB/s of JSON  {wire_mb / seconds:>6.1f} MB/s on the wire "
                f"({wire_mb:.1f} MB, {stats.batches} batches)  {seconds:.2f} s"
            )
            sender.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
