"""Group commit for the SQLite store: the operations waiting for its one database thread run
together, the writes in one transaction with a savepoint each.

Each hop to the database thread, and each commit, costs far more than the statements of a
typical operation (a lease, a completion). So while the thread is busy, operations queue up;
the next turn of the thread takes all of them (up to MAX_GROUP): every write in one
`BEGIN IMMEDIATE ... COMMIT`, each inside its own SAVEPOINT, then the reads. An operation that
raises is rolled back to its savepoint alone, and its caller gets the error; the others are
unaffected. No caller hears "done" before the commit that holds its work: if the commit fails
(a full disk), every write of the group fails with it, and nothing of it was written.

Operations are still serialised (one thread, one connection): each one sees everything the
operations before it wrote, exactly as when each had its own transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from bot.store.ports import StoreUnavailable

# Enough to gather every slot of a busy worker and the dispatcher, few enough that one turn
# keeps the write lock briefly.
MAX_GROUP = 64

Op = Callable[[Any], Coroutine[Any, Any, Any]]


@dataclass
class _Pending:
    op: Op
    write: bool
    future: asyncio.Future[Any]
    ok: bool = False
    value: Any = None


def unavailable(exc: BaseException) -> BaseException:
    """What a caller sees of an error from the database: an outage (locked past the busy timeout,
    disk full, not a database) as StoreUnavailable; a bug in our SQL or code as itself."""
    if isinstance(exc, (sqlite3.DatabaseError, OSError)) and not isinstance(exc, sqlite3.IntegrityError):
        wrapped = StoreUnavailable(f"sqlite: {exc}")
        wrapped.__cause__ = exc
        return wrapped
    return exc


class GroupCommit:
    """Runs operations in the database thread (`executor`, one worker) on `conn()`, in groups.
    `run(op, conn, write)` steps an operation to its end on the connection; `begin(conn)` opens
    a group's write transaction (BEGIN IMMEDIATE, after whatever checks the store makes)."""

    def __init__(
        self,
        executor: Executor,
        conn: Callable[[], sqlite3.Connection],
        run: Callable[[Op, sqlite3.Connection, bool], Any],
        begin: Callable[[sqlite3.Connection], None],
    ):
        self._executor = executor
        self._begin = begin
        self._conn = conn
        self._run = run
        self._queue: list[_Pending] = []
        self._lock = threading.Lock()
        self._scheduled = False

    async def submit(self, op: Op, write: bool) -> Any:
        loop = asyncio.get_running_loop()
        pending = _Pending(op, write, loop.create_future())
        with self._lock:
            self._queue.append(pending)
            start = not self._scheduled
            self._scheduled = True
        if start:
            try:
                self._executor.submit(self._turn, loop)
            except RuntimeError:  # the thread is gone: the store was closed meanwhile
                raise StoreUnavailable("store is closed") from None
        return await pending.future

    def _turn(self, loop: asyncio.AbstractEventLoop) -> None:
        """One turn of the database thread: the queued operations (up to MAX_GROUP), then the
        next turn is queued behind whatever else waits for the thread (opening, closing)."""
        with self._lock:
            group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
        try:
            self._run_writes([p for p in group if p.write])
            for pending in group:
                if not pending.write:
                    self._run_one(pending, self._conn())
        except BaseException as exc:  # noqa: BLE001 - whatever it is, every caller must hear of it
            for pending in group:
                if not pending.ok and pending.value is None:
                    pending.value = unavailable(exc)
        finally:
            _settle_soon(loop, group)
            with self._lock:
                again = self._scheduled = bool(self._queue)
            if again:
                try:
                    self._executor.submit(self._turn, loop)
                except RuntimeError:  # close() shut the thread down meanwhile: no more turns
                    with self._lock:
                        left, self._queue, self._scheduled = self._queue, [], False
                    for pending in left:
                        pending.value = StoreUnavailable("store is closed")
                    _settle_soon(loop, left)

    def _run_one(self, pending: _Pending, conn: sqlite3.Connection) -> None:
        try:
            pending.value, pending.ok = self._run(pending.op, conn, pending.write), True
        except BaseException as exc:  # noqa: BLE001 - handed to its caller
            pending.value = unavailable(exc)

    def _run_writes(self, writes: list[_Pending]) -> None:
        if not writes:
            return
        conn = self._conn()
        try:
            # Inside the try: a write lock not had within the busy timeout fails the writes alone.
            self._begin(conn)
            for pending in writes:
                conn.execute("SAVEPOINT op")
                self._run_one(pending, conn)
                if not conn.in_transaction:
                    # SQLite rolled the whole transaction back (a full disk, an I/O error):
                    # the writes before this one are gone too.
                    raise pending.value if not pending.ok else StoreUnavailable("sqlite: transaction rolled back")
                if not pending.ok:
                    conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
            conn.commit()
        except BaseException as exc:
            if conn.in_transaction:
                conn.rollback()
            failure = unavailable(exc)
            for pending in writes:
                if pending.ok or pending.value is None:
                    pending.ok, pending.value = False, failure
            raise_if_fatal(exc)


def raise_if_fatal(exc: BaseException) -> None:
    if not isinstance(exc, Exception):
        raise exc


def _settle_soon(loop: asyncio.AbstractEventLoop, group: list[_Pending]) -> None:
    try:
        loop.call_soon_threadsafe(_settle, group)
    except RuntimeError:  # the loop is closed: nobody waits for these any more
        pass


def _settle(group: list[_Pending]) -> None:
    for pending in group:
        if pending.future.done():  # its caller was cancelled; the work stands (or not) regardless
            continue
        if pending.ok:
            pending.future.set_result(pending.value)
        else:
            pending.future.set_exception(pending.value)
