"""One migration runner over the migration files.

bot/store/migrations/NNNN_name.sql: ordered, named, one statement per `;` at a
line's end, written once for both databases with column types as fragments
({bigint}, {json_column}, ...: bot/store/sql/<dialect>.sql). A step the two
databases take differently (SQLite rebuilds a table where PostgreSQL alters it)
is a file of the same name in migrations/<dialect>/, which replaces the shared
one. Append new ones; never edit one that has shipped. Each
database keeps the record its earlier runner kept (SQLite: sqlite-utils'
_sqlite_migrations, set "imagine"; PostgreSQL: imagine_migrations), so a file
or schema made by an earlier release opens without re-applying anything.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection, sql

from bot.store.sql import expand
from bot.store.tx import Tx

HERE = Path(__file__).parent / "migrations"
_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)
# Advisory locks are database-wide; this key only has to differ from the team locks.
MIGRATION_LOCK = "imagine-migrations"


@dataclass(frozen=True)
class Migration:
    name: str
    statements: tuple[str, ...]


def _load(path: Path, dialect: str) -> Migration:
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("--"))
    statements = (expand(s, dialect).strip() for s in _STATEMENT_END.split(text))
    return Migration(path.stem, tuple(s for s in statements if s))  # a fragment may leave nothing to run


class Migrations:
    """A dialect's migrations, in order (`_migrations`, as sqlite-utils names its list)."""

    def __init__(self, dialect: str):
        self.dialect = dialect
        files = {p.name: p for p in HERE.glob("*.sql")} | {p.name: p for p in (HERE / dialect).glob("*.sql")}
        self._migrations = [_load(files[name], dialect) for name in sorted(files)]

    @property
    def names(self) -> list[str]:
        return [m.name for m in self._migrations]

    async def run(self, tx: Tx, *, stop_before: str | None = None, only: list[Migration] | None = None) -> None:
        """Apply what is not recorded yet (of `only`, when given; up to `stop_before`), in this transaction.
        Processes starting at once queue on the lock (SQLite: on the write lock the caller holds),
        so exactly one of them runs each migration and the others find it recorded."""
        await tx.lock(MIGRATION_LOCK)
        await tx.run("migrations_table")
        await tx.run("migrations_index")
        done = set(await self.applied(tx))
        for migration in self._migrations if only is None else only:
            if migration.name == stop_before:
                return
            if migration.name in done:
                continue
            for statement in migration.statements:
                await tx.script(statement)
            await tx.run("migration_record", name=migration.name, at=str(datetime.datetime.now(datetime.UTC)))

    async def applied(self, tx: Tx) -> list[str]:
        """Names of the migrations recorded, in the order they are declared."""
        recorded = {r["name"] for r in await tx.all("migrations_applied")}
        return [name for name in self.names if name in recorded]

    def apply(self, db: Any, *, stop_before: str | None = None) -> None:
        """SQLite only, synchronously, in one transaction: `db` a sqlite3 connection or a
        sqlite-utils Database (for tests that build a file as an older release left it)."""
        from bot.store.sqlite import SQLiteTx, drive

        conn: sqlite3.Connection = getattr(db, "conn", db)
        prepare_sqlite(conn)
        conn.execute("BEGIN IMMEDIATE")
        try:
            drive(self.run(SQLiteTx(conn), stop_before=stop_before))
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def prepare_sqlite(conn: sqlite3.Connection) -> None:
    # 0011 recomputes each image's digest from its bytes, never trusting the old row's.
    conn.create_function("sha256_hex", 1, lambda data: hashlib.sha256(data).hexdigest(), deterministic=True)


SQLITE = Migrations("sqlite")
POSTGRES = Migrations("postgres")
# The PostgreSQL list, for tests that build an older database.
MIGRATIONS = POSTGRES._migrations


async def migrate(conn: AsyncConnection[Any], schema: str | None, migrations: list[Migration] | None = None) -> None:
    """Bring a PostgreSQL database (or `schema`) up to date, in one transaction
    (`migrations`: only those, for tests that build an older database)."""
    from bot.store.postgres import PgTx

    async with conn.transaction():
        tx = PgTx(conn)
        await tx.lock(MIGRATION_LOCK)
        if schema is not None:
            await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        await POSTGRES.run(tx, only=migrations)
