"""A StatsD listener on 127.0.0.1 for the tests: it keeps every metric that Airflow's ``Stats`` sends it.

Airflow with ``[metrics] statsd_on`` sends each metric as a UDP datagram (``<name>:<value>|<type>[|@<rate>]``, several
lines in one datagram when a client batches them) to ``statsd_host:statsd_port``. :class:`StatsdListener` binds a
free UDP port on 127.0.0.1, reads datagrams in a thread until it is stopped, and answers what a test checks: the sum
of a counter, the values of a timer.

Harness, not provider: nothing here imports Airflow.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

__all__ = ["Sample", "StatsdListener", "parse_datagram"]


@dataclass(frozen=True)
class Sample:
    """One metric line: ``name:value|kind`` (``c`` a counter, ``ms`` a timer, ``g`` a gauge), its sample rate."""

    name: str
    value: float
    kind: str
    rate: float = 1.0


def parse_datagram(data: bytes) -> list[Sample]:
    """The metric lines of one datagram; a line that is not StatsD is skipped (the test sees only what parses)."""
    samples = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split("|")
        if not name or len(fields) < 2:
            continue
        try:
            value = float(fields[0])
            rate = float(fields[2][1:]) if len(fields) > 2 and fields[2].startswith("@") else 1.0
        except ValueError:
            continue
        samples.append(Sample(name, value, fields[1], rate))
    return samples


class StatsdListener:
    """A UDP StatsD server on 127.0.0.1 that records what it receives; a context manager that stops it on exit."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Airflow's scheduler sends its own metrics too, in bursts: room for them while the thread catches up.
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port: int = self._socket.getsockname()[1]
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"statsd-{self.port}", daemon=True)

    def start(self) -> StatsdListener:
        """Start reading datagrams."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop reading and close the socket."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._socket.close()

    def __enter__(self) -> StatsdListener:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                data = self._socket.recv(65_535)
            except TimeoutError:
                continue
            except OSError:
                return
            samples = parse_datagram(data)
            with self._lock:
                self._samples.extend(samples)

    def samples(self, prefix: str = "") -> list[Sample]:
        """Every sample received so far whose name starts with ``prefix``."""
        with self._lock:
            return [sample for sample in self._samples if sample.name.startswith(prefix)]

    def names(self, prefix: str = "") -> set[str]:
        """The names received so far that start with ``prefix``."""
        return {sample.name for sample in self.samples(prefix)}

    def counter(self, name: str) -> float:
        """A counter's total: the sum of its increments, each scaled by its sample rate."""
        return sum(s.value / s.rate for s in self.samples(name) if s.name == name and s.kind == "c")

    def counters(self, names: Iterable[str]) -> dict[str, float]:
        """The totals of several counters, by name."""
        return {name: self.counter(name) for name in names}

    def timings(self, name: str) -> list[float]:
        """Every value of a timer (``|ms``), in the order received."""
        return [s.value for s in self.samples(name) if s.name == name and s.kind == "ms"]

    def wait_for(self, ready: Callable[[StatsdListener], bool], timeout: float = 10.0) -> bool:
        """Wait until ``ready(self)`` (datagrams may still be in flight when a task has finished); its last answer."""
        deadline = time.monotonic() + timeout
        while not ready(self):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True
