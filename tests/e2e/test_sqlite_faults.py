"""`python -m bot run` on a SQLite file it cannot use stops at start-up with one line: exit 4
when the operator must fix something (a read-only file or directory), exit 5 when waiting
will do (another process holds the write lock past the busy timeout)."""

from __future__ import annotations

import asyncio
import functools

from bot import bootstrap, cli
from bot.store.sqlite import SQLiteStore
from tests.e2e.test_cli import assert_one_error_line, cli_env, run_cli
from tests.support.sqlite_faults import made, read_only, write_locked


def env(tmp_path) -> dict[str, str]:
    # A web secret, so that start-up's only line on stderr is the error.
    return cli_env(None, tmp_path) | {"IMAGINE_WEB_SECRET": "s" * 32}


async def test_run_on_a_read_only_database_file_exits_4_with_one_line(tmp_path):
    db = tmp_path / "imagine.db"
    await made(db)
    with read_only(db):
        run = await run_cli(env(tmp_path), tmp_path, "run")
    assert run.code == cli.EXIT_CONFIG
    line = assert_one_error_line(run)
    assert str(db) in line and "read-only" in line


async def test_run_with_the_database_in_a_read_only_directory_exits_4_and_creates_nothing(tmp_path):
    with read_only(tmp_path):
        run = await run_cli(env(tmp_path), tmp_path, "run")
    assert run.code == cli.EXIT_CONFIG
    assert "read-only directory" in assert_one_error_line(run)
    assert not (tmp_path / "imagine.db").exists()


def test_run_on_a_database_locked_past_the_busy_timeout_exits_5(tmp_path, monkeypatch, capsys):
    # In process, so the busy timeout can be short: the default waits 30 s.
    db = tmp_path / "imagine.db"
    for name, value in env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bootstrap, "SQLiteStore", functools.partial(SQLiteStore, busy_timeout=0.3))
    asyncio.run(made(db))
    with write_locked(db):
        code = cli.main(["run"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_TRY_LATER
    assert "database is unavailable" in err and "locked" in err and "Traceback" not in err
