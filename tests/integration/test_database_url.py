"""A wrong DATABASE_URL is named as one and its password never shows: not in the error, not
in the log. A URL that can never work (a malformed password, a port that is not a number, a
database or user that does not exist) exits 4 at once, "fix the configuration"; only a server
that cannot be reached now is "try later" (5)."""

from __future__ import annotations

import logging
import time

import pytest

from bot import cli
from bot.bootstrap import open_store
from bot.store.ports import StoreMisconfigured, StoreUnavailable

PASSWORD = "s3cr%zzET"  # percent-encoding gone wrong, as pasted from a password manager
HIDDEN = ("s3cr", "zzET", "hunter2")


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://bot:{PASSWORD}@127.0.0.1:5432/test",
        "postgresql://bot:hunter2@127.0.0.1:abc/test",
        "postgresql://postgres:hunter2@127.0.0.1:5432/no_such_database_here",
        "postgresql://no_such_role:hunter2@127.0.0.1:5432/test",
    ],
    ids=["bad-percent-encoding", "port-not-a-number", "no-such-database", "no-such-role"],
)
async def test_a_url_that_can_never_work_is_a_configuration_error_without_its_password(url, postgres_url, caplog):
    caplog.set_level(logging.DEBUG)
    store = open_store(url)
    started = time.monotonic()
    with pytest.raises(StoreMisconfigured) as refused:
        await store.open()
    assert time.monotonic() - started < 5  # no waiting out the pool's timeout
    assert "DATABASE_URL" in str(refused.value)
    for secret in HIDDEN:
        assert secret not in str(refused.value) and secret not in caplog.text


async def test_a_server_that_does_not_answer_is_unavailable_without_the_password(caplog):
    caplog.set_level(logging.DEBUG)
    store = open_store("postgresql://bot:hunter2@127.0.0.1:9/test")
    with pytest.raises(StoreUnavailable) as down:
        await store.open()
    assert not isinstance(down.value, StoreMisconfigured)
    assert "hunter2" not in str(down.value) and "hunter2" not in caplog.text


def test_the_cli_exits_4_for_a_url_that_can_never_work(monkeypatch, capsys, postgres_url):
    monkeypatch.setenv("DATABASE_URL", "postgresql://bot:hunter2@127.0.0.1:abc/test")
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    assert cli.main(["usage", "--team", "T1"]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "DATABASE_URL" in err and "hunter2" not in err and "Traceback" not in err
