"""One emulator per test session (per xdist worker); a fresh tenant per test, so tests never share state."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mdca_emulator import EmulatorServer, TenantConfig
from tests.emulator.support import Tenant, new_session


@pytest.fixture(scope="session")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    with EmulatorServer(tmp_path_factory.mktemp("emulator")) as server:
        yield server


@pytest.fixture
def make_tenant(emu: EmulatorServer) -> Iterator[Callable[..., Tenant]]:
    """Factory: ``make_tenant(activities=..., token_fault=...)``; throttling is off unless asked for."""
    made: list[Tenant] = []

    def make(**knobs: Any) -> Tenant:
        knobs.setdefault("requests_per_minute", None)
        # with_changes takes Python objects and their JSON forms alike (e.g. a service as a dict).
        config = TenantConfig(tenant_id=f"t-{uuid.uuid4().hex[:12]}").with_changes(knobs)
        emu.add_tenant(config)
        tenant = Tenant(emu, config, new_session(emu))
        made.append(tenant)
        return tenant

    yield make
    for tenant in made:
        tenant.session.close()
        emu.remove_tenant(tenant.id)


@pytest.fixture
def session(emu: EmulatorServer) -> Iterator[requests.Session]:
    with new_session(emu) as client:
        yield client


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"
