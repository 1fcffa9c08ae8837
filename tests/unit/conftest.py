"""The unit tier is pure: no database (not even a SQLite file), no network (not even
loopback), no subprocess. Each of those fails here at once, naming the tier a test that
needs it belongs in, so the tier stays fast (under 10 s) and honest."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import subprocess

import psycopg
import pytest

_MOVE = "unit tests are pure; a test that needs {} belongs in tests/integration (or tests/e2e)"


def _refuse(what: str):
    def refused(*_args, **_kwargs):
        raise AssertionError(_MOVE.format(what))

    return refused


@pytest.fixture(autouse=True)
def pure(monkeypatch):
    for name in ("bind", "connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, _refuse("the network"))
    monkeypatch.setattr(sqlite3, "connect", _refuse("a SQLite database"))
    monkeypatch.setattr(psycopg.Connection, "connect", _refuse("PostgreSQL"))
    monkeypatch.setattr(psycopg.AsyncConnection, "connect", _refuse("PostgreSQL"))
    monkeypatch.setattr(subprocess, "Popen", _refuse("a process"))
    monkeypatch.setattr(asyncio, "create_subprocess_exec", _refuse("a process"))
    monkeypatch.setattr(asyncio, "create_subprocess_shell", _refuse("a process"))
