"""PostgreSQL Store: several processes (and hosts) sharing one queue and ledger.

Same semantics as SQLiteStore (bot/store/sqlite.py is the reference: fair
rounds, holds, settlement, outbox), with row locks in place of SQLite's one
write lock:

- Leasing, reclaiming expired leases, gathering batches, polling due
  batches and claiming deliveries lock the rows they take with
  `FOR NO KEY UPDATE SKIP LOCKED`, so concurrent workers each get different
  rows and never wait on one another. (NO KEY UPDATE rather than
  UPDATE: it excludes other leasers all the same, without blocking inserts of
  rows that merely reference the job, such as its ledger entries.)
- A worker finishing a job locks its row first (`_take_back`), so a reclaim
  can never requeue a job under a worker that is completing it.
- Admission (budgets, quotas, hold) runs under a transaction-scoped advisory
  lock per team, as does the budget re-check of a billed retry: every
  check-then-hold for one team happens in turn, in every process. Under READ
  COMMITTED each statement after the lock sees what the previous holder
  committed.

Wake-ups: transactions that make a job runnable NOTIFY `imagine_jobs`, and
those that queue a delivery NOTIFY `imagine_outbox` (sent on commit). One
LISTEN connection per store turns them into wait_for_jobs/wait_for_deliveries
returning early; polling remains the fallback.

All timestamps come from the injected clock, never from the server's now().
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bot.store.base import (
    ANNOUNCE_WINDOW, BATCH_INLINE_BYTES, HELD_MICROS, IMAGES_WITH_DATA, LANE_UNAVAILABLE, LEASE_EXPIRED,
    NOT_ANNOUNCED, QUOTA_COUNTS, WORKER_LANES, INTERACTIVE_LANES, Admission, Batch, Charge, Denied, EarlierResult, NewDelivery,
    StoreUnavailable, Submitted,
    admission_denial, after_failure, batch_worker, final_delivery_key, fitting, held_default_budget,
    inline_request_bytes, over_budget, with_default_team_budget, without_call_costs,
)
from bot.store.postgres_schema import applied, migrate
from bot.types import CheckedImage, Delivery, GenerationSpec, Job, JobState, Lane, NewJob, StoredImage
from bot.money.budgets import Budget, BudgetStatus, Period, Scope, next_reset, period_start

log = logging.getLogger(__name__)

Conn = AsyncConnection[dict[str, Any]]
Row = dict[str, Any]

JOBS_CHANNEL = "imagine_jobs"
OUTBOX_CHANNEL = "imagine_outbox"


class PostgresStore:
    def __init__(
        self, url: str, *, clock: Callable[[], float] = time.time, min_size: int = 1, max_size: int = 10,
        schema: str | None = None, timeout: float = 10.0,
    ):
        """`schema` isolates the store in its own schema (created if missing);
        `timeout` is how long a call waits for a connection before the store
        reports itself unavailable."""
        self.url = url
        self._clock = clock
        self._min_size = min_size
        self._max_size = max_size
        self._schema = schema
        self._timeout = timeout
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._listener = _Listener(url, (JOBS_CHANNEL, OUTBOX_CHANNEL))
        self._closed = False

    # -- plumbing -------------------------------------------------------

    async def open(self) -> None:
        if self._closed:
            raise StoreUnavailable("store is closed")
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.url, min_size=self._min_size, max_size=self._max_size, timeout=self._timeout, open=False,
            name="imagine-store", kwargs={"row_factory": dict_row},
            configure=self._use_schema if self._schema else None,
            # A connection broken by a server restart is replaced before use
            # instead of failing one request each.
            check=AsyncConnectionPool.check_connection,
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

    async def _use_schema(self, conn: Conn) -> None:
        assert self._schema is not None
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))
        await conn.commit()  # a configured connection must go back to the pool idle

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._listener.close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        """A pooled connection in one transaction: committed at the end, rolled back on error."""
        if self._pool is None:
            raise StoreUnavailable("store is closed" if self._closed else "store is not open")
        with _unavailable_on_connection_errors():
            async with self._pool.connection() as conn:
                yield conn

    async def applied_migrations(self) -> list[str]:
        async with self._tx() as c:
            return await applied(c)

    async def wait_for_jobs(self, timeout: float) -> None:
        """Return when a job may have become runnable, or after `timeout` seconds."""
        await self._listener.wait(JOBS_CHANNEL, timeout)

    async def wait_for_deliveries(self, timeout: float) -> None:
        """Return when a delivery may have been queued, or after `timeout` seconds."""
        await self._listener.wait(OUTBOX_CHANNEL, timeout)

    # -- queue ----------------------------------------------------------

    async def job_for_key(self, idempotency_key: str, window: float | None) -> int | None:
        since = self._clock() - window if window is not None else float("-inf")
        async with self._tx() as c:
            return await _value(c, "SELECT id FROM jobs WHERE idempotency_key = %s AND created_at >= %s",
                                (idempotency_key, since))

    async def submit(
        self, job: NewJob, inputs: list[CheckedImage], admission: Admission | None = None,
        cache_ttl: float = 0,
    ) -> Submitted | Denied:
        now = self._clock()
        async with self._tx() as c:
            # Held to commit: the checks below and the hold they admit cannot
            # interleave with another submit (or billed retry) for this team.
            await _lock_team(c, job.team)
            if job.idempotency_key is not None:
                if job.idempotency_window is not None:
                    # Past its window the key is free again: the old job keeps its row under another key.
                    await c.execute("""UPDATE jobs SET idempotency_key = idempotency_key || ':' || id
                                       WHERE idempotency_key = %s AND created_at < %s""",
                                    (job.idempotency_key, now - job.idempotency_window))
                duplicate = await _duplicate(c, job.idempotency_key)
                if duplicate is not None:
                    return duplicate
            if job.cache_key and cache_ttl > 0:
                # Only the same team's images, and never one a fallback made in place of the model asked for.
                hit = await _one(
                    c, """SELECT result_image_id, result FROM jobs WHERE cache_key = %s AND team = %s
                          AND state = 'succeeded' AND finished_at >= %s
                          AND result->>'fallback_from' IS NULL AND result->>'stale' IS NULL
                          ORDER BY id DESC LIMIT 1""",
                    (job.cache_key, job.team, now - cache_ttl))
                if hit is not None:
                    # $0, so no budget applies, but it is an image like any other to the quotas.
                    denied = None if admission is None else await self._admit(c, job, admission, now, costs=False)
                    return denied or await self._answer_from_cache(c, job, inputs, hit, now)
            if admission is not None:
                denied = await self._admit(c, job, admission, now)
                if denied is not None:
                    return denied
            served = await _value(c, "SELECT value FROM queue_meta WHERE key = 'served_round'")
            last = await _value(c, "SELECT MAX(round) FROM jobs WHERE team = %s AND state = 'queued' AND lane = %s",
                                (job.team, job.spec.lane.value))
            job_id = await _insert_job(
                c, job, now, state=JobState.QUEUED, round=served if last is None else max(served, last + 1),
                available_at=now, announce_by=now + ANNOUNCE_WINDOW if job.announced else None)
            if job_id is None:
                return await _lost_race(c, job)
            for image in inputs:
                await _insert_image(c, job_id, "input", image, parent=None, now=now)
            if admission is not None:
                await self._hold(c, job_id, job, admission, now)
            await _notify(c, JOBS_CHANNEL)
            return Submitted(job_id, await _position(c, job_id) or 0, duplicate=False)

    async def _answer_from_cache(self, c: Conn, job: NewJob, inputs: list[CheckedImage],
                                 hit: Row, now: float) -> Submitted:
        # A copy costs nothing: the original's hedge (and what it cost) is not this job's.
        result = {**without_call_costs(hit["result"]), "cost_usd": "0", "cached": True, "elapsed_s": 0.0}
        job_id = await _insert_job(c, job, now, state=JobState.SUCCEEDED, round=0, available_at=now,
                                   result_image_id=hit["result_image_id"], result=Jsonb(result), finished_at=now)
        if job_id is None:
            return await _lost_race(c, job)
        for image in inputs:  # kept, so a Reroll of this job sends the same pictures
            await _insert_image(c, job_id, "input", image, parent=None, now=now)
        await _insert_delivery(c, job_id, job.platform, NewDelivery(
            final_delivery_key(job_id), "result", {**result, "image_id": hit["result_image_id"]}), now)
        return Submitted(job_id, 0, duplicate=False, cached=True)

    async def _admit(self, c: Conn, job: NewJob, admission: Admission, now: float,
                     *, costs: bool = True) -> Denied | None:
        """Why `job` may not be admitted, or None; `costs=False` (a cache hit) checks the quotas alone."""
        queries = {
            "user_concurrent_jobs": (
                """SELECT COUNT(*) FROM jobs WHERE team = %s AND "user" = %s AND state IN ('queued', 'running')""",
                (job.team, job.user)),
            "team_queued_jobs": ("SELECT COUNT(*) FROM jobs WHERE team = %s AND state = 'queued'", (job.team,)),
            # Jobs that made no image (failed, dead, cancelled) don't use up the day.
            "user_images_per_day": (
                """SELECT COUNT(*) FROM jobs WHERE team = %s AND "user" = %s AND created_at >= %s
                   AND state NOT IN ('failed', 'dead', 'cancelled')""",
                (job.team, job.user, period_start(Period.DAY, now))),
        }
        current = {name: await _value(c, *queries[name]) for name in QUOTA_COUNTS
                   if getattr(admission.quotas, name) is not None}
        statuses = await self._statuses(c, job.team, job.channel, job.user, now,
                                        admission.default_team_budget) if costs else []
        return admission_denial(statuses, admission.estimate_micros, admission.quotas, current, now)

    async def _hold(self, c: Conn, job_id: int, job: NewJob, admission: Admission, now: float) -> None:
        default = admission.default_team_budget
        await _insert(c, "holds", {
            "job_id": job_id, "team": job.team, "channel": job.channel, "user": job.user,
            "amount_micros": admission.estimate_micros, "price_version": admission.price_version,
            "default_limit_micros": default.limit_micros if default else None,
            "default_period": default.period.value if default else None, "created_at": now,
        }, returning="job_id")
        await _ledger_row(c, job_id, "reservation", 0, (job.team, job.channel, job.user), job.spec.to_json(),
                          None, admission.estimate_micros, "held", admission.price_version, now)

    async def _settle(self, c: Conn, row: Row, attempt: int, charge: Charge, now: float, *, hedge: int = 0) -> None:
        """Record what one provider call cost (one row per billed call)."""
        price_version = await _value(c, "SELECT price_version FROM holds WHERE job_id = %s", (row["id"],))
        await _ledger_row(c, row["id"], "settlement", attempt, _who(row), row["request"], charge.usage,
                          charge.cost_micros, charge.status, price_version or "unmetered", now, hedge)

    async def _close_hold(self, c: Conn, row: Row, charge: Charge | None, now: float) -> None:
        """Settle what the last attempt was charged and release the rest of the job's hold."""
        if charge is not None:
            await self._settle(c, row, row["attempt"], charge, now)
        hold = await _one(c, "DELETE FROM holds WHERE job_id = %s RETURNING amount_micros, price_version",
                          (row["id"],))
        if hold is None:
            return
        charged = await _value(
            c, "SELECT COALESCE(SUM(cost_micros), 0)::bigint FROM ledger WHERE job_id = %s AND entry = 'settlement'",
            (row["id"],))
        if charged > hold["amount_micros"]:
            log.warning("job %d cost %d micro-USD, more than the %d held for it", row["id"], charged,
                        hold["amount_micros"])
        await _ledger_row(c, row["id"], "release", 0, _who(row), row["request"], None,
                          max(0, hold["amount_micros"] - charged), "released", hold["price_version"], now)

    async def _settle_lost_attempt(self, c: Conn, job_id: int, attempt: int, charge: Charge | None,
                                   now: float) -> None:
        # The lease moved on, but Google billed this call all the same.
        row = await _one(c, "SELECT * FROM jobs WHERE id = %s", (job_id,))
        if charge is not None and row is not None:
            await self._settle(c, row, attempt, charge, now)

    async def _statuses(self, c: Conn, team: str, channel: str | None, user: str | None,
                        now: float, default: Budget | None = None) -> list[BudgetStatus]:
        rows = await _all(
            c, """SELECT * FROM budgets WHERE team = %s AND ((scope = 'team' AND scope_id = '')
                      OR (scope = 'channel' AND scope_id = %s) OR (scope = 'user' AND scope_id = %s))
                  ORDER BY CASE scope WHEN 'team' THEN 0 WHEN 'channel' THEN 1 ELSE 2 END""",
            (team, channel, user))
        statuses = []
        for budget in with_default_team_budget([_budget(r) for r in rows], default):
            column = {Scope.TEAM: None, Scope.CHANNEL: "channel", Scope.USER: '"user"'}[budget.scope]
            narrow = f" AND {column} = %s" if column else ""
            args = (team, budget.scope_id) if column else (team,)
            # One statement, so one snapshot: a job finishing meanwhile (its charge
            # added and its hold removed in one commit) is seen whole or not at all.
            # Two reads could see neither and admit over the budget.
            both = await _one(
                c, f"""SELECT (SELECT COALESCE(SUM(cost_micros), 0)::bigint FROM ledger
                               WHERE team = %s{narrow} AND entry = 'settlement' AND created_at >= %s) AS spent,
                              (SELECT COALESCE(SUM(amount_micros), 0)::bigint FROM holds
                               WHERE team = %s{narrow}) AS held""",
                (*args, period_start(budget.period, now), *args))
            statuses.append(BudgetStatus(budget, both["spent"], both["held"], next_reset(budget.period, now)))
        return statuses

    async def lease(self, worker_id: str, lease_seconds: float, *, only_job_id: int | None = None,
                    flex: bool = True) -> Job | None:
        now = self._clock()
        async with self._tx() as c:
            await self._reclaim_expired(c, now)
            await self._cancel_unannounced(c, now)
            only = " AND id = %(only)s" if only_job_id is not None else ""
            job_id = await _value(
                c, f"""SELECT id FROM jobs WHERE state = 'queued' AND lane IN {WORKER_LANES if flex else INTERACTIVE_LANES}
                       AND available_at <= %(now)s AND announce_by IS NULL{only}
                       ORDER BY lane = 'priority' DESC, round, id LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED""",
                {"now": now, "only": only_job_id})
            if job_id is None:
                return None
            row = await _one(
                c, f"""UPDATE jobs SET state = 'running', attempt = attempt + 1, worker_id = %(worker)s,
                           lease_until = %(until)s, started_at = COALESCE(started_at, %(now)s), updated_at = %(now)s
                       WHERE id = %(id)s RETURNING *, {HELD_MICROS}""",
                {"worker": worker_id, "until": now + lease_seconds, "now": now, "id": job_id})
            assert row is not None  # locked above
            # GREATEST(value, round), but a lease that does not move it forward
            # skips the write, so leases don't all queue on this one row.
            await c.execute("UPDATE queue_meta SET value = %s WHERE key = 'served_round' AND value < %s",
                            (row["round"], row["round"]))
            # Tells the adapter to show "generating" (one per attempt).
            await _insert_delivery(c, row["id"], row["platform"], NewDelivery(
                key=f"job:{row['id']}:started:{row['attempt']}", kind="started",
                payload={"attempt": row["attempt"]}), now)
            return _job(row)

    async def _reclaim_expired(self, c: Conn, now: float) -> None:
        # A worker that died (or hung) past its lease gives the job back. The
        # lost attempt counts, so a job that kills its worker every time
        # ends up dead instead of looping forever. Rows another transaction
        # holds (a worker finishing just now, another reclaimer) are skipped.
        expired = [r["id"] for r in await _all(
            c, """SELECT id FROM jobs WHERE state = 'running' AND lease_until < %s
                  FOR NO KEY UPDATE SKIP LOCKED""", (now,))]
        if not expired:
            return
        dead = await _all(
            c, """UPDATE jobs SET state = 'dead', error_class = %s, worker_id = NULL, lease_until = NULL,
                      error_detail = 'the worker stopped responding (lease expired) on every attempt',
                      finished_at = %s, updated_at = %s
                  WHERE id = ANY(%s) AND attempt >= max_attempts RETURNING *""",
            (LEASE_EXPIRED, now, now, expired))
        for row in dead:
            await self._close_hold(c, row, None, now)
            await _insert_delivery(c, row["id"], row["platform"], NewDelivery(
                key=final_delivery_key(row["id"]), kind="failure",
                payload={"state": JobState.DEAD.value, "error_class": LEASE_EXPIRED}), now)
        requeued = await c.execute(
            """UPDATE jobs SET state = 'queued', worker_id = NULL, lease_until = NULL,
                   available_at = %s, updated_at = %s
               WHERE id = ANY(%s) AND state = 'running'""",
            (now, now, expired))
        if requeued.rowcount:
            await _notify(c, JOBS_CHANNEL)

    async def _cancel_unannounced(self, c: Conn, now: float) -> None:
        # Announced jobs whose adapter never attached: the user may have been
        # told nothing was charged, so they never start (no message follows).
        await self._cancel_where(c, "state = 'queued' AND announce_by <= %s", (now,), NOT_ANNOUNCED,
                                 "its adapter never confirmed the request was announced", now)

    async def _cancel_where(self, c: Conn, where: str, args: tuple[Any, ...], error_class: str,
                            detail: str, now: float) -> list[Row]:
        """Cancel the jobs matching `where` (queued ones: no attempt to settle) and release their holds.
        Rows another transaction holds (being leased, batched or attached right now) are left to it."""
        ids = [r["id"] for r in await _all(c, f"SELECT id FROM jobs WHERE {where} FOR NO KEY UPDATE SKIP LOCKED",
                                           args)]
        if not ids:
            return []
        rows = await _all(
            c, """UPDATE jobs SET state = 'cancelled', error_class = %s, error_detail = %s, finished_at = %s,
                      updated_at = %s WHERE id = ANY(%s) RETURNING *""",
            (error_class, detail, now, now, ids))
        for row in rows:
            await self._close_hold(c, row, None, now)
        return rows

    async def relane(self, job_id: int, worker_id: str, attempt: int, lane: Lane, delivery: NewDelivery) -> bool:
        now = self._clock()
        async with self._tx() as c:
            row = await self._take_back(c, job_id, worker_id, attempt)
            if row is None:
                return False
            await c.execute(
                """UPDATE jobs SET lane = %(lane)s, request = jsonb_set(request, '{lane}', to_jsonb(%(lane)s::text)),
                       state = 'queued', worker_id = NULL, lease_until = NULL, available_at = %(now)s,
                       updated_at = %(now)s
                   WHERE id = %(id)s""",
                {"lane": lane.value, "now": now, "id": job_id})
            await _insert_delivery(c, job_id, row["platform"], delivery, now)
            return True

    async def cancel_relaxed(self, detail: str) -> list[int]:
        now = self._clock()
        async with self._tx() as c:
            rows = await self._cancel_where(c, "state = 'queued' AND lane <> 'standard'", (), LANE_UNAVAILABLE, detail,
                                            now)
            for row in rows:
                await _insert_delivery(c, row["id"], row["platform"], NewDelivery(
                    final_delivery_key(row["id"]), "failure",
                    {"state": JobState.CANCELLED.value, "error_class": LANE_UNAVAILABLE, "detail": detail}), now)
            return sorted(row["id"] for row in rows)

    # -- Batch lane -----------------------------------------------------

    async def open_batch(self, limit: int, max_bytes: int = BATCH_INLINE_BYTES) -> Batch | None:
        now = self._clock()
        async with self._tx() as c:
            await self._cancel_unannounced(c, now)
            # The longest-waiting relaxed job picks the model; jobs another
            # process is batching right now are skipped, never shared.
            waiting = "state = 'queued' AND lane = 'batch' AND available_at <= %s AND announce_by IS NULL"
            model_id = await _value(
                c, f"""SELECT request->>'model_id' FROM jobs WHERE {waiting}
                       ORDER BY id LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED""", (now,))
            if model_id is None:
                return None
            candidates = await _all(
                c, f"""SELECT id, request->>'prompt' AS prompt, {_INPUT_IMAGES} FROM jobs
                       WHERE {waiting} AND request->>'model_id' = %s
                       ORDER BY id LIMIT %s FOR NO KEY UPDATE OF jobs SKIP LOCKED""", (now, model_id, limit))
            ids = fitting(((r["id"], inline_request_bytes(r["image_bytes"], r["images"], r["prompt"]))
                           for r in candidates), max_bytes)
            batch_id = await _insert(c, "batches", {
                "model_id": model_id, "state": "creating", "job_ids": Jsonb([]), "created_at": now,
                "updated_at": now, "next_poll_at": now})
            # No lease expiry: a batch's jobs wait on the batch, however long Google takes.
            rows = await _all(
                c, f"""UPDATE jobs SET state = 'running', attempt = attempt + 1, worker_id = %s, batch_id = %s,
                           lease_until = NULL, started_at = COALESCE(started_at, %s), updated_at = %s
                       WHERE id = ANY(%s) RETURNING *, {HELD_MICROS}""",
                (batch_worker(batch_id), batch_id, now, now, ids))
            jobs = tuple(_job(r) for r in sorted(rows, key=lambda r: r["id"]))
            return Batch(batch_id, model_id, "creating", None, now, (), jobs)

    async def split_batch(self, batch_id: int, job_ids: list[int]) -> Batch:
        now = self._clock()
        async with self._tx() as c:
            old = await _one(c, """SELECT model_id, job_ids FROM batches WHERE id = %s AND state = 'creating'
                                   FOR UPDATE""", (batch_id,))
            if old is None:
                raise ValueError(f"batch {batch_id} is not being created: it cannot be split")
            new_id = await _insert(c, "batches", {
                "model_id": old["model_id"], "state": "creating", "job_ids": Jsonb([]), "created_at": now,
                "updated_at": now, "next_poll_at": now})
            rows = await _all(
                c, f"""UPDATE jobs SET worker_id = %s, batch_id = %s, updated_at = %s
                       WHERE batch_id = %s AND worker_id = %s AND state = 'running' AND id = ANY(%s)
                       RETURNING *, {HELD_MICROS}""",
                (batch_worker(new_id), new_id, now, batch_id, batch_worker(batch_id), job_ids))
            moved = {r["id"] for r in rows}
            # The old batch's request order no longer names them.
            await c.execute("UPDATE batches SET job_ids = %s, updated_at = %s WHERE id = %s",
                            (Jsonb([i for i in old["job_ids"] if i not in moved]), now, batch_id))
            jobs = tuple(_job(r) for r in sorted(rows, key=lambda r: r["id"]))
            return Batch(new_id, old["model_id"], "creating", None, now, (), jobs)

    async def batch_sending(self, batch_id: int, job_ids: list[int]) -> None:
        async with self._tx() as c:
            await c.execute("UPDATE batches SET job_ids = %s, updated_at = %s WHERE id = %s",
                            (Jsonb(job_ids), self._clock(), batch_id))

    async def batch_submitted(self, batch_id: int, remote_name: str, poll_at: float) -> bool:
        now = self._clock()
        async with self._tx() as c:
            updated = await _one(c, """UPDATE batches SET state = 'submitted', remote_name = %s, updated_at = %s,
                                           next_poll_at = %s
                                       WHERE id = %s AND (state = 'creating'
                                                          OR (state = 'submitted' AND remote_name = %s))
                                       RETURNING id""", (remote_name, now, poll_at, batch_id, remote_name))
            if updated is None:
                return False  # given back meanwhile: its jobs are queued again
            for row in await _batch_jobs(c, batch_id):
                await _insert_delivery(c, row["id"], row["platform"], NewDelivery(
                    key=f"job:{row['id']}:started:{row['attempt']}", kind="started",
                    payload={"attempt": row["attempt"], "batch": remote_name}), now)
            return True

    async def due_batches(self, poll_interval: float, stale_after: float) -> list[Batch]:
        now = self._clock()
        async with self._tx() as c:
            # Pushed forward under a row lock: concurrent pollers each get different batches.
            ids = [r["id"] for r in await _all(
                c, """SELECT id FROM batches
                      WHERE next_poll_at <= %s AND (state = 'submitted' OR (state = 'creating' AND updated_at <= %s))
                      FOR NO KEY UPDATE SKIP LOCKED""", (now, now - stale_after))]
            rows = await _all(c, "UPDATE batches SET next_poll_at = %s WHERE id = ANY(%s) RETURNING *",
                              (now + poll_interval, ids))
            return [Batch(r["id"], r["model_id"], r["state"], r["remote_name"], r["created_at"],
                          tuple(r["job_ids"]), tuple(_job(j) for j in await _batch_jobs(c, r["id"])))
                    for r in sorted(rows, key=lambda r: r["id"])]

    async def close_batch(self, batch_id: int, remote_state: str) -> None:
        async with self._tx() as c:
            await c.execute("UPDATE batches SET state = 'closed', remote_state = %s, updated_at = %s WHERE id = %s",
                            (remote_state, self._clock(), batch_id))

    async def extend_lease(self, job_id: int, worker_id: str, attempt: int, lease_seconds: float) -> bool:
        now = self._clock()
        async with self._tx() as c:
            cur = await c.execute(
                """UPDATE jobs SET lease_until = %s, updated_at = %s
                   WHERE id = %s AND state = 'running' AND worker_id = %s AND attempt = %s""",
                (now + lease_seconds, now, job_id, worker_id, attempt))
            return cur.rowcount == 1

    @staticmethod
    async def _take_back(c: Conn, job_id: int, worker_id: str, attempt: int) -> Row | None:
        """The job row, locked, if this worker still holds its lease; else None."""
        return await _one(
            c, """SELECT * FROM jobs WHERE id = %s AND state = 'running' AND worker_id = %s AND attempt = %s
                  FOR NO KEY UPDATE""",
            (job_id, worker_id, attempt))

    async def complete(
        self, job_id: int, worker_id: str, attempt: int, image: CheckedImage,
        result: dict[str, Any], delivery: NewDelivery, charge: Charge | None,
    ) -> int | None:
        now = self._clock()
        async with self._tx() as c:
            row = await self._take_back(c, job_id, worker_id, attempt)
            if row is None:
                await self._settle_lost_attempt(c, job_id, attempt, charge, now)
                return None
            image_id = await _insert_image(c, job_id, "output", image,
                                           parent=row["request"].get("parent_image_id"), now=now)
            await c.execute(
                """UPDATE jobs SET state = 'succeeded', result_image_id = %s, result = %s,
                       lease_until = NULL, finished_at = %s, updated_at = %s,
                       error_class = NULL, error_detail = NULL
                   WHERE id = %s""",
                (image_id, Jsonb(result), now, now, job_id))
            await self._close_hold(c, row, charge, now)
            await _insert_delivery(c, job_id, row["platform"], NewDelivery(
                delivery.key, delivery.kind, {**delivery.payload, "image_id": image_id}), now)
            return image_id

    async def fail(
        self, job_id: int, worker_id: str, attempt: int, *, error_class: str,
        detail: str, retryable: bool, final_state: JobState, retry_at: float | None,
        delivery: NewDelivery, result: dict[str, Any] | None = None, charge: Charge | None = None,
    ) -> JobState | None:
        now = self._clock()
        kind, text, billed = error_class, detail, charge
        async with self._tx() as c:
            row = await self._take_back(c, job_id, worker_id, attempt)
            if row is None:
                await self._settle_lost_attempt(c, job_id, attempt, charge, now)
                return None
            state = after_failure(retryable, attempt, row["max_attempts"], final_state)
            if state is JobState.QUEUED and billed is not None and billed.cost_micros:
                # This call was billed: the retry must still fit every budget, with its hold,
                # checked under the same lock as admission so no submit slips in meanwhile.
                await _lock_team(c, row["team"])
                await self._settle(c, row, attempt, billed, now)
                billed = None
                # The default team budget it was admitted under still caps it.
                hold = await _one(c, "SELECT default_limit_micros, default_period FROM holds WHERE job_id = %s",
                                  (job_id,))
                default = held_default_budget(row["team"], *hold.values()) if hold else None
                if over_budget(await self._statuses(c, row["team"], row["channel"], row["user"], now, default)):
                    state, kind = JobState.FAILED, "budget_exhausted"
                    text = f"{text} (a billed attempt used up the budget, so it was not retried)"
            await c.execute(
                """UPDATE jobs SET state = %s, error_class = %s, error_detail = %s, result = %s,
                       worker_id = NULL, lease_until = NULL, available_at = %s,
                       finished_at = %s, updated_at = %s
                   WHERE id = %s""",
                (state.value, kind, text[:2000], Jsonb(result) if result is not None else None,
                 retry_at if retry_at is not None else now,
                 None if state is JobState.QUEUED else now, now, job_id))
            if state is JobState.QUEUED:
                await _notify(c, JOBS_CHANNEL)
            if state.terminal:
                await self._close_hold(c, row, billed, now)
                await _insert_delivery(c, job_id, row["platform"], NewDelivery(
                    delivery.key, delivery.kind, {**delivery.payload, "state": state.value, "error_class": kind}),
                    now)
            return state

    async def settle_hedge(self, job_id: int, attempt: int, charge: Charge) -> None:
        async with self._tx() as c:
            row = await _one(c, "SELECT * FROM jobs WHERE id = %s", (job_id,))
            if row is not None:
                await self._settle(c, row, attempt, charge, self._clock(), hedge=1)

    async def stale_result(self, team: str, cache_key: str) -> EarlierResult | None:
        async with self._tx() as c:
            hit = await _one(
                c, """SELECT id, result, result_image_id, finished_at FROM jobs
                      WHERE cache_key = %s AND team = %s AND state = 'succeeded'
                      AND result->>'fallback_from' IS NULL AND result->>'stale' IS NULL
                      ORDER BY id DESC LIMIT 1""",
                (cache_key, team))
            image = hit and await _one(c, f"{IMAGES_WITH_DATA} WHERE images.id = %s", (hit["result_image_id"],))
            if not image:
                return None
            return EarlierResult(hit["id"], _image(image), hit["result"], hit["finished_at"])

    async def cancel(self, job_id: int) -> bool:
        now = self._clock()
        async with self._tx() as c:
            row = await _one(
                c, """UPDATE jobs SET state = 'cancelled', finished_at = %s, updated_at = %s
                      WHERE id = %s AND state = 'queued' RETURNING *""",
                (now, now, job_id))
            if row is None:
                return False
            await self._close_hold(c, row, None, now)
            return True

    async def get_job(self, job_id: int) -> Job | None:
        async with self._tx() as c:
            row = await _one(c, f"SELECT *, {HELD_MICROS} FROM jobs WHERE id = %s", (job_id,))
        return _job(row) if row else None

    async def position(self, job_id: int) -> int | None:
        async with self._tx() as c:
            return await _position(c, job_id)

    async def error_counts(self, since: float) -> dict[str, int]:
        async with self._tx() as c:
            rows = await _all(
                c, """SELECT error_class, COUNT(*) AS n FROM jobs WHERE error_class IS NOT NULL AND updated_at >= %s
                      GROUP BY error_class ORDER BY n DESC""", (since,))
        return {r["error_class"]: r["n"] for r in rows}

    async def counts_by_state(self) -> dict[str, int]:
        async with self._tx() as c:
            rows = await _all(c, "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return {r["state"]: r["n"] for r in rows}

    # -- money ----------------------------------------------------------

    async def set_budget(self, budget: Budget, updated_by: str) -> None:
        async with self._tx() as c:
            await c.execute(
                """INSERT INTO budgets (team, scope, scope_id, limit_micros, period, soft_threshold,
                       updated_by, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (team, scope, scope_id) DO UPDATE SET limit_micros = excluded.limit_micros,
                       period = excluded.period, soft_threshold = excluded.soft_threshold,
                       updated_by = excluded.updated_by, updated_at = excluded.updated_at""",
                (budget.team, budget.scope.value, budget.scope_id, budget.limit_micros,
                 budget.period.value, budget.soft_threshold, updated_by, self._clock()))

    async def delete_budget(self, team: str, scope: Scope, scope_id: str) -> bool:
        async with self._tx() as c:
            cur = await c.execute("DELETE FROM budgets WHERE team = %s AND scope = %s AND scope_id = %s",
                                  (team, scope.value, scope_id))
            return cur.rowcount == 1

    async def budgets(self, team: str) -> list[Budget]:
        async with self._tx() as c:
            rows = await _all(c, "SELECT * FROM budgets WHERE team = %s ORDER BY scope, scope_id", (team,))
        return [_budget(r) for r in rows]

    async def budget_statuses(self, team: str, channel: str | None, user: str | None,
                              default_team_budget: Budget | None = None) -> list[BudgetStatus]:
        async with self._tx() as c:
            return await self._statuses(c, team, channel, user, self._clock(), default_team_budget)

    async def spent(self, team: str, *, user: str | None = None, since: float) -> int:
        narrow, args = (' AND "user" = %s', (team, user, since)) if user else ("", (team, since))
        async with self._tx() as c:
            return await _value(
                c, f"""SELECT COALESCE(SUM(cost_micros), 0)::bigint FROM ledger
                       WHERE team = %s{narrow} AND entry = 'settlement' AND created_at >= %s""", args)

    async def record_moderation(self, team: str, channel: str, user: str, reason: str, prompt: str | None) -> None:
        async with self._tx() as c:
            await _insert(c, "moderation_log", {"team": team, "channel": channel, "user": user, "reason": reason,
                                                "prompt": prompt, "created_at": self._clock()})

    async def moderation_log(self, team: str) -> list[dict[str, Any]]:
        async with self._tx() as c:
            return await _all(c, "SELECT * FROM moderation_log WHERE team = %s ORDER BY id", (team,))

    async def ledger(self, *, team: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        filters = {"team = %(team)s": team, "created_at >= %(since)s": since}
        where = " AND ".join(f for f, value in filters.items() if value is not None) or "TRUE"
        async with self._tx() as c:
            return await _all(c, f"SELECT * FROM ledger WHERE {where} ORDER BY id", {"team": team, "since": since})

    # -- platform context -----------------------------------------------

    async def attach_delivery(self, job_id: int, context: dict[str, Any]) -> bool:
        async with self._tx() as c:
            # An announced job waits for this before it may be leased (or is cancelled).
            state = await _value(
                c, """UPDATE jobs SET delivery = delivery || %s, announce_by = NULL
                      WHERE id = %s RETURNING state""",
                (Jsonb(context), job_id))
            if state == JobState.QUEUED.value:
                await _notify(c, JOBS_CHANNEL)
        return state is not None and state != JobState.CANCELLED.value

    async def remember_thread(self, platform: str, team: str, channel: str, thread_id: str, image_id: int) -> None:
        async with self._tx() as c:
            await c.execute(
                """INSERT INTO threads (platform, team, channel, thread_id, image_id, updated_at)
                   VALUES (%s, %s, %s, %s, %s, %s)
                   ON CONFLICT (platform, team, channel, thread_id)
                   DO UPDATE SET image_id = excluded.image_id, updated_at = excluded.updated_at""",
                (platform, team, channel, thread_id, image_id, self._clock()))

    async def thread_image(self, platform: str, team: str, channel: str, thread_id: str) -> int | None:
        async with self._tx() as c:
            return await _value(
                c, """SELECT image_id FROM threads
                      WHERE platform = %s AND team = %s AND channel = %s AND thread_id = %s""",
                (platform, team, channel, thread_id))

    async def save_confirmation(self, token: str, team: str, user: str, request: dict[str, Any],
                                ttl_seconds: float) -> None:
        now = self._clock()
        async with self._tx() as c:
            await c.execute("DELETE FROM confirmations WHERE expires_at < %s", (now,))
            await _insert(c, "confirmations", {"token": token, "team": team, "user": user,
                                               "request": Jsonb(request), "expires_at": now + ttl_seconds},
                          returning="token")

    async def take_confirmation(self, token: str, team: str, user: str) -> dict[str, Any] | str:
        now = self._clock()
        async with self._tx() as c:
            # Deleting is the claim: of two clicks at once, exactly one gets the request.
            request = await _value(
                c, """DELETE FROM confirmations WHERE token = %s AND team = %s AND "user" = %s
                      AND expires_at >= %s RETURNING request""", (token, team, user, now))
            if request is not None:
                return request
            held = await _value(c, "SELECT 1 FROM confirmations WHERE token = %s AND expires_at >= %s",
                                (token, now))
            return "expired" if held is None else "not_yours"  # left untouched for the person who asked

    # -- images ---------------------------------------------------------

    async def get_image(self, image_id: int) -> StoredImage | None:
        async with self._tx() as c:
            row = await _one(c, f"{IMAGES_WITH_DATA} WHERE images.id = %s", (image_id,))
        return _image(row) if row else None

    async def job_inputs(self, job_id: int) -> list[StoredImage]:
        async with self._tx() as c:
            rows = await _all(c, f"""{IMAGES_WITH_DATA} WHERE images.job_id = %s AND images.role = 'input'
                                     ORDER BY images.id""", (job_id,))
        return [_image(r) for r in rows]

    # -- outbox ---------------------------------------------------------

    async def take_rate_slot(self, key: str, limit: int, window: float) -> float:
        now = self._clock()
        async with self._tx() as c:
            # Every process counting this key queues here, until commit.
            await c.execute("SELECT pg_advisory_xact_lock(hashtextextended('imagine-rate:' || %s, 0))", (key,))
            await c.execute("DELETE FROM rate_slots WHERE key = %s AND taken_at <= %s", (key, now - window))
            row = await _one(c, "SELECT COUNT(*) AS n, MIN(taken_at) AS oldest FROM rate_slots WHERE key = %s",
                             (key,))
            if row["n"] < limit:
                await c.execute("INSERT INTO rate_slots (key, taken_at) VALUES (%s, %s)", (key, now))
                return 0.0
            return max(0.01, row["oldest"] + window - now)

    async def raise_alert(self, key: str, platforms: list[str], text: str) -> bool:
        now = self._clock()
        async with self._tx() as c:
            queued = [await _insert_delivery(c, None, platform, NewDelivery(f"{key}:{platform}", "alert",
                                                                             {"text": text}), now)
                      for platform in platforms]
        return any(queued)

    async def claim_deliveries(self, platforms: list[str], limit: int, lease_seconds: float) -> list[Delivery]:
        if not platforms:
            return []
        now = self._clock()
        async with self._tx() as c:
            ids = [r["id"] for r in await _all(
                c, """SELECT id FROM outbox WHERE state = 'pending' AND platform = ANY(%s) AND available_at <= %s
                      ORDER BY id LIMIT %s FOR NO KEY UPDATE SKIP LOCKED""",
                (platforms, now, limit))]
            if not ids:
                return []
            # Claiming pushes available_at forward: a dispatcher that dies
            # mid-send leaves the row to be picked up again after the lease.
            rows = await _all(
                c, """UPDATE outbox SET available_at = %s, attempts = attempts + 1
                      WHERE id = ANY(%s) RETURNING *""",
                (now + lease_seconds, ids))
        return [Delivery(r["id"], r["key"], r["job_id"], r["platform"], r["kind"], r["payload"], r["attempts"])
                for r in sorted(rows, key=lambda r: r["id"])]

    async def mark_delivered(self, delivery_id: int) -> None:
        async with self._tx() as c:
            await c.execute("UPDATE outbox SET state = 'delivered', delivered_at = %s WHERE id = %s",
                            (self._clock(), delivery_id))

    async def retry_delivery(self, delivery_id: int, error: str, retry_at: float, max_attempts: int) -> None:
        async with self._tx() as c:
            await c.execute(
                """UPDATE outbox SET last_error = %s, available_at = %s,
                       state = CASE WHEN attempts >= %s THEN 'failed' ELSE 'pending' END
                   WHERE id = %s""",
                (error[:2000], retry_at, max_attempts, delivery_id))


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
            conn = await AsyncConnection.connect(self._url, autocommit=True, keepalives=1, keepalives_idle=30,
                                                 keepalives_interval=10, keepalives_count=3)
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


# -- SQL helpers ----------------------------------------------------------


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


async def _one(c: Conn, query: str | sql.Composable, params: Any = None) -> Row | None:
    return await (await c.execute(query, params)).fetchone()


async def _all(c: Conn, query: str | sql.Composable, params: Any = None) -> list[Row]:
    return await (await c.execute(query, params)).fetchall()


async def _value(c: Conn, query: str | sql.Composable, params: Any = None) -> Any:
    """The first column of the first row, or None when there is no row."""
    row = await _one(c, query, params)
    return None if row is None else next(iter(row.values()))


async def _insert(c: Conn, table: str, row: Mapping[str, Any], *, returning: str = "id",
                  or_ignore: bool = False) -> Any:
    """Insert one row and return its `returning` column. With `or_ignore`, a
    row that would duplicate a unique key is skipped (SQLite's INSERT OR
    IGNORE) and None returned."""
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}){} RETURNING {}").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(map(sql.Placeholder, row)),
        sql.SQL(" ON CONFLICT DO NOTHING") if or_ignore else sql.SQL(""), sql.Identifier(returning))
    return await _value(c, query, row)


async def _notify(c: Conn, channel: str) -> None:
    # Delivered when the transaction commits, and not at all if it rolls back.
    await c.execute("SELECT pg_notify(%s, '')", (channel,))


async def _lock_team(c: Conn, team: str) -> None:
    # Held until commit. Advisory locks are database-wide: stores in other
    # schemas of the same database only ever wait on each other, harmlessly.
    await c.execute("SELECT pg_advisory_xact_lock(hashtextextended('imagine-team:' || %s, 0))", (team,))


async def _insert_job(c: Conn, job: NewJob, now: float, *, state: JobState, **columns: Any) -> int | None:
    """The new job's id, or None when its idempotency key is already taken."""
    return await _insert(c, "jobs", {
        "team": job.team, "channel": job.channel, "user": job.user, "platform": job.platform,
        "kind": job.kind, "request": Jsonb(job.spec.to_json()), "delivery": Jsonb(job.delivery),
        "idempotency_key": job.idempotency_key, "cache_key": job.cache_key, "lane": job.spec.lane.value,
        "state": state.value,
        "max_attempts": job.max_attempts, "created_at": now, "updated_at": now, **columns,
    }, or_ignore=True)


async def _duplicate(c: Conn, idempotency_key: str) -> Submitted | None:
    job_id = await _value(c, "SELECT id FROM jobs WHERE idempotency_key = %s", (idempotency_key,))
    if job_id is None:
        return None
    return Submitted(job_id, await _position(c, job_id) or 0, duplicate=True)


async def _lost_race(c: Conn, job: NewJob) -> Submitted:
    """Another transaction inserted the same idempotency key after our check
    (it can, from another team's lock): answer with its job, as if we had seen it."""
    assert job.idempotency_key is not None  # the only key a job insert can collide on
    duplicate = await _duplicate(c, job.idempotency_key)
    assert duplicate is not None  # committed: the insert waited for it
    return duplicate


# A job's input images for the Batch lane's size limit: how many and their bytes,
# the image an edit changes (named in its request) included.
_INPUT_IMAGES = """
    (SELECT COUNT(*) FROM images i WHERE i.job_id = jobs.id AND i.role = 'input')
      + (CASE WHEN request->>'parent_image_id' IS NULL THEN 0 ELSE 1 END) AS images,
    ((SELECT COALESCE(SUM(i.size_bytes), 0) FROM images i WHERE i.job_id = jobs.id AND i.role = 'input')
      + COALESCE((SELECT p.size_bytes FROM images p WHERE p.id = (request->>'parent_image_id')::bigint), 0)
     )::bigint AS image_bytes"""


async def _batch_jobs(c: Conn, batch_id: int) -> list[Row]:
    """The batch's jobs still waiting on it (not yet finished, not retried elsewhere)."""
    return await _all(c, f"""SELECT *, {HELD_MICROS} FROM jobs WHERE batch_id = %s AND state = 'running'
                             AND worker_id = %s ORDER BY id""", (batch_id, batch_worker(batch_id)))


async def _position(c: Conn, job_id: int) -> int | None:
    return await _value(
        c, """SELECT 1 + (SELECT COUNT(*) FROM jobs o WHERE o.state = 'queued' AND o.lane = j.lane
                          AND (o.round < j.round OR (o.round = j.round AND o.id < j.id)))
              FROM jobs j WHERE j.id = %s AND j.state = 'queued'""",
        (job_id,))


async def _ledger_row(c: Conn, job_id: int, entry: str, attempt: int, who: tuple[str, str, str],
                      spec: dict[str, Any], usage: Any, cost_micros: int, status: str, price_version: str,
                      now: float, hedge: int = 0) -> None:
    # (job, entry, attempt, hedge) is unique, so the same call reported twice (a late
    # worker, a retried write) is charged once.
    team, channel, user = who
    await _insert(c, "ledger", {
        "job_id": job_id, "entry": entry, "attempt": attempt, "team": team, "channel": channel, "user": user,
        "model": spec["model_alias"], "size": spec["size"], "lane": spec["lane"],
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "output_tokens": usage.output_tokens if usage else None,
        "image_tokens": usage.image_tokens if usage else None,
        "cost_micros": cost_micros, "status": status, "price_version": price_version, "created_at": now,
        "hedge": hedge,
    }, or_ignore=True)


async def _insert_image(c: Conn, job_id: int, role: str, image: CheckedImage, *, parent: int | None,
                        now: float) -> int:
    # Bytes once per content, addressed by their own digest (never the caller's).
    digest = hashlib.sha256(image.data).hexdigest()
    await _insert(c, "blobs", {"sha256": digest, "data": image.data}, returning="sha256", or_ignore=True)
    return await _insert(c, "images", {
        "job_id": job_id, "role": role, "parent_image_id": parent, "mime": image.mime, "width": image.width,
        "height": image.height, "size_bytes": len(image.data), "sha256": digest, "created_at": now,
    })


async def _insert_delivery(c: Conn, job_id: int | None, platform: str, delivery: NewDelivery,
                           now: float) -> bool:
    """Queue a delivery (job_id None for an alert); False when its key was already queued."""
    # Ignored on a duplicate key: a job finished twice (a retry racing a late
    # worker) still posts once.
    delivery_id = await _insert(c, "outbox", {
        "key": delivery.key, "job_id": job_id, "platform": platform, "kind": delivery.kind,
        "payload": Jsonb(delivery.payload), "available_at": now, "created_at": now,
    }, or_ignore=True)
    if delivery_id is None:
        return False
    await _notify(c, OUTBOX_CHANNEL)
    return True


def _who(row: Row) -> tuple[str, str, str]:
    return row["team"], row["channel"], row["user"]


def _job(row: Row) -> Job:
    return Job(
        id=row["id"], team=row["team"], channel=row["channel"], user=row["user"],
        platform=row["platform"], kind=row["kind"], spec=GenerationSpec.from_json(row["request"]),
        state=JobState(row["state"]), attempt=row["attempt"], max_attempts=row["max_attempts"],
        delivery=row["delivery"], created_at=row["created_at"],
        lease_until=row["lease_until"], worker_id=row["worker_id"], started_at=row["started_at"],
        finished_at=row["finished_at"], result_image_id=row["result_image_id"], result=row["result"],
        error_class=row["error_class"], error_detail=row["error_detail"], held_micros=row["held_micros"],
        cache_key=row["cache_key"],
    )


def _budget(row: Row) -> Budget:
    return Budget(team=row["team"], scope=Scope(row["scope"]), scope_id=row["scope_id"],
                  limit_micros=row["limit_micros"], period=Period(row["period"]),
                  soft_threshold=row["soft_threshold"])


def _image(row: Row) -> StoredImage:
    return StoredImage(
        id=row["id"], job_id=row["job_id"], role=row["role"], mime=row["mime"],
        width=row["width"], height=row["height"], sha256=row["sha256"], data=row["data"],
        parent_image_id=row["parent_image_id"],
    )
