"""The store's named SQL and its SQLite driver, without a database."""

from __future__ import annotations

import asyncio
import re
import tomllib
from pathlib import Path

import pytest

from bot.store.migrate import POSTGRES, SQLITE
from bot.store.sql import DIALECTS, queries
from bot.store.sqlite import drive


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_fragment_is_filled_in(dialect):
    for name, text in queries(dialect).items():
        assert not re.search(r"\{\w+(:[\w.]+)?\}", text), name
        assert "$1" not in text and "$2" not in text, name


def test_both_dialects_have_the_same_statements_but_postgresql_s_lock_notify_and_one_statement_lease_and_completion():
    # complete_job and lease_take_all do in one round trip what several shared statements do.
    only_postgres = {"advisory_lock", "notify", "complete_job", "lease_take_all"}
    assert set(queries("postgres")) - set(queries("sqlite")) == only_postgres


def test_postgres_placeholders_are_psycopg_ones_and_casts_are_left_alone():
    pg = queries("postgres")
    assert not re.search(r"(?<![:\w]):\w", pg["lease_pick"])
    assert "%(only)s" in pg["lease_pick"] and ":only" in queries("sqlite")["lease_pick"]
    assert "||" in pg["free_old_key"] and "':'" in pg["free_old_key"]  # a literal colon is no placeholder


ROOT = Path(__file__).resolve().parents[2]


def test_both_databases_know_the_same_migrations_in_the_same_order():
    assert SQLITE.names == POSTGRES.names == sorted(SQLITE.names)
    # Every release's migration, by name: one missing (a file not shipped) fails here.
    assert [name[:4] for name in SQLITE.names] == [f"{n:04d}" for n in range(1, 21)]
    assert all(m.statements for m in SQLITE._migrations + POSTGRES._migrations)


def test_a_sqlite_operation_runs_to_its_end_in_one_step():
    async def op() -> int:
        async def inner() -> int:
            return 2

        return 1 + await inner()

    assert drive(op()) == 3


def test_a_sqlite_operation_that_suspends_is_refused():
    async def op() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="suspended"):
        drive(op())


def test_every_sql_file_ships_with_the_package():
    """setuptools installs only the package data pyproject names (globs relative to bot/):
    an .sql file left out works from a checkout and fails in every installed copy."""
    package = ROOT / "bot"
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["bot"]
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    sql_files = set(package.rglob("*.sql"))
    assert sql_files and sql_files <= shipped, sorted(str(p.relative_to(package)) for p in sql_files - shipped)
