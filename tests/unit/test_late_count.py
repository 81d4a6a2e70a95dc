"""What counts as a late record: an event time before the window's start, in either form MDCA writes times."""

from __future__ import annotations

import pytest

from airflow_provider_mdca.client.mdca import _happened_before

START_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z


@pytest.mark.parametrize(
    ("moment", "late"),
    [
        (START_MS - 1, True),
        (START_MS, False),
        (float(START_MS - 0.5), True),
        ("2025-11-24T15:59:59Z", True),
        ("2025-11-24T16:00:00.000Z", False),
        ("2025-11-24T15:59:59", True),  # no offset: UTC, as MDCA's ISO times are
        ("2025-11-24T17:59:59+02:00", True),
        ("yesterday", False),  # not a time: not counted, never an error
        (None, False),
        (True, False),
    ],
)
def test_a_record_is_late_when_it_happened_before_its_window(moment, late):
    assert _happened_before(moment, START_MS) is late
