"""SQLite: the single-process default, and safe across processes too.

One connection per store, used from one dedicated thread so the event loop
never blocks on disk or on another process's write lock. Every write runs in
`BEGIN IMMEDIATE`: the write lock is taken up front, so two workers (threads
or processes) can never both read the same queued job and lease it, and
SQLite's busy timeout queues writers instead of failing them. That one lock is
also what PostgreSQL's row and advisory locks give there: here they are no-ops.

An operation (an `async def` over a Tx, bot/store/tx.py) runs whole inside the
thread: `drive` steps its coroutine to the end, which it reaches at once since
nothing in a SQLiteTx suspends. One thread hop per operation at most, however
many statements it runs: operations that wait for the thread together run in one
turn, their writes in one transaction with a savepoint each (bot/store/group_commit.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

from sqlite_utils import Database

from bot.store.group_commit import GroupCommit
from bot.store.manager import StoreManager, write_probe
from bot.store.migrate import SQLITE, prepare_sqlite
from bot.store.ports import StoreMisconfigured, StoreUnavailable
from bot.store.sql import numbered, queries
from bot.store.tx import JSON_COLUMNS, Json, Row, Tx

T = TypeVar("T")
# SQLite's primary result codes that no waiting will cure: the file or its directory is
# not writable, or cannot be opened at all (no such directory).
_PERM, _READONLY, _CANTOPEN = 3, 8, 14
# How long /healthz's write check waits for another process's write lock: a probe must answer
# well within a load balancer's timeout, where a request may wait the whole busy timeout.
HEALTH_LOCK_WAIT = 2.0
QUERIES = {name: numbered(text) for name, text in queries("sqlite").items()}


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to its end, synchronously."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a SQLite store operation suspended: only a SQLiteTx may be awaited in it")


def _execute(conn: sqlite3.Connection, query: str, params: dict[str, Any]) -> sqlite3.Cursor:
    text, names = QUERIES[query]
    values = [params[name] for name in names]
    for i, value in enumerate(values):
        # Json as TEXT, and a list (an {in:...} fragment's) as the JSON array json_each reads.
        if type(value) is Json:
            values[i] = json.dumps(value.value)
        elif type(value) is list:
            values[i] = json.dumps(value)
    return conn.execute(text, values)


class SQLiteTx:
    """A Tx on the store's connection, in the calling (database) thread; it never suspends."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def _rows(self, query: str, params: dict[str, Any]) -> list[Row]:
        cur = _execute(self._conn, query, params)
        columns = [d[0] for d in cur.description]
        rows = [dict(zip(columns, values, strict=True)) for values in cur.fetchall()]
        for column in JSON_COLUMNS.intersection(columns):
            for row in rows:
                if row[column] is not None:
                    row[column] = json.loads(row[column])
        return rows

    async def all(self, query: str, /, **params: Any) -> list[Row]:
        return self._rows(query, params)

    async def one(self, query: str, /, **params: Any) -> Row | None:
        rows = self._rows(query, params)
        return rows[0] if rows else None

    async def value(self, query: str, /, **params: Any) -> Any:
        # The hot path (ids, counts): no dict for the row.
        cur = _execute(self._conn, query, params)
        rows = cur.fetchall()
        if not rows or rows[0][0] is None:
            return None
        return json.loads(rows[0][0]) if cur.description[0][0] in JSON_COLUMNS else rows[0][0]

    async def run(self, query: str, /, **params: Any) -> int:
        cur = _execute(self._conn, query, params)
        cur.fetchall()  # a RETURNING statement is done only once read
        return cur.rowcount

    async def script(self, statement: str) -> None:
        self._conn.execute(statement)

    async def lock(self, key: str) -> None:
        """The write lock (BEGIN IMMEDIATE) already serialises every writer."""

    async def notify(self, channel: str) -> None:
        """No notifications: other processes' work is found by polling."""


class SQLiteConnector:
    def __init__(self, path: str, busy_timeout: float):
        self.path = path
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._group = GroupCommit(self._executor, lambda: self.conn, lambda *run: self._step(*run), self._begin_write)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreUnavailable("store is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args))
        except sqlite3.IntegrityError:
            raise  # a bug in our SQL, not an outage
        except (sqlite3.DatabaseError, OSError) as exc:
            # Locked past the busy timeout, disk full (SQLite's "database or disk is full",
            # or ENOSPC from the file system), not a database file: the caller must treat
            # the store as down (fail closed) and try again later.
            raise StoreUnavailable(f"sqlite: {exc}") from exc

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("store is not open")
        return self._conn

    def _begin_write(self, conn: sqlite3.Connection) -> None:
        if (problem := self._unwritable()) is not None:
            # Made read-only while we run (a chmod, an immutable flag): SQLite would write on
            # through its open handles into the WAL, never checkpoint it, and a restart could
            # not open the file. Down until it is writable again, as for a lock or a full disk.
            raise StoreUnavailable(f"sqlite: {problem}; writes are refused until it is writable again")
        conn.execute("BEGIN IMMEDIATE")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        self._begin_write(conn)
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    def _step(self, op: Callable[[Tx], Coroutine[Any, Any, T]], conn: sqlite3.Connection, write: bool) -> T:
        """Run `op` on `conn`, in whatever transaction the caller opened (none for a read:
        each statement then reads on its own, taking no lock)."""
        return drive(op(SQLiteTx(conn)))

    def _transact(self, op: Callable[[Tx], Coroutine[Any, Any, T]], write: bool) -> T:
        if not write:
            return self._step(op, self.conn, False)
        with self._write() as conn:
            return self._step(op, conn, True)

    async def transact(self, op: Callable[[Tx], Awaitable[T]], *, write: bool) -> T:
        if self._closed:
            raise StoreUnavailable("store is closed")
        result: T = await self._group.submit(op, write)  # type: ignore[arg-type]
        return result

    def _write_waiting_at_most(self, op: Callable[[Tx], Coroutine[Any, Any, T]], wait: float) -> T:
        conn = self.conn
        conn.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
        try:
            return self._transact(op, True)
        finally:
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")

    async def write_briefly(self, op: Callable[[Tx], Coroutine[Any, Any, T]], wait: float) -> T:
        """`op` in a write transaction that waits at most `wait` seconds for the write lock."""
        return await self._run(self._write_waiting_at_most, op, min(wait, self._busy_timeout))

    def _check_writable(self) -> None:
        """A file or directory we may not write is the operator's to fix (exit 4), not an
        outage to wait out: SQLite would open a read-only file read-only and fail only at the
        first write, and it needs the directory too, for its -wal and -shm files."""
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise StoreMisconfigured(f"the SQLite database {self.path}: its directory {folder} does not exist")
        if (problem := self._unwritable()) is not None:
            raise StoreMisconfigured(problem)

    def _unwritable(self) -> str | None:
        """Why the bot may not write the database file or its directory, or None. Two access()
        calls: a few microseconds beside a write transaction's commit."""
        if not os.access(self.path, os.W_OK) and os.path.exists(self.path):
            return f"the SQLite database {self.path} is read-only; make it writable by the bot"
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.access(folder, os.W_OK):
            return (
                f"the SQLite database {self.path} is in a read-only directory ({folder}); SQLite writes "
                "its -wal and -shm files beside the database, so the directory must be writable"
            )
        return None

    def _open_sync(self) -> None:
        self._check_writable()
        try:
            self._open_connection()
        except sqlite3.DatabaseError as exc:
            if exc.sqlite_errorcode is not None and exc.sqlite_errorcode & 0xFF in (_PERM, _READONLY, _CANTOPEN):
                raise StoreMisconfigured(f"the SQLite database {self.path} cannot be written: {exc}") from None
            raise

    def _open_connection(self) -> None:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            self._prepare(conn)
        except BaseException:
            self._conn = None  # a store that failed to open is not open: nothing runs on it
            conn.close()
            raise

    def _prepare(self, conn: sqlite3.Connection) -> None:
        # sqlite-utils for the database-level settings; statements go through the Tx below.
        self._retry_while_locked(Database(conn).enable_wal)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
        prepare_sqlite(conn)
        self._conn = conn
        # Several processes may open a new file at once: migrate under the write lock.
        with self._write():
            drive(SQLITE.run(SQLiteTx(conn)))

    def _retry_while_locked(self, fn: Callable[[], Any]) -> Any:
        # Switching a new file to WAL needs an exclusive lock, and SQLite
        # answers "locked" at once instead of waiting on the busy timeout
        # when other processes are opening the same file.
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    async def open(self) -> None:
        await self._run(self._open_sync)

    async def close(self) -> None:
        if self._closed:
            return
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._closed = True
        self._executor.shutdown(wait=True)

    async def wait(self, channel: str, timeout: float) -> None:
        # No notifications in SQLite: other processes' jobs are found by polling,
        # this process's own by the worker's wake-up.
        await asyncio.sleep(timeout)

    async def applied_migrations(self) -> list[str]:
        return await self.transact(SQLITE.applied, write=False)


class SQLiteStore(StoreManager):
    def __init__(self, path: str, *, clock: Callable[[], float] = time.time, busy_timeout: float = 30.0):
        self._sqlite = SQLiteConnector(path, busy_timeout)
        super().__init__(self._sqlite, clock)
        self.path = self.database_file = path
        # For tests that reach into the file: run `fn` in the store's thread, or write in its lock.
        self._run = self._sqlite._run
        self._write = self._sqlite._write

    async def check_writable(self) -> None:
        await self._sqlite.write_briefly(write_probe, HEALTH_LOCK_WAIT)
