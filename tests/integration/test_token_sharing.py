"""One Entra ID token for the fetch tasks of a machine, through the token agent, against the emulated Entra ID.

Each client here stands for one fetch task (a process of its own in Airflow): what the second one may take from the
first, what it may not, and that a token the API refuses is never handed out again.
"""

from __future__ import annotations

import pytest

from airflow_provider_mdca.errors import SetupError
from mdca_emulator import Segment, TimeSeriesConfig

from .test_client_windows import END_MS, START_MS, fetch_ids


def alerts(count: int = 50) -> TimeSeriesConfig:
    return TimeSeriesConfig(segments=[Segment(START_MS, END_MS, count, (1,))])


def test_the_next_task_takes_the_token_the_first_one_got(emulator, make_tenant, make_client):
    tenant = make_tenant(alerts=alerts())
    first, second, third = (make_client(tenant) for _ in range(3))
    for client in (first, second, third):
        assert len(fetch_ids(client, "alerts")) == 50
    assert emulator.stats(tenant.tenant_id)["tokens_issued"] == 1
    assert (first.entra_auth.tokens_acquired, second.entra_auth.tokens_shared, third.entra_auth.tokens_shared) == (
        1,
        1,
        1,
    )


def test_a_connection_that_shares_nothing_asks_entra_id_in_every_task(emulator, make_tenant, make_client):
    tenant = make_tenant(alerts=alerts())
    for _ in range(3):
        assert len(fetch_ids(make_client(tenant, share_token=False), "alerts")) == 50
    assert emulator.stats(tenant.tenant_id)["tokens_issued"] == 3


def test_another_secret_never_gets_the_token(emulator, make_tenant, make_client):
    tenant = make_tenant(alerts=alerts())
    fetch_ids(make_client(tenant), "alerts")
    stranger = make_client(tenant, client_secret="not-the-secret")
    with pytest.raises(SetupError) as info:  # Entra ID's verdict on its secret, not the agent's token
        stranger.entra_auth.access_token()
    assert info.value.code == 100
    assert stranger.entra_auth.tokens_shared == 0


def test_a_token_the_api_refuses_is_replaced_for_every_task(emulator, make_tenant, make_client):
    # Every token is revoked after 3 requests, in the middle of a task's paging: the task that meets the 401 gets a
    # new token from Entra ID (one per refusal), and the next task takes that one, never the revoked one.
    tenant = make_tenant(alerts=alerts(300), revoke_tokens_after=3)
    first, second, third = (make_client(tenant) for _ in range(3))
    assert len(fetch_ids(first, "alerts", page_size=100)) == 300
    assert len(fetch_ids(second, "alerts", page_size=100)) == 300
    assert second.entra_auth.tokens_shared == 1  # it started on the first task's token
    stats = emulator.stats(tenant.tenant_id)
    assert stats["4xx"] >= 1
    assert stats["tokens_issued"] == 1 + stats["4xx"]  # one new token per refusal, for every task
    assert third.entra_auth.access_token() == second.entra_auth.access_token()
    assert third.entra_auth.tokens_acquired == 0
