"""Write ``.env`` for docker-compose.yaml: ``.env.example`` with every required secret filled with a fresh random value.

    python3 deploy/new_env.py            # writes .env beside docker-compose.yaml (mode 0600)
    python3 deploy/new_env.py --force    # replace an existing .env: its secrets are lost (the fernet key with them)

Standard library only, so it runs on the Docker host without the project's environment. The connections keep
their placeholders: set them before a production ``docker compose up`` (the demo profile does not need them).
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["GENERATORS", "fill", "main"]

ROOT = Path(__file__).resolve().parent.parent


def _fernet_key() -> str:
    # What cryptography's Fernet.generate_key() returns: 32 random bytes, URL-safe base64.
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def _token(n: int) -> Callable[[], str]:
    # URL-safe characters only: the PostgreSQL password goes into connection URLs unescaped.
    return lambda: secrets.token_urlsafe(n)


#: The secrets this script fills when ``.env.example`` leaves them empty.
GENERATORS: dict[str, Callable[[], str]] = {
    "AIRFLOW__CORE__FERNET_KEY": _fernet_key,
    "AIRFLOW__API_AUTH__JWT_SECRET": _token(48),
    "AIRFLOW__API__SECRET_KEY": _token(48),
    "POSTGRES_PASSWORD": _token(24),
    "AIRFLOW_ADMIN_PASSWORD": _token(18),
}


def fill(example: str) -> str:
    """``example`` with each ``KEY=`` line of :data:`GENERATORS` given a new value; everything else as it is."""
    lines = []
    for line in example.splitlines():
        key, sep, value = line.partition("=")
        if sep and not value.strip() and key.strip() in GENERATORS:
            line = f"{key.strip()}={GENERATORS[key.strip()]()}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the file; returns the exit status (1 when it exists and ``--force`` is not given)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", type=Path, default=ROOT / ".env.example", help="the template")
    parser.add_argument("--output", type=Path, default=ROOT / ".env", help="the file to write")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    args = parser.parse_args(argv)
    if args.output.exists() and not args.force:
        print(f"{args.output} exists: keeping it (its fernet key encrypts your connections); --force replaces it")
        return 1
    text = fill(args.example.read_text(encoding="utf-8"))
    tmp = args.output.with_name(f".{args.output.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, args.output)
    print(f"wrote {args.output} with fresh secrets; set the connections in it before a production start")
    return 0


if __name__ == "__main__":
    sys.exit(main())
