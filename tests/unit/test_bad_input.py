"""The bad-input suite: generated hostile answers and settings, and what must hold whatever they are.

- The MDCA client, driven through its real transport, paginators and retry policy by a server that answers anything
  (status codes, Retry-After headers, truncated, oversized, nested or non-object bodies, lying ``total`` and
  ``hasNext``, repeated, backward and malformed ``nextQueryFilters``, records without ids or timestamps, echoed
  credentials): every fetch ends within its request budget, raises only the provider's documented errors, never
  shows a credential (in any message, log record or pickle) and never yields a record twice.
- The Devo HTTP sender against an endpoint that answers anything: it delivers or raises DeliveryError, ends, and
  never shows its token.
- The collector configuration: any generated file is a config or an InitVariablesError naming a key path.

The session is faked at the edge (the HTTP library's ``Session``): everything above it is the product's code.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from airflow_provider_mdca.client import MdcaClient, MdcaConfig
from airflow_provider_mdca.client.auth import MdcaAuth
from airflow_provider_mdca.client.mdca import to_epoch_ms
from airflow_provider_mdca.client.ratelimit import RateLimiter
from airflow_provider_mdca.client.transport import Transport
from airflow_provider_mdca.config import parse_collector_config
from airflow_provider_mdca.connections.devo import DevoConfig
from airflow_provider_mdca.devo.http import HttpStreamSender
from airflow_provider_mdca.errors import DeliveryError, InitVariablesError, MdcaProviderError
from airflow_provider_mdca.event_keys import record_key
from airflow_provider_mdca.redaction import register_secret

SECRET = "client-secret-7fQ9x2LmP4"
TOKEN = "bearer-token-Zk83hQ1vNw0aT5"
DEVO_TOKEN = "devo-ingestion-Rm4x9Qp2Lk7"
SECRETS = (SECRET, TOKEN, DEVO_TOKEN)
# A recent window: MDCA keeps activities about 30 days, and the client refuses an older window.
START = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
END = START + timedelta(minutes=5)
START_MS, END_MS = to_epoch_ms(START), to_epoch_ms(END)
MAX_REQUESTS = 400  # far beyond any honest fetch of these answers: a fetch that gets here is looping
HOSTILE = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# -- a server that answers anything ------------------------------------------------------------------------------

ids = st.sampled_from([f"id-{i}" for i in range(8)])
stamps = st.one_of(
    st.integers(START_MS - 10, END_MS + 10),
    st.just(None),
    st.sampled_from([(START + timedelta(minutes=1)).isoformat(), "not a time", ""]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
records = st.one_of(
    st.fixed_dictionaries(
        {"_id": st.one_of(ids, st.just(None), st.integers(0, 3))},
        optional={
            "created": stamps,
            "timestamp": stamps,
            "resolveTime": stamps,
            "note": st.sampled_from(["ok", f"echo {TOKEN}", f"echo {SECRET}"]),
        },
    ),
    st.sampled_from(["a string", 7, None, ["list"]]),
)
filters = st.one_of(
    st.fixed_dictionaries(
        {"created": st.fixed_dictionaries({"gte": st.integers(START_MS - 100, END_MS), "lte": st.just(END_MS - 1)})}
    ),
    st.just({"created": {"gte": START_MS, "lte": END_MS - 1}}),
    st.sampled_from([[], "filters", {"date": "yesterday"}, {"created": []}, {}]),
)
pages = st.fixed_dictionaries(
    {"data": st.one_of(st.lists(records, max_size=6), st.sampled_from([None, "data", {"a": 1}]))},
    optional={
        "hasNext": st.one_of(st.booleans(), st.sampled_from([None, "yes", 1])),
        "total": st.one_of(st.integers(-5, 50), st.sampled_from([None, "10", 1e9])),
        "nextQueryFilters": filters,
    },
).map(lambda page: json.dumps(page).encode())
bodies = st.one_of(
    pages,
    pages.map(lambda body: body[: len(body) // 2]),  # cut on the wire
    st.sampled_from(
        [
            b"",
            b"null",
            b"[1, 2]",
            b"\xff\xfe not utf-8",
            b"[" * 5_000 + b"]" * 5_000,  # nested beyond any parser's recursion
            f'{{"error": "bad token {TOKEN}", "secret": "{SECRET}"}}'.encode(),
            b'{"data": ["' + b"x" * 70_000 + b'"], "hasNext": false}',  # beyond the test's max_response_bytes
        ]
    ),
)
statuses = st.one_of(st.just(200), st.sampled_from([200, 200, 200, 204, 302, 400, 401, 403, 404, 418, 429, 500, 503]))
retry_after = st.one_of(
    st.none(), st.sampled_from(["0", "1", "-4", "nan", "inf", "soon", "Wed, 21 Oct 2015 07:28:00 GMT", "1e308"])
)
answers = st.lists(
    st.tuples(statuses, retry_after, bodies).map(lambda a: {"status": a[0], "retry_after": a[1], "body": a[2]}),
    min_size=1,
    max_size=12,
)
failures = st.sampled_from(
    [
        requests.ConnectionError("connection reset by peer"),
        requests.Timeout("read timed out"),
        requests.exceptions.ChunkedEncodingError("IncompleteRead"),
        requests.exceptions.InvalidHeader(f"Invalid header value b'Bearer {TOKEN}\\n'"),
        ValueError(f"Invalid header value b'Token {TOKEN}\\n'"),
    ]
)


class Server:
    """Answers each request with the next generated answer, then with an empty last page (so an honest client ends)."""

    def __init__(self, script: list[Any]) -> None:
        self.script = list(script)
        self.requests = 0

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        self.requests += 1
        if self.requests > MAX_REQUESTS:
            raise AssertionError(f"the client sent more than {MAX_REQUESTS} requests: it is looping")
        answer: Any = (
            self.script.pop(0) if self.script else {"status": 200, "retry_after": None, "body": b'{"data": []}'}
        )
        if isinstance(answer, BaseException):
            raise answer
        response = requests.Response()
        response.status_code = int(answer["status"])
        response.raw = io.BytesIO(answer["body"])
        headers = {"Retry-After": str(answer["retry_after"])} if answer["retry_after"] is not None else {}
        response.headers = CaseInsensitiveDict(headers)
        return response


class BearerAuth(MdcaAuth):
    """An Entra ID token, registered as a secret as EntraIdAuth registers every token it gets."""

    can_refresh = True

    def __init__(self) -> None:
        register_secret(TOKEN)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {TOKEN}"
        return request


def client_on(server: Server) -> MdcaClient:
    config = MdcaConfig(
        base_url="https://mdca.test/",
        tenant_id="tenant",
        client_id="client",
        client_secret=SECRET,
        requests_per_minute=None,
        max_retries=3,
        max_throttle_retries=3,
        max_response_bytes=64 * 1024,
    )
    client = MdcaClient(config, sleep=lambda _: None)
    client._transport = Transport(config, server, limiter=RateLimiter(None), sleep=lambda _: None)  # type: ignore[arg-type]
    client._entra = BearerAuth()  # type: ignore[assignment]
    return client


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def logs() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger("airflow_provider_mdca")
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


def assert_nothing_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"a credential was shown: {text[:300]}"


@pytest.mark.parametrize("service", ["activities", "alerts", "entities"])
@HOSTILE
@given(script=st.lists(st.one_of(answers.map(tuple), failures.map(lambda f: (f,))), max_size=4))
def test_a_hostile_mdca_ends_in_a_documented_error_or_records_each_once(
    service: str, script: Any, logs: Captured
) -> None:
    flat = [item for chunk in script for item in chunk]
    server = Server(flat)
    logs.lines.clear()
    yielded: list[str] = []
    with client_on(server) as client:
        try:
            for record in client.fetch(service, START, END):
                yielded.append(record_key(record))
        except MdcaProviderError as exc:
            assert_nothing_secret(str(exc), repr(exc), pickle.dumps(exc).decode("latin-1"))
    assert len(yielded) == len(set(yielded)), "a record was yielded twice"
    assert_nothing_secret(*logs.lines)


# -- Devo's HTTP endpoint ------------------------------------------------------------------------------------------

devo_answers = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from([200, 201, 204, 302, 400, 401, 403, 404, 413, 429, 500, 502, 503]),
            retry_after,
            st.sampled_from([b"", b"ok", f"token!{DEVO_TOKEN} refused".encode(), b"\xff\xfe"]),
        ).map(lambda a: {"status": a[0], "retry_after": a[1], "body": a[2]}),
        st.sampled_from([requests.ConnectionError("refused"), requests.Timeout("slow")]),
    ),
    max_size=8,
)


@HOSTILE
@given(script=devo_answers, events=st.integers(0, 30))
def test_a_hostile_devo_endpoint_ends_in_delivery_or_a_delivery_error(script: Any, events: int, logs: Captured) -> None:
    config = DevoConfig.from_connection(
        host="https://http-us.devo.io",
        port=None,
        password=DEVO_TOKEN,
        extra={"transport": "http", "domain": "acme", "max_retries": 3, "batch_events": 7},
    )
    sender = HttpStreamSender(config, sleep=lambda _: None)
    server = Server(script)
    sender._session = server  # type: ignore[assignment]
    logs.lines.clear()
    outcome = _send(sender, events)
    if isinstance(outcome, DeliveryError):
        assert outcome.code in {501, 502, 504}
        assert_nothing_secret(str(outcome), repr(outcome), pickle.dumps(outcome).decode("latin-1"))
    else:
        assert outcome == events
    assert_nothing_secret(*logs.lines)


def _send(sender: HttpStreamSender, events: int) -> int | DeliveryError:
    try:
        return sender.send("my.app.tag", ({"_id": f"e{i}", "n": i} for i in range(events))).events
    except DeliveryError as exc:
        return exc


# -- the collector configuration ------------------------------------------------------------------------------------

keys = st.sampled_from(
    ["enabled", "period", "historic_date_utc", "lag", "page_size", "flatten", "max_events_per_alert", "obfuscation",
     "tag", "extra_fields", "retries", "retry_delay", "pool", "staging_url", "retention", "mdca_conn_id",
     "on_expired_window", "no_such_key"]
)  # fmt: skip
values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True),
        st.text(max_size=12),
        st.sampled_from(["5m", "99999999999w", "PT5M", "P1M", "2026-01-01", "2026-13-45T99:00Z", "a b/c", "-1"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)
sections = st.dictionaries(keys, values, max_size=5)
configs = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "defaults": st.one_of(sections, values),
            "services": st.one_of(
                st.dictionaries(st.sampled_from(["alerts", "files", "entities", "nope"]), st.one_of(sections, values)),
                values,
            ),
            "extra": values,
        },
    ),
    values,
)


@settings(max_examples=300, deadline=None)
@given(data=configs)
def test_any_collector_config_is_a_config_or_an_error_naming_the_key(data: Any) -> None:
    error = _config_error(data)
    if error is None:
        return
    detail = str(error).split("collector config <config>: ", 1)[1]
    assert error.code in {1, 3}
    if not isinstance(data, Mapping):
        assert detail.startswith("expected a mapping with 'defaults' and 'services'")
        return
    # The message starts with the key path it is about: its first part is a section of the file (or the one
    # required setting the file left out).
    path = detail.split(": ", 1)[0]
    assert any(path.startswith(section) for section in {*map(str, data), "defaults", "services"}), detail


def _config_error(data: Any) -> InitVariablesError | None:
    try:
        parse_collector_config(data)
    except InitVariablesError as exc:
        return exc
    return None
