"""deploy/new_env.py: one command turns .env.example into a private .env that Compose starts with.

It runs on the Docker host with whatever Python is there, so the tests run it without the project's packages
(``python -I -S``: no site-packages at all).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from deploy import new_env
from tests.deploy.support import COMPOSE, ENV_EXAMPLE, NEW_ENV, parse_env_file, variables

CONNECTIONS = ("AIRFLOW_CONN_MDCA_DEFAULT", "AIRFLOW_CONN_DEVO_DEFAULT")


def run(output: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "-S", str(NEW_ENV), "--output", str(output), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def required_variables() -> set[str]:
    return {name for name, op in variables(COMPOSE.read_text(encoding="utf-8")).items() if op == ":?"}


def test_it_writes_a_private_env_with_every_required_secret(tmp_path):
    output = tmp_path / ".env"
    result = run(output)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"], "no temporary file left behind"
    env = parse_env_file(output.read_text(encoding="utf-8"))
    assert required_variables() <= {key for key, value in env.items() if value}
    # Airflow decrypts connections with this key: it must be a Fernet key, not just any random text.
    fernet = Fernet(env["AIRFLOW__CORE__FERNET_KEY"].encode())
    assert fernet.decrypt(fernet.encrypt(b"connection password")) == b"connection password"
    secrets = [env[key] for key in new_env.GENERATORS]
    assert len(set(secrets)) == len(secrets)
    assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 32 and len(env["AIRFLOW__API__SECRET_KEY"]) >= 32
    # The database password goes into connection URLs unescaped.
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,}", env["POSTGRES_PASSWORD"])


def test_everything_but_the_secrets_is_the_example_as_it_is(tmp_path):
    output = tmp_path / ".env"
    assert run(output).returncode == 0
    example = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    written = output.read_text(encoding="utf-8").splitlines()
    assert len(written) == len(example)
    changed = {a.partition("=")[0] for a, b in zip(written, example, strict=True) if a != b}
    assert changed == set(new_env.GENERATORS)
    env, placeholders = parse_env_file("\n".join(written)), parse_env_file("\n".join(example))
    for key in CONNECTIONS:
        assert env[key] == placeholders[key] and "<client secret>" in env["AIRFLOW_CONN_MDCA_DEFAULT"]


def test_each_run_makes_new_secrets(tmp_path):
    assert run(tmp_path / "a.env").returncode == 0
    assert run(tmp_path / "b.env").returncode == 0
    a = parse_env_file((tmp_path / "a.env").read_text(encoding="utf-8"))
    b = parse_env_file((tmp_path / "b.env").read_text(encoding="utf-8"))
    for key in new_env.GENERATORS:
        assert a[key] != b[key], key


def test_it_never_overwrites_an_env_without_force(tmp_path):
    output = tmp_path / ".env"
    assert run(output).returncode == 0
    before = output.read_bytes()
    refused = run(output)
    assert refused.returncode == 1
    assert "--force" in refused.stdout
    assert output.read_bytes() == before, "the fernet key that encrypts the connections must survive"
    forced = run(output, "--force")
    assert forced.returncode == 0
    assert output.read_bytes() != before
    assert stat.S_IMODE(output.stat().st_mode) == 0o600


def test_a_forced_rewrite_of_a_readable_file_makes_it_private(tmp_path):
    output = tmp_path / ".env"
    output.write_text("AIRFLOW__CORE__FERNET_KEY=old\n", encoding="utf-8")
    os.chmod(output, 0o644)
    assert run(output, "--force").returncode == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o600


@pytest.mark.parametrize("line", ["AIRFLOW_ADMIN_USER=admin", "# AIRFLOW__API__SECRET_KEY="])
def test_fill_leaves_values_and_comments_alone(line):
    assert new_env.fill(line) == line + "\n"
