"""The Entra ID token agent: tokens shared in memory, only with this user and holders of the secret; never a failure."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_mdca.token_agent import (
    EXPIRY_MARGIN,
    AgentUnavailable,
    TokenAgent,
    TokenAgentClient,
    _exchange,
    private_dir,
    token_key,
)
from tests.harness.token_agents import agent_pids, stop_agents


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # A Unix socket's path is short (108 bytes): pytest's tmp_path may be too long.
    path = Path(tempfile.mkdtemp(prefix="ta-"))
    yield path
    stop_agents(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def agent(short_dir: Path) -> TokenAgent:
    served = TokenAgent(short_dir, idle_exit=30)
    thread = threading.Thread(target=served.serve, daemon=True)
    thread.start()
    # Until it answers, not until its socket exists: the socket file appears at bind, before the agent listens, and a
    # client without start= gets no answer in between (CI, under load).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            _exchange(short_dir / "agent.sock", {"op": "ping"})
            break
        except OSError:
            time.sleep(0.01)
    return served


def test_a_token_is_filed_under_a_name_only_a_holder_of_the_secret_can_compute():
    key = token_key("https://login/t", "client", "secret", "scope/.default")
    assert key == token_key("https://login/t", "client", "secret", "scope/.default")
    assert key != token_key("https://login/t", "client", "other secret", "scope/.default")
    assert key != token_key("https://login/u", "client", "secret", "scope/.default")
    assert "secret" not in key


def test_a_filed_token_is_handed_to_the_next_task_until_its_last_five_minutes(agent: TokenAgent, short_dir: Path):
    first, second = TokenAgentClient(short_dir, start=False), TokenAgentClient(short_dir, start=False)
    expires = time.time() + 3600
    first.put("k1", "token-one", expires)
    assert second.get("k1") == ("token-one", expires)
    assert second.get("k2") is None  # another application's (or secret's) name
    second.put("k3", "nearly-expired", time.time() + EXPIRY_MARGIN - 1)
    assert first.get("k3") is None  # MSAL would renew it now: so does the task
    second.drop("k1")  # the API refused it
    assert first.get("k1") is None


def test_a_directory_other_users_can_enter_is_refused_and_the_task_asks_entra_itself(short_dir: Path):
    os.chmod(short_dir, 0o755)
    with pytest.raises(AgentUnavailable, match="closed to group and others"):
        private_dir(short_dir)
    client = TokenAgentClient(short_dir)
    client.put("k", "token", time.time() + 3600)  # no error, no agent
    assert client.get("k") is None
    assert agent_pids(short_dir) == []


def test_a_socket_path_too_long_for_unix_means_no_sharing_not_a_failure(short_dir: Path):
    deep = short_dir / ("d" * 120)
    assert TokenAgentClient(deep).get("k") is None
    assert agent_pids(deep) == []


def test_the_first_task_starts_the_agent_without_the_environments_secrets(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MY_CLIENT_SECRET", "do-not-inherit")
    monkeypatch.setenv("AIRFLOW_CONN_MDCA_DEFAULT", "mdca://id:secret@host")
    client = TokenAgentClient(short_dir)
    client.put("k", "token", time.time() + 3600)  # starts the agent, then files the token
    assert TokenAgentClient(short_dir, start=False).get("k") is not None
    [pid] = agent_pids(short_dir)
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"do-not-inherit" not in environ and b"AIRFLOW_CONN_MDCA_DEFAULT" not in environ
    assert os.stat(short_dir / "agent.sock").st_mode & 0o077 == 0


def test_a_dead_agents_socket_is_replaced_by_a_new_agent(short_dir: Path):
    TokenAgentClient(short_dir).put("k", "token", time.time() + 3600)
    stop_agents(short_dir)
    short_dir.mkdir(mode=0o700)
    (short_dir / "agent.sock").touch()  # what a killed agent leaves behind (a stale file)
    client = TokenAgentClient(short_dir)
    assert client.get("k") is None  # the tokens died with it; a new agent answers
    client.put("k", "token-2", time.time() + 3600)
    assert client.get("k") is not None
    assert len(agent_pids(short_dir)) == 1


def test_an_idle_agent_exits_and_removes_its_socket(short_dir: Path):
    served = TokenAgent(short_dir, idle_exit=0.3)
    assert served.serve() == 0
    assert not (short_dir / "agent.sock").exists()
