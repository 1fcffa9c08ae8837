"""The store's named SQL and its SQLite driver, without a database."""

from __future__ import annotations

import asyncio
import re

import pytest

from bot.store.migrate import POSTGRES, SQLITE
from bot.store.sql import DIALECTS, queries
from bot.store.sqlite import drive


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_fragment_is_filled_in(dialect):
    for name, text in queries(dialect).items():
        assert not re.search(r"\{\w+(:[\w.]+)?\}", text), name
        assert "$1" not in text and "$2" not in text, name


def test_both_dialects_have_the_same_statements_but_postgresql_s_lock_and_notify():
    assert set(queries("postgres")) - set(queries("sqlite")) == {"advisory_lock", "notify"}


def test_postgres_placeholders_are_psycopg_ones_and_casts_are_left_alone():
    pg = queries("postgres")
    assert not re.search(r"(?<![:\w]):\w", pg["lease_pick"])
    assert "%(only)s" in pg["lease_pick"] and ":only" in queries("sqlite")["lease_pick"]
    assert "||" in pg["free_old_key"] and "':'" in pg["free_old_key"]  # a literal colon is no placeholder


def test_both_databases_know_the_same_migrations_in_the_same_order():
    assert SQLITE.names == POSTGRES.names == sorted(SQLITE.names)
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
