"""Two fetch tasks back to back on a tenant's budget, for real: the second waits where the first left off.

The emulated tenant allows one request a minute (MDCA's 30, scaled so that the test waits one minute rather than
two): a client that starts right after another is answered 429, one that takes over the budget the other left in
staging is not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_mdca.errors import PullError
from airflow_provider_mdca.request_budget import SharedRequestBudget, tenant_key


def test_a_fetch_that_takes_over_the_budget_left_by_the_last_one_is_never_throttled(
    emulator, make_tenant, make_client, tmp_path: Path
):
    tenant = make_tenant(requests_per_minute=1)
    first = make_client(tenant, requests_per_minute=1)
    first.probe("alerts")
    budget = SharedRequestBudget(tmp_path, tenant_key(first.config.base_url, first.config.tenant_id))
    budget.save(first.limiter.hand_over())

    hasty = make_client(tenant, requests_per_minute=1, max_throttle_retries=0)
    with pytest.raises(PullError) as info:
        hasty.probe("alerts")
    assert info.value.status == 429
    throttled = emulator.stats(tenant.tenant_id)["throttled"]

    patient = make_client(tenant, requests_per_minute=1, max_throttle_retries=0)
    patient.limiter.take_over(budget.load())
    assert patient.probe("alerts") >= 0
    assert emulator.stats(tenant.tenant_id)["throttled"] == throttled, "the budget handed over was not kept"
    assert patient.limiter.waited_seconds > 55
