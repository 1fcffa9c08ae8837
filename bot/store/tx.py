"""What every store operation is written against: one transaction (Tx) of one connector.

An operation is an `async def` over a Tx, written once. The PostgreSQL connector
awaits it on a pooled connection. The SQLite connector runs it inside its one
database thread, driving the coroutine to its end with send(None): a SQLite
Tx never suspends, so an operation costs one thread hop as before, however many
statements it runs (see bot/store/sqlite.py). Statements are named
(bot/store/sql/queries.sql); rows come back as dicts, JSON columns decoded.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, fields
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from bot.money.budgets import Budget, Period, Scope
from bot.types import GenerationSpec, Job, JobState, StoredImage

Row = dict[str, Any]
P = ParamSpec("P")
T = TypeVar("T")

# Wake-up channels: a transaction that makes a job runnable notifies JOBS, one
# that queues a delivery OUTBOX (PostgreSQL only; SQLite polls).
JOBS = "imagine_jobs"
OUTBOX = "imagine_outbox"
# Columns holding JSON: TEXT in SQLite, JSONB in PostgreSQL; a Tx returns them decoded.
JSON_COLUMNS = frozenset({"request", "delivery", "result", "payload", "job_ids"})


@dataclass(frozen=True)
class Json:
    """A parameter stored as JSON (a TEXT column in SQLite, JSONB in PostgreSQL)."""

    value: Any


class Tx(Protocol):
    """One transaction; `query` names a statement of bot/store/sql, params its :names.
    A list parameter fills an {in:...} fragment."""

    async def all(self, query: str, /, **params: Any) -> list[Row]: ...

    async def one(self, query: str, /, **params: Any) -> Row | None: ...

    async def value(self, query: str, /, **params: Any) -> Any:
        """The first column of the first row, or None when there is no row."""

    async def run(self, query: str, /, **params: Any) -> int:
        """Execute, returning how many rows changed."""

    async def script(self, statement: str) -> None:
        """Run one literal statement (a migration's)."""

    async def lock(self, key: str) -> None:
        """Serialise this transaction with every other one taking `key`, until commit
        (PostgreSQL's advisory lock; SQLite's one writer already is)."""

    async def notify(self, channel: str) -> None:
        """Wake up waiters on `channel` once this transaction commits."""


class Connector(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def transact(self, op: Callable[[Tx], Awaitable[T]], *, write: bool) -> T:
        """Run `op` in one transaction: committed when it returns, rolled back when it raises.
        `write=False` promises `op` only reads (SQLite then takes no write lock)."""

    async def wait(self, channel: str, timeout: float) -> None:
        """Return when `channel` was notified, or after `timeout` seconds."""

    async def applied_migrations(self) -> list[str]: ...


class Operations:
    """State shared by the store's role mixins (bot/store/queue.py, ledger.py, ...)."""

    def __init__(self, db: Connector, clock: Callable[[], float]):
        self._db = db
        self._clock = clock


def _operation(
    write: bool,
) -> Callable[[Callable[Concatenate[Any, Tx, P], Awaitable[T]]], Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]]:
    def wrap(
        fn: Callable[Concatenate[Any, Tx, P], Awaitable[T]],
    ) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
        @functools.wraps(fn)
        async def method(self: Operations, *args: P.args, **kwargs: P.kwargs) -> T:
            return await self._db.transact(lambda tx: fn(self, tx, *args, **kwargs), write=write)

        return method

    return wrap


# A store method whose body runs in one transaction: `async def name(self, tx, ...)`,
# called as `store.name(...)`.
writes = _operation(write=True)
reads = _operation(write=False)


def job(row: Row) -> Job:
    """A jobs row (with held_micros) as a Job: its columns are the Job's fields, but for the spec."""
    columns = {name: row[name] for name in _JOB_COLUMNS}
    return Job(
        **columns,
        spec=GenerationSpec.from_json(row["request"]),
        state=JobState(row["state"]),
        has_inputs=bool(row.get("has_inputs", True)),  # only a lease reads it
    )


def budget(row: Row) -> Budget:
    return Budget(
        team=row["team"],
        scope=Scope(row["scope"]),
        scope_id=row["scope_id"],
        limit_micros=row["limit_micros"],
        period=Period(row["period"]),
        soft_threshold=row["soft_threshold"],
    )


def image(row: Row) -> StoredImage:
    """An images row joined with its blob's bytes."""
    return StoredImage(**{name: row[name] for name in _IMAGE_COLUMNS}, data=bytes(row["data"]))


def who(row: Row) -> tuple[str, str, str]:
    return row["team"], row["channel"], row["user"]


_JOB_COLUMNS = tuple(f.name for f in fields(Job) if f.name not in ("spec", "state", "has_inputs"))
_IMAGE_COLUMNS = tuple(f.name for f in fields(StoredImage) if f.name != "data")
