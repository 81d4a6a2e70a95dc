"""What one fetch asks MDCA for and yields, with the transport faked at the edge: windows, changes and retention."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_mdca.client import MdcaClient, MdcaConfig
from airflow_provider_mdca.client.mdca import to_epoch_ms
from airflow_provider_mdca.errors import InitVariablesError

CONFIG = MdcaConfig(
    base_url="https://mdca.test/",
    tenant_id="t",
    client_id="c",
    client_secret="s3cr3t-value",
    files_access_token="files-token-value",
    requests_per_minute=None,
)
NOW = datetime.now(timezone.utc).replace(microsecond=0)
START = NOW - timedelta(hours=1)
END = START + timedelta(minutes=5)


class Pages:
    """Answers each request with the next canned page and keeps every (url, body) asked for."""

    def __init__(self, *pages: dict[str, Any]) -> None:
        self.pages = list(pages)
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def post_json(self, url: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.asked.append((url, body))
        return self.pages.pop(0)


@pytest.fixture
def client() -> Iterator[MdcaClient]:
    with MdcaClient(CONFIG) as mdca:
        mdca._entra = object()  # type: ignore[assignment]  # no token is needed: the transport is faked
        yield mdca


def alert(rid: str, ts: int, resolved: int | None = None) -> dict[str, Any]:
    return {"_id": rid, "timestamp": ts, "resolveTime": resolved, "statusValue": "RESOLVED" if resolved else "OPEN"}


def test_alerts_changed_in_the_window_follow_its_raised_ones_each_once(client: MdcaClient) -> None:
    start, end = to_epoch_ms(START), to_epoch_ms(END)
    pages = Pages(
        {"data": [alert("a", start + 1), alert("b", start + 2, resolved=start + 3)], "hasNext": False},
        # Resolved in the window: b was raised in it too (already read, in its resolved state); c was raised earlier.
        {"data": [alert("b", start + 2, resolved=start + 3), alert("c", start - 86_400_000, resolved=start + 4)]},
    )
    client._transport = pages  # type: ignore[assignment]
    records = client.fetch("alerts", START, END)
    assert [r["_id"] for r in records] == ["a", "b", "c"]
    assert (records.stats.records, records.stats.changes) == (3, 1)
    (_, raised), (_, changed) = pages.asked
    assert raised["filters"] == {"date": {"gte": start, "lte": end - 1}}
    assert changed["filters"] == {"resolutionDate": {"gte": start, "lte": end - 1}}
    assert (changed["sortField"], changed["sortDirection"]) == ("resolutionDate", "asc")


def test_activities_are_read_by_when_mdca_stored_them(client: MdcaClient) -> None:
    start = to_epoch_ms(START)
    late = {"_id": "x", "timestamp": start - 3 * 86_400_000, "created": start + 10}  # happened 3 days before
    pages = Pages({"data": [late], "hasNext": False})
    client._transport = pages  # type: ignore[assignment]
    assert [r["_id"] for r in client.fetch("activities", START, END)] == ["x"]
    (_, body) = pages.asked[0]
    assert body["filters"] == {"created": {"gte": start, "lte": to_epoch_ms(END) - 1}}
    assert (body["sortField"], body["sortDirection"], body["isScan"]) == ("created", "asc", True)


def test_every_snapshot_request_states_its_order(client: MdcaClient) -> None:
    pages = Pages({"data": [{"_id": "e1"}], "hasNext": False}, {"data": [{"_id": "s1"}], "hasNext": False})
    client._transport = pages  # type: ignore[assignment]
    assert len(list(client.fetch("entities", START, END))) == len(list(client.fetch("data_enrichment", START, END)))
    assert [(b["sortField"], b["sortDirection"]) for _, b in pages.asked] == [("date", "asc"), ("name", "asc")]


def test_a_window_older_than_mdca_keeps_is_an_error_naming_the_limit(client: MdcaClient) -> None:
    old = NOW - timedelta(days=31)
    with pytest.raises(InitVariablesError) as info:
        client.fetch("activities", old, old + timedelta(minutes=5))
    error = info.value
    assert error.code == 1 and error.service == "activities" and error.window is not None
    assert "keeps about 30 days of activities" in str(error) and "on_expired_window: warn" in str(error)


def test_warn_reads_what_is_left_of_an_expired_window(client: MdcaClient, caplog: pytest.LogCaptureFixture) -> None:
    old = NOW - timedelta(days=31)
    client._transport = Pages({"data": [], "hasNext": False})  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="airflow_provider_mdca.client.mdca"):
        assert list(client.fetch("activities", old, old + timedelta(minutes=5), on_expired_window="warn")) == []
    assert "keeps about 30 days of activities" in caplog.text


def test_only_services_with_a_documented_retention_are_limited(client: MdcaClient) -> None:
    old = NOW - timedelta(days=400)
    client._transport = Pages({"data": [], "hasNext": False}, {"data": [], "hasNext": False})  # type: ignore[assignment]
    assert list(client.fetch("alerts", old, old + timedelta(minutes=5))) == []
