"""PostgreSQL: several processes (and hosts) sharing one queue and ledger.

The operations are the same as SQLite's (bot/store/queue.py and its neighbours);
what differs is here and in bot/store/sql/postgres.sql:

- Rows a statement takes are locked, and those another transaction holds are
  skipped (`FOR NO KEY UPDATE SKIP LOCKED`), so concurrent workers each get
  different rows and never wait on one another.
- Admission (budgets, quotas, hold) runs under a transaction-scoped advisory
  lock per team (Tx.lock), as does the budget re-check of a billed retry: every
  check-then-hold for one team happens in turn, in every process. Under READ
  COMMITTED each statement after the lock sees what the previous holder committed.
- Wake-ups: transactions that make a job runnable NOTIFY `imagine_jobs`, and
  those that queue a delivery NOTIFY `imagine_outbox`, after they commit and
  coalesced (one at a time per store, channels due meanwhile together). One
  LISTEN connection per store turns them into wait_for_jobs/wait_for_deliveries
  returning early; polling remains the fallback.
- A connection broken by a server restart is replaced by the pool before use.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import AsyncConnection, conninfo, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.money.admission import Charge
from bot.store.ledger import over_hold
from bot.store.manager import StoreManager
from bot.store.migrate import POSTGRES, migrate
from bot.store.ports import StoreMisconfigured, StoreUnavailable
from bot.store.sql import queries
from bot.store.tx import JOBS, OUTBOX, Json, Row, Tx
from bot.types import CheckedImage, JobState, NewDelivery

T = TypeVar("T")
U = TypeVar("U")
log = logging.getLogger(__name__)
Conn = AsyncConnection[dict[str, Any]]
QUERIES = queries("postgres")


class PgTx:
    """A Tx on one pooled connection (rows as dicts, JSONB decoded by psycopg)."""

    def __init__(self, conn: AsyncConnection[Any]):
        self._conn = conn
        self.channels: set[str] = set()  # to notify once this transaction commits

    async def _execute(self, query: str, params: dict[str, Any]) -> psycopg.AsyncCursor[Any]:
        params = {k: Jsonb(v.value) if isinstance(v, Json) else v for k, v in params.items()}
        return await self._conn.cursor(row_factory=dict_row).execute(QUERIES[query], params)

    async def all(self, query: str, /, **params: Any) -> list[Row]:
        return await (await self._execute(query, params)).fetchall()

    async def one(self, query: str, /, **params: Any) -> Row | None:
        return await (await self._execute(query, params)).fetchone()

    async def value(self, query: str, /, **params: Any) -> Any:
        row = await self.one(query, **params)
        return None if row is None else next(iter(row.values()))

    async def run(self, query: str, /, **params: Any) -> int:
        return (await self._execute(query, params)).rowcount

    async def script(self, statement: str) -> None:
        await self._conn.execute(statement)

    async def lock(self, key: str) -> None:
        await self._execute("advisory_lock", {"key": key})

    async def notify(self, channel: str) -> None:
        # Sent after the commit, coalesced (_Announcer): a NOTIFY inside the transaction would
        # serialise its commit with every other notifying one, in every process.
        self.channels.add(channel)


class PostgresConnector:
    def __init__(self, url: str, *, min_size: int, max_size: int, schema: str | None, timeout: float):
        self.url = url
        self._min_size = min_size
        self._max_size = max_size
        self._schema = schema
        self._timeout = timeout
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._listener = _Listener(url, (JOBS, OUTBOX))
        self._announcer = _Announcer(self._notify)
        self._closed = False
        SCRUB_POOL_LOGS.urls.add(url)

    async def open(self) -> None:
        if self._closed:
            raise StoreUnavailable("store is closed")
        await self._check_url()
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.url,
            min_size=self._min_size,
            max_size=self._max_size,
            timeout=self._timeout,
            open=False,
            name="imagine-store",
            kwargs={"row_factory": dict_row},
            configure=self._use_schema if self._schema else None,
            # No check on checkout: it costs a round trip per transaction. A connection found
            # broken in use (a server restart) is dropped and its transaction run again (transact).
        )
        try:
            with _unavailable_on_connection_errors():
                await pool.open(wait=True, timeout=self._timeout)
                async with pool.connection() as conn:
                    await migrate(conn, self._schema)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def _check_url(self) -> None:
        """Fail at once, with the password scrubbed, when DATABASE_URL can never work (the pool
        would retry it until its timeout and then call it "unavailable")."""
        try:
            conninfo.conninfo_to_dict(self.url)
            probe = await psycopg.AsyncConnection.connect(self.url, connect_timeout=max(1, int(self._timeout)))
        except psycopg.ProgrammingError:
            raise StoreMisconfigured(
                "DATABASE_URL is not a valid PostgreSQL URL; check its percent-encoding "
                "(a password with % / @ : must be percent-encoded)"
            ) from None
        except psycopg.OperationalError as exc:
            detail = self._scrub(str(exc)).strip()
            if any(sign in detail for sign in PERMANENT):
                raise StoreMisconfigured(f"DATABASE_URL cannot work: {detail}") from None
            raise StoreUnavailable(f"postgres: {detail}") from None
        await probe.close()

    def _scrub(self, text: str) -> str:
        return scrub(text, self.url)

    async def _use_schema(self, conn: Conn) -> None:
        assert self._schema is not None
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))
        await conn.commit()  # a configured connection must go back to the pool idle

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._announcer.close()
        await self._listener.close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def transact(self, op: Callable[[Tx], Awaitable[T]], *, write: bool) -> T:
        """`op` on a pooled connection in one transaction: committed at the end, rolled back on error."""
        committing = False

        async def run(conn: Conn) -> tuple[T, PgTx]:
            nonlocal committing
            committing = False
            # A read runs each statement on its own, as READ COMMITTED reads anyway: no BEGIN
            # and COMMIT round trips.
            if conn.autocommit == write:
                await conn.set_autocommit(not write)
            tx = PgTx(conn)
            result = await op(tx)
            committing = True  # the pool commits as the connection goes back
            return result, tx

        # Broken before COMMIT was sent: the server rolled it all back, so it is safe to run
        # again. A connection lost during COMMIT is not (did it commit?).
        (result, tx), _ = await self._on_a_live_connection(run, resendable=lambda: not committing)
        if tx.channels:
            self._announcer.post(tx.channels)
        return result

    async def statement(self, query: str, params: dict[str, Any]) -> tuple[Row | None, bool]:
        """One statement as its own transaction (no BEGIN, no COMMIT): one round trip; and
        whether it was sent again. A broken connection may have committed it before it broke,
        so only a statement that is safe to run twice may come here (complete_job is: a second
        run charges and delivers nothing more)."""

        async def run(conn: Conn) -> Row | None:
            if not conn.autocommit:
                await conn.set_autocommit(True)
            return await PgTx(conn).one(query, **params)

        return await self._on_a_live_connection(run, resendable=lambda: True)

    async def _on_a_live_connection(
        self, run: Callable[[Conn], Awaitable[U]], *, resendable: Callable[[], bool]
    ) -> tuple[U, bool]:
        """`run` on a pooled connection, and whether it was sent again: on another connection
        when this one turned out broken and `resendable()` says that is safe. Every idle
        connection may have died together (a server restart, and none is checked on checkout):
        one more try than the pool has connections reaches a new one."""
        if self._pool is None:
            raise StoreUnavailable("store is closed" if self._closed else "store is not open")
        for tries_left in range(self._max_size, -1, -1):
            conn = None
            with _unavailable_on_connection_errors():
                try:
                    async with self._pool.connection() as conn:
                        result = await run(conn)
                    return result, tries_left < self._max_size
                except psycopg.OperationalError:
                    if conn is not None and conn.broken and resendable() and tries_left:
                        continue
                    raise
        raise AssertionError("unreachable: the last try returns or raises")

    def announce(self, channels: set[str]) -> None:
        self._announcer.post(channels)

    async def _notify(self, channels: set[str]) -> None:
        if self._pool is None:
            return
        # One round trip: every channel due, in one statement outside any transaction.
        async with self._pool.connection() as conn:
            if not conn.autocommit:
                await conn.set_autocommit(True)
            await conn.execute(QUERIES["notify"], {"channels": sorted(channels)})

    async def wait(self, channel: str, timeout: float) -> None:
        await self._listener.wait(channel, timeout)

    async def applied_migrations(self) -> list[str]:
        return await self.transact(POSTGRES.applied, write=False)


class PostgresStore(StoreManager):
    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        min_size: int = 1,
        max_size: int = 10,
        schema: str | None = None,
        timeout: float = 10.0,
    ):
        """`schema` isolates the store in its own schema (created if missing);
        `timeout` is how long a call waits for a connection before the store
        reports itself unavailable."""
        self._pg = PostgresConnector(url, min_size=min_size, max_size=max_size, schema=schema, timeout=timeout)
        super().__init__(self._pg, clock)
        self.url = url
        self._schema = schema

    async def _take(self, tx: Tx, chosen: dict[int, str], until: float, now: float) -> list[Row]:
        # One round trip where QueueOperations._take makes three.
        workers = Json({str(job_id): worker for job_id, worker in chosen.items()})
        rows = await tx.all("lease_take_all", workers=workers, until=until, now=now, ids=list(chosen))
        if rows and rows[0]["started"]:
            await tx.notify(OUTBOX)
        return rows

    async def complete(
        self,
        job_id: int,
        worker_id: str,
        attempt: int,
        image: CheckedImage,
        result: dict[str, Any],
        delivery: NewDelivery,
        charge: Charge | None,
    ) -> int | None:
        """QueueOperations.complete in one round trip (the statement complete_job, which
        does the same writes): the worker's hot path, a dozen round trips otherwise."""
        usage = charge.usage if charge is not None else None
        row, sent_again = await self._pg.statement(
            "complete_job",
            {
                "id": job_id,
                "worker": worker_id,
                "attempt": attempt,
                "now": self._clock(),
                # Bytes addressed by their own digest, never the caller's (as _insert_image).
                "sha256": hashlib.sha256(image.data).hexdigest(),
                "data": image.data,
                "mime": image.mime,
                "width": image.width,
                "height": image.height,
                "size_bytes": len(image.data),
                "result": Json(result),
                "key": delivery.key,
                "kind": delivery.kind,
                "payload": Json(delivery.payload),
                "cost_micros": charge.cost_micros if charge is not None else None,
                "status": charge.status if charge is not None else None,
                "prompt_tokens": usage.prompt_tokens if usage else None,
                "output_tokens": usage.output_tokens if usage else None,
                "image_tokens": usage.image_tokens if usage else None,
            },
        )
        assert row is not None  # the statement always answers one row
        if row["image_id"] is None and sent_again:
            # Sent again after a connection broke: the first may have committed, the job is then
            # ours and succeeded already, not a lease lost (its delivery is queued: wake the outbox).
            done = await self.get_job(job_id)
            if (
                done is not None
                and done.state is JobState.SUCCEEDED
                and (done.worker_id, done.attempt)
                == (
                    worker_id,
                    attempt,
                )
            ):
                self._pg.announce({OUTBOX})
                return done.result_image_id
        if row["queued"]:
            self._pg.announce({OUTBOX})
        if row["held_micros"] is not None and row["charged_micros"] > row["held_micros"]:
            over_hold(job_id, row["charged_micros"], row["held_micros"])
        return cast(int | None, row["image_id"])


# How long a NOTIFY waits for others to go with it: a wake-up this much later, at most.
NOTIFY_WINDOW = 0.01


class _Announcer:
    """Sends each store's NOTIFYs after their transactions commit, coalesced: what is posted
    within `window` seconds of the first goes in one NOTIFY (a busy worker commits hundreds of
    times a second, and each NOTIFY is a round trip and a commit that the server serialises),
    one at a time, and the channels asked for meanwhile all go in the next. A notification is
    only a hint (waiters poll anyway), so one lost to an error or a crash costs a poll interval."""

    def __init__(self, send: Callable[[set[str]], Awaitable[None]], *, window: float = NOTIFY_WINDOW):
        self._send = send
        self._window = window
        self._due: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def post(self, channels: set[str]) -> None:
        self._due |= channels
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="imagine-store-notify")

    async def _drain(self) -> None:
        with suppress(TimeoutError):  # the window, cut short by close()
            await asyncio.wait_for(self._closing.wait(), self._window)
        while self._due:
            channels, self._due = self._due, set()
            try:
                await self._send(channels)
            except (psycopg.Error, StoreUnavailable) as exc:
                log.debug("store notify: not sent (%s); waiters poll meanwhile", exc)

    async def close(self) -> None:
        """Send what is due (briefly), so a store closed right after a submit still wakes others."""
        self._closing.set()
        if self._task is not None:
            with suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), 5)
            self._task.cancel()


class _Listener:
    """One LISTEN connection per store, turning NOTIFYs into per-channel events.

    A background task owns the connection. If it drops (or cannot connect),
    the task ends and the next wait() starts a new one; meanwhile waits just
    run to their timeout, so callers fall back to polling and never see an
    error.
    """

    def __init__(self, url: str, channels: tuple[str, ...]):
        self._url = url
        # Set by a notification and cleared by the wait it ends: one that
        # arrives while nobody waits still cuts the next wait short.
        self._events = {channel: asyncio.Event() for channel in channels}
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def wait(self, channel: str, timeout: float) -> None:
        if self._closed:
            await asyncio.sleep(timeout)
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="imagine-store-listen")
        event = self._events[channel]
        with suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
            event.clear()

    async def _listen(self) -> None:
        try:
            # Keepalives, so a connection silently lost (no FIN) is noticed too.
            conn = await AsyncConnection.connect(
                self._url, autocommit=True, keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3
            )
        except psycopg.Error as exc:
            log.debug("store listener: cannot connect (%s); polling until it can", exc)
            return
        async with conn:
            try:
                for channel in self._events:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                # Notifications sent while nobody listened are lost: have every waiter look once.
                for event in self._events.values():
                    event.set()
                async for notification in conn.notifies():
                    self._events[notification.channel].set()
            except psycopg.Error as exc:
                log.warning("store listener: connection lost (%s); polling until it reconnects", exc)

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task


# What a refused connection says when only a change of configuration can fix it.
PERMANENT = (
    "invalid integer value",
    "invalid connection option",
    "does not exist",
    "password authentication failed",
    "no pg_hba.conf entry",
    "invalid sslmode",
)


def scrub(text: str, url: str) -> str:
    """`text` without the URL's password, in any spelling it may appear in."""
    try:
        password = conninfo.conninfo_to_dict(url).get("password")
    except psycopg.ProgrammingError:
        password = None
    raw = urlsplit(url).password
    for secret in {password, raw, raw and unquote(raw)} - {None, ""}:
        text = text.replace(str(secret), "***")
    return text


class _ScrubPasswords(logging.Filter):
    """Takes the passwords of the URLs in use out of the pool's log records (its connection
    errors quote what they failed to parse)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = scrubbed = record.getMessage()
        for url in self.urls:
            scrubbed = scrub(scrubbed, url)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


SCRUB_POOL_LOGS = _ScrubPasswords()
logging.getLogger("psycopg.pool").addFilter(SCRUB_POOL_LOGS)


@contextmanager
def _unavailable_on_connection_errors() -> Iterator[None]:
    # Server down or restarting, connection lost, no connection free within
    # the pool's timeout (PoolTimeout is an OperationalError): the caller must
    # treat the store as down (fail closed). The pool reconnects by itself.
    # Anything else (an IntegrityError, bad SQL) is a bug and propagates.
    try:
        yield
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"postgres: {exc}") from exc
