"""Calls a test forbids: each one is recorded and fails the call, so a test can assert that none was made.

Used where "touches nothing" is the behaviour under test (DAG parsing, a deferring fetch): the code under test may
swallow the AssertionError a forbidden call raises, so the test asserts on :attr:`ForbiddenCalls.touched` as well.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest


class ForbiddenCalls:
    """Replaces attributes with functions that record their name in :attr:`touched` and raise AssertionError."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, context: str) -> None:
        """``context`` says who must not call, in the failure: "DAG parsing", "a deferring fetch"."""
        self.touched: list[str] = []
        self._monkeypatch = monkeypatch
        self._context = context

    def forbid(self, owner: Any, attribute: str, name: str) -> None:
        """Forbid ``owner.attribute``; ``name`` is what :attr:`touched` and the failure call it."""
        self._monkeypatch.setattr(owner, attribute, self._recorder(name))

    def forbid_network(self) -> None:
        """Forbid opening any connection: ``socket.socket.connect`` and ``socket.create_connection``."""
        self.forbid(socket.socket, "connect", "socket.connect")
        self.forbid(socket, "create_connection", "socket.create_connection")

    def _recorder(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            self.touched.append(name)
            raise AssertionError(f"{self._context} must not use {name}")

        return record
