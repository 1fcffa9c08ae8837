"""SQLite Store: the single-process default, and safe across processes too.

One connection per store, used from one dedicated thread so the event loop
never blocks on disk or on another process's write lock. Every write runs
in `BEGIN IMMEDIATE`: the write lock is taken up front, so two workers
(threads or processes) can never both read the same queued job and lease
it, and SQLite's busy timeout queues writers instead of failing them.

Fair order: each job gets a `round` at submit. A team's next job goes one
round after its last queued job, but never before the round being served
now, so a team with one job waits at most one round behind a team with a
hundred. Leasing takes the lowest (round, id): round-robin across teams,
FIFO within a team, and a job's position is a single indexed count.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

from sqlite_utils import Database

from bot.store.base import (
    ANNOUNCE_WINDOW, BATCH_INLINE_BYTES, HELD_MICROS, IMAGES_WITH_DATA, LANE_UNAVAILABLE, LEASE_EXPIRED,
    NOT_ANNOUNCED, QUOTA_COUNTS, WORKER_LANES, INTERACTIVE_LANES, Admission, Batch, Charge, Denied, EarlierResult, NewDelivery,
    StoreUnavailable, Submitted,
    admission_denial, after_failure, batch_worker, final_delivery_key, fitting, held_default_budget,
    inline_request_bytes, over_budget, with_default_team_budget, without_call_costs,
)
from bot.store.sqlite_schema import migrations
from bot.types import CheckedImage, Delivery, GenerationSpec, Job, JobState, Lane, NewJob, StoredImage
from bot.money.budgets import Budget, BudgetStatus, Period, Scope, next_reset, period_start

T = TypeVar("T")
log = logging.getLogger(__name__)


class SQLiteStore:
    def __init__(self, path: str, *, clock: Callable[[], float] = time.time, busy_timeout: float = 30.0):
        self.path = path
        self._clock = clock
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    # -- plumbing -------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreUnavailable("store is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, partial(fn, *args))
        except sqlite3.IntegrityError:
            raise  # a bug in our SQL, not an outage
        except sqlite3.DatabaseError as exc:
            # Locked past the busy timeout, disk full, not a database file:
            # the caller must treat the store as down (fail closed).
            raise StoreUnavailable(f"sqlite: {exc}") from exc

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("store is not open")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    def _open_sync(self) -> None:
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        self._retry_while_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
        self._conn = conn
        # Several processes may open a new file at once: migrate under the write lock.
        with self._write():
            migrations.apply(Database(conn))

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

    async def applied_migrations(self) -> list[str]:
        return await self._run(lambda: [m.name for m in migrations.applied(Database(self.conn))])

    # -- queue ----------------------------------------------------------

    async def submit(
        self, job: NewJob, inputs: list[CheckedImage], admission: Admission | None = None,
        cache_ttl: float = 0,
    ) -> Submitted | Denied:
        return await self._run(self._submit, job, inputs, admission, cache_ttl)

    async def job_for_key(self, idempotency_key: str, window: float | None) -> int | None:
        since = self._clock() - window if window is not None else float("-inf")
        row = await self._run(lambda: self.conn.execute(
            "SELECT id FROM jobs WHERE idempotency_key = ? AND created_at >= ?", (idempotency_key, since),
        ).fetchone())
        return row["id"] if row is not None else None

    def _submit(self, job: NewJob, inputs: list[CheckedImage], admission: Admission | None,
                cache_ttl: float) -> Submitted | Denied:
        now = self._clock()
        # The write lock is held from here to commit: the checks below and
        # the hold they admit cannot interleave with another submit.
        with self._write() as c:
            if job.idempotency_key is not None:
                if job.idempotency_window is not None:
                    # Past its window the key is free again: the old job keeps its row under another key.
                    c.execute("""UPDATE jobs SET idempotency_key = idempotency_key || ':' || id
                                 WHERE idempotency_key = ? AND created_at < ?""",
                              (job.idempotency_key, now - job.idempotency_window))
                row = c.execute(
                    "SELECT id FROM jobs WHERE idempotency_key = ?", (job.idempotency_key,)
                ).fetchone()
                if row is not None:
                    return Submitted(row["id"], self._position(c, row["id"]) or 0, duplicate=True)
            if job.cache_key and cache_ttl > 0:
                # Only the same team's images, and never one a fallback made in place of the model asked for.
                hit = c.execute(
                    """SELECT result_image_id, result FROM jobs WHERE cache_key = ? AND team = ?
                       AND state = 'succeeded' AND finished_at >= ?
                       AND json_extract(result, '$.fallback_from') IS NULL
                       AND json_extract(result, '$.stale') IS NULL ORDER BY id DESC LIMIT 1""",
                    (job.cache_key, job.team, now - cache_ttl)).fetchone()
                if hit is not None:
                    # $0, so no budget applies, but it is an image like any other to the quotas.
                    denied = None if admission is None else self._admit(c, job, admission, now, costs=False)
                    return denied or self._answer_from_cache(c, job, inputs, hit, now)
            if admission is not None:
                denied = self._admit(c, job, admission, now)
                if denied is not None:
                    return denied
            served = c.execute("SELECT value FROM queue_meta WHERE key = 'served_round'").fetchone()[0]
            last = c.execute(
                "SELECT MAX(round) FROM jobs WHERE team = ? AND state = 'queued' AND lane = ?",
                (job.team, job.spec.lane.value),
            ).fetchone()[0]
            round_ = served if last is None else max(served, last + 1)
            job_id = c.execute(
                """INSERT INTO jobs (team, channel, user, platform, kind, request, delivery,
                       idempotency_key, cache_key, lane, state, round, max_attempts, available_at,
                       announce_by, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)""",
                (job.team, job.channel, job.user, job.platform, job.kind,
                 json.dumps(job.spec.to_json()), json.dumps(job.delivery), job.idempotency_key,
                 job.cache_key, job.spec.lane.value, round_, job.max_attempts, now,
                 now + ANNOUNCE_WINDOW if job.announced else None, now, now),
            ).lastrowid
            for image in inputs:
                self._insert_image(c, job_id, "input", image, parent=None, now=now)
            if admission is not None:
                self._hold(c, job_id, job, admission, now)
            return Submitted(job_id, self._position(c, job_id) or 0, duplicate=False)

    def _answer_from_cache(self, c: sqlite3.Connection, job: NewJob, inputs: list[CheckedImage],
                           hit: sqlite3.Row, now: float) -> Submitted:
        # A copy costs nothing: the original's hedge (and what it cost) is not this job's.
        result = {**without_call_costs(json.loads(hit["result"])), "cost_usd": "0", "cached": True, "elapsed_s": 0.0}
        job_id = c.execute(
            """INSERT INTO jobs (team, channel, user, platform, kind, request, delivery, idempotency_key,
                   cache_key, lane, state, round, max_attempts, available_at, result_image_id, result,
                   created_at, updated_at, finished_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'succeeded', 0, ?, ?, ?, ?, ?, ?, ?)""",
            (job.team, job.channel, job.user, job.platform, job.kind, json.dumps(job.spec.to_json()),
             json.dumps(job.delivery), job.idempotency_key, job.cache_key, job.spec.lane.value,
             job.max_attempts, now,
             hit["result_image_id"], json.dumps(result), now, now, now),
        ).lastrowid
        for image in inputs:  # kept, so a Reroll of this job sends the same pictures
            self._insert_image(c, job_id, "input", image, parent=None, now=now)
        self._insert_delivery(c, job_id, job.platform, NewDelivery(
            final_delivery_key(job_id), "result", {**result, "image_id": hit["result_image_id"]}), now)
        return Submitted(job_id, 0, duplicate=False, cached=True)

    def _admit(self, c: sqlite3.Connection, job: NewJob, admission: Admission, now: float,
               *, costs: bool = True) -> Denied | None:
        """Why `job` may not be admitted, or None; `costs=False` (a cache hit) checks the quotas alone."""
        queries = {
            "user_concurrent_jobs": (
                "SELECT COUNT(*) FROM jobs WHERE team = ? AND user = ? AND state IN ('queued', 'running')",
                (job.team, job.user)),
            "team_queued_jobs": ("SELECT COUNT(*) FROM jobs WHERE team = ? AND state = 'queued'", (job.team,)),
            # Jobs that made no image (failed, dead, cancelled) don't use up the day.
            "user_images_per_day": (
                """SELECT COUNT(*) FROM jobs WHERE team = ? AND user = ? AND created_at >= ?
                   AND state NOT IN ('failed', 'dead', 'cancelled')""",
                (job.team, job.user, period_start(Period.DAY, now))),
        }
        current = {name: c.execute(*queries[name]).fetchone()[0] for name in QUOTA_COUNTS
                   if getattr(admission.quotas, name) is not None}
        statuses = self._statuses(c, job.team, job.channel, job.user, now,
                                  admission.default_team_budget) if costs else []
        return admission_denial(statuses, admission.estimate_micros, admission.quotas, current, now)

    def _hold(self, c: sqlite3.Connection, job_id: int, job: NewJob, admission: Admission, now: float) -> None:
        default = admission.default_team_budget
        c.execute(
            """INSERT INTO holds (job_id, team, channel, user, amount_micros, price_version,
                   default_limit_micros, default_period, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (job_id, job.team, job.channel, job.user, admission.estimate_micros, admission.price_version,
             default.limit_micros if default else None, default.period.value if default else None, now),
        )
        self._ledger_row(c, job_id, "reservation", 0, (job.team, job.channel, job.user),
                         job.spec.to_json(), None, admission.estimate_micros, "held",
                         admission.price_version, now)

    @staticmethod
    def _ledger_row(c: sqlite3.Connection, job_id: int, entry: str, attempt: int,
                    who: tuple[str, str, str], spec: dict[str, Any], usage: Any, cost_micros: int,
                    status: str, price_version: str, now: float, hedge: int = 0) -> None:
        # OR IGNORE: (job, entry, attempt, hedge) is unique, so the same call reported
        # twice (a late worker, a retried write) is charged once.
        c.execute(
            """INSERT OR IGNORE INTO ledger (job_id, entry, attempt, team, channel, user, model, size, lane,
                   prompt_tokens, output_tokens, image_tokens, cost_micros, status, price_version,
                   created_at, hedge) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (job_id, entry, attempt, *who, spec["model_alias"], spec["size"], spec["lane"],
             usage.prompt_tokens if usage else None, usage.output_tokens if usage else None,
             usage.image_tokens if usage else None, cost_micros, status, price_version, now, hedge),
        )

    def _settle(self, c: sqlite3.Connection, row: sqlite3.Row, attempt: int, charge: Charge, now: float,
                *, hedge: int = 0) -> None:
        """Record what one provider call cost (one row per billed call)."""
        hold = c.execute("SELECT price_version FROM holds WHERE job_id = ?", (row["id"],)).fetchone()
        self._ledger_row(c, row["id"], "settlement", attempt, (row["team"], row["channel"], row["user"]),
                         json.loads(row["request"]), charge.usage, charge.cost_micros, charge.status,
                         hold["price_version"] if hold else "unmetered", now, hedge)

    def _close_hold(self, c: sqlite3.Connection, row: sqlite3.Row, charge: Charge | None, now: float) -> None:
        """Settle what the last attempt was charged and release the rest of the job's hold."""
        if charge is not None:
            self._settle(c, row, row["attempt"], charge, now)
        hold = c.execute("SELECT amount_micros, price_version FROM holds WHERE job_id = ?",
                         (row["id"],)).fetchone()
        if hold is None:
            return
        charged = c.execute("SELECT COALESCE(SUM(cost_micros), 0) FROM ledger WHERE job_id = ? AND entry = 'settlement'",
                            (row["id"],)).fetchone()[0]
        if charged > hold["amount_micros"]:
            log.warning("job %d cost %d micro-USD, more than the %d held for it", row["id"], charged,
                        hold["amount_micros"])
        self._ledger_row(c, row["id"], "release", 0, (row["team"], row["channel"], row["user"]),
                         json.loads(row["request"]), None, max(0, hold["amount_micros"] - charged), "released",
                         hold["price_version"], now)
        c.execute("DELETE FROM holds WHERE job_id = ?", (row["id"],))

    def _settle_lost_attempt(self, c: sqlite3.Connection, job_id: int, attempt: int, charge: Charge | None,
                             now: float) -> None:
        # The lease moved on, but Google billed this call all the same.
        row = c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if charge is not None and row is not None:
            self._settle(c, row, attempt, charge, now)

    def _statuses(self, c: sqlite3.Connection, team: str, channel: str | None, user: str | None,
                  now: float, default: Budget | None = None) -> list[BudgetStatus]:
        rows = c.execute(
            """SELECT * FROM budgets WHERE team = ? AND ((scope = 'team' AND scope_id = '')
                   OR (scope = 'channel' AND scope_id = ?) OR (scope = 'user' AND scope_id = ?))
               ORDER BY CASE scope WHEN 'team' THEN 0 WHEN 'channel' THEN 1 ELSE 2 END""",
            (team, channel, user),
        ).fetchall()
        statuses = []
        for budget in with_default_team_budget([_budget(r) for r in rows], default):
            column = {Scope.TEAM: None, Scope.CHANNEL: "channel", Scope.USER: "user"}[budget.scope]
            narrow = f" AND {column} = ?" if column else ""
            args = (team, budget.scope_id) if column else (team,)
            start = period_start(budget.period, now)
            spent = c.execute(
                f"""SELECT COALESCE(SUM(cost_micros), 0) FROM ledger
                    WHERE team = ?{narrow} AND entry = 'settlement' AND created_at >= ?""",
                (*args, start),
            ).fetchone()[0]
            held = c.execute(f"SELECT COALESCE(SUM(amount_micros), 0) FROM holds WHERE team = ?{narrow}",
                             args).fetchone()[0]
            statuses.append(BudgetStatus(budget, spent, held, next_reset(budget.period, now)))
        return statuses

    async def lease(self, worker_id: str, lease_seconds: float, *, only_job_id: int | None = None,
                    flex: bool = True) -> Job | None:
        return await self._run(self._lease, worker_id, lease_seconds, only_job_id, flex)

    def _lease(self, worker_id: str, lease_seconds: float, only_job_id: int | None, flex: bool) -> Job | None:
        now = self._clock()
        with self._write() as c:
            self._reclaim_expired(c, now)
            self._cancel_unannounced(c, now)
            row = c.execute(
                f"""UPDATE jobs SET state = 'running', attempt = attempt + 1, worker_id = :worker,
                        lease_until = :until, started_at = COALESCE(started_at, :now), updated_at = :now
                    WHERE id = (SELECT id FROM jobs WHERE state = 'queued'
                                AND lane IN {WORKER_LANES if flex else INTERACTIVE_LANES}
                                AND available_at <= :now AND announce_by IS NULL
                                AND (:only IS NULL OR id = :only)
                                ORDER BY lane = 'priority' DESC, round, id LIMIT 1)
                    RETURNING *, {HELD_MICROS}""",
                {"worker": worker_id, "until": now + lease_seconds, "now": now, "only": only_job_id},
            ).fetchone()
            if row is None:
                return None
            c.execute(
                "UPDATE queue_meta SET value = MAX(value, ?) WHERE key = 'served_round'", (row["round"],)
            )
            # Tells the adapter to show "generating" (one per attempt).
            self._insert_delivery(c, row["id"], row["platform"], NewDelivery(
                key=f"job:{row['id']}:started:{row['attempt']}", kind="started",
                payload={"attempt": row["attempt"]}), now)
            return _job(row)

    def _reclaim_expired(self, c: sqlite3.Connection, now: float) -> None:
        # A worker that died (or hung) past its lease gives the job back. The
        # lost attempt counts, so a job that kills its worker every time
        # ends up dead instead of looping forever.
        dead = c.execute(
            """UPDATE jobs SET state = 'dead', error_class = ?, worker_id = NULL, lease_until = NULL,
                   error_detail = 'the worker stopped responding (lease expired) on every attempt',
                   finished_at = ?, updated_at = ?
               WHERE state = 'running' AND lease_until < ? AND attempt >= max_attempts
               RETURNING *""",
            (LEASE_EXPIRED, now, now, now),
        ).fetchall()
        for row in dead:
            self._close_hold(c, row, None, now)
            self._insert_delivery(c, row["id"], row["platform"], NewDelivery(
                key=final_delivery_key(row["id"]), kind="failure",
                payload={"state": JobState.DEAD.value, "error_class": LEASE_EXPIRED}), now)
        c.execute(
            """UPDATE jobs SET state = 'queued', worker_id = NULL, lease_until = NULL,
                   available_at = ?, updated_at = ?
               WHERE state = 'running' AND lease_until < ?""",
            (now, now, now),
        )

    def _cancel_unannounced(self, c: sqlite3.Connection, now: float) -> None:
        # Announced jobs whose adapter never attached: the user may have been
        # told nothing was charged, so they never start (no message follows).
        self._cancel_where(c, "state = 'queued' AND announce_by <= ?", (now,), NOT_ANNOUNCED,
                           "its adapter never confirmed the request was announced", now)

    def _cancel_where(self, c: sqlite3.Connection, where: str, args: tuple[Any, ...], error_class: str,
                      detail: str, now: float) -> list[sqlite3.Row]:
        """Cancel the jobs matching `where` (queued ones: no attempt to settle) and release their holds."""
        rows = c.execute(
            f"""UPDATE jobs SET state = 'cancelled', error_class = ?, error_detail = ?, finished_at = ?,
                    updated_at = ? WHERE {where} RETURNING *""",
            (error_class, detail, now, now, *args)).fetchall()
        for row in rows:
            self._close_hold(c, row, None, now)
        return rows

    async def cancel_relaxed(self, detail: str) -> list[int]:
        def cancel() -> list[int]:
            now = self._clock()
            with self._write() as c:
                rows = self._cancel_where(c, "state = 'queued' AND lane <> 'standard'", (), LANE_UNAVAILABLE, detail, now)
                for row in rows:
                    self._insert_delivery(c, row["id"], row["platform"], NewDelivery(
                        final_delivery_key(row["id"]), "failure",
                        {"state": JobState.CANCELLED.value, "error_class": LANE_UNAVAILABLE, "detail": detail}), now)
                return sorted(row["id"] for row in rows)
        return await self._run(cancel)

    async def wait_for_jobs(self, timeout: float) -> None:
        # No notifications in SQLite: other processes' jobs are found by polling,
        # this process's own by the worker's wake-up.
        await asyncio.sleep(timeout)

    async def wait_for_deliveries(self, timeout: float) -> None:
        await asyncio.sleep(timeout)

    # -- Batch lane -------------------------------------------------------

    async def open_batch(self, limit: int, max_bytes: int = BATCH_INLINE_BYTES) -> Batch | None:
        def open_() -> Batch | None:
            now = self._clock()
            with self._write() as c:
                self._cancel_unannounced(c, now)
                waiting = "state = 'queued' AND lane = 'batch' AND available_at <= ? AND announce_by IS NULL"
                first = c.execute(
                    f"SELECT json_extract(request, '$.model_id') FROM jobs WHERE {waiting} ORDER BY id LIMIT 1",
                    (now,)).fetchone()
                if first is None:
                    return None
                model_id = first[0]
                candidates = c.execute(
                    f"""SELECT id, json_extract(request, '$.prompt') AS prompt, {_INPUT_IMAGES} FROM jobs
                        WHERE {waiting} AND json_extract(request, '$.model_id') = ? ORDER BY id LIMIT ?""",
                    (now, model_id, limit)).fetchall()
                ids = fitting(((r["id"], inline_request_bytes(r["image_bytes"], r["images"], r["prompt"]))
                               for r in candidates), max_bytes)
                batch_id = c.execute(
                    """INSERT INTO batches (model_id, state, job_ids, created_at, updated_at, next_poll_at)
                       VALUES (?, 'creating', '[]', ?, ?, ?)""", (model_id, now, now, now)).lastrowid
                # No lease expiry: a batch's jobs wait on the batch, however long Google takes.
                rows = c.execute(
                    f"""UPDATE jobs SET state = 'running', attempt = attempt + 1, worker_id = ?, batch_id = ?,
                            lease_until = NULL, started_at = COALESCE(started_at, ?), updated_at = ?
                        WHERE id IN ({",".join("?" * len(ids))}) RETURNING *, {HELD_MICROS}""",
                    (batch_worker(batch_id), batch_id, now, now, *ids)).fetchall()
                jobs = tuple(_job(r) for r in sorted(rows, key=lambda r: r["id"]))
                return Batch(batch_id, model_id, "creating", None, now, (), jobs)
        return await self._run(open_)

    async def split_batch(self, batch_id: int, job_ids: list[int]) -> Batch:
        def split() -> Batch:
            now = self._clock()
            with self._write() as c:
                old = c.execute("SELECT model_id, job_ids FROM batches WHERE id = ? AND state = 'creating'",
                                (batch_id,)).fetchone()
                if old is None:
                    raise ValueError(f"batch {batch_id} is not being created: it cannot be split")
                new_id = c.execute(
                    """INSERT INTO batches (model_id, state, job_ids, created_at, updated_at, next_poll_at)
                       VALUES (?, 'creating', '[]', ?, ?, ?)""", (old["model_id"], now, now, now)).lastrowid
                rows = c.execute(
                    f"""UPDATE jobs SET worker_id = ?, batch_id = ?, updated_at = ?
                        WHERE batch_id = ? AND worker_id = ? AND state = 'running'
                          AND id IN ({",".join("?" * len(job_ids))}) RETURNING *, {HELD_MICROS}""",
                    (batch_worker(new_id), new_id, now, batch_id, batch_worker(batch_id), *job_ids)).fetchall()
                moved = {r["id"] for r in rows}
                # The old batch's request order no longer names them.
                kept = [i for i in json.loads(old["job_ids"]) if i not in moved]
                c.execute("UPDATE batches SET job_ids = ?, updated_at = ? WHERE id = ?",
                          (json.dumps(kept), now, batch_id))
                jobs = tuple(_job(r) for r in sorted(rows, key=lambda r: r["id"]))
                return Batch(new_id, old["model_id"], "creating", None, now, (), jobs)
        return await self._run(split)

    async def batch_sending(self, batch_id: int, job_ids: list[int]) -> None:
        def sending() -> None:
            with self._write() as c:
                c.execute("UPDATE batches SET job_ids = ?, updated_at = ? WHERE id = ?",
                          (json.dumps(job_ids), self._clock(), batch_id))
        await self._run(sending)

    async def batch_submitted(self, batch_id: int, remote_name: str, poll_at: float) -> bool:
        def submitted() -> bool:
            now = self._clock()
            with self._write() as c:
                updated = c.execute(
                    """UPDATE batches SET state = 'submitted', remote_name = ?, updated_at = ?, next_poll_at = ?
                       WHERE id = ? AND (state = 'creating' OR (state = 'submitted' AND remote_name = ?))""",
                    (remote_name, now, poll_at, batch_id, remote_name)).rowcount
                if not updated:
                    return False  # given back meanwhile: its jobs are queued again
                for row in self._batch_jobs(c, batch_id):
                    self._insert_delivery(c, row["id"], row["platform"], NewDelivery(
                        key=f"job:{row['id']}:started:{row['attempt']}", kind="started",
                        payload={"attempt": row["attempt"], "batch": remote_name}), now)
                return True
        return await self._run(submitted)

    async def due_batches(self, poll_interval: float, stale_after: float) -> list[Batch]:
        def due() -> list[Batch]:
            now = self._clock()
            with self._write() as c:
                rows = c.execute(
                    """UPDATE batches SET next_poll_at = ? + ?
                       WHERE next_poll_at <= ? AND (state = 'submitted' OR (state = 'creating' AND updated_at <= ?))
                       RETURNING *""", (now, poll_interval, now, now - stale_after)).fetchall()
                return [Batch(r["id"], r["model_id"], r["state"], r["remote_name"], r["created_at"],
                              tuple(json.loads(r["job_ids"])), tuple(_job(j) for j in self._batch_jobs(c, r["id"])))
                        for r in sorted(rows, key=lambda r: r["id"])]
        return await self._run(due)

    @staticmethod
    def _batch_jobs(c: sqlite3.Connection, batch_id: int) -> list[sqlite3.Row]:
        """The batch's jobs still waiting on it (not yet finished, not retried elsewhere)."""
        return c.execute(f"""SELECT *, {HELD_MICROS} FROM jobs WHERE batch_id = ? AND state = 'running'
                             AND worker_id = ? ORDER BY id""", (batch_id, batch_worker(batch_id))).fetchall()

    async def close_batch(self, batch_id: int, remote_state: str) -> None:
        def close() -> None:
            with self._write() as c:
                c.execute("UPDATE batches SET state = 'closed', remote_state = ?, updated_at = ? WHERE id = ?",
                          (remote_state, self._clock(), batch_id))
        await self._run(close)

    async def extend_lease(self, job_id: int, worker_id: str, attempt: int, lease_seconds: float) -> bool:
        def extend() -> bool:
            now = self._clock()
            with self._write() as c:
                return c.execute(
                    """UPDATE jobs SET lease_until = ?, updated_at = ?
                       WHERE id = ? AND state = 'running' AND worker_id = ? AND attempt = ?""",
                    (now + lease_seconds, now, job_id, worker_id, attempt),
                ).rowcount == 1
        return await self._run(extend)

    def _take_back(self, c: sqlite3.Connection, job_id: int, worker_id: str, attempt: int) -> sqlite3.Row | None:
        """The job row if this worker still holds its lease, else None."""
        return c.execute(
            "SELECT * FROM jobs WHERE id = ? AND state = 'running' AND worker_id = ? AND attempt = ?",
            (job_id, worker_id, attempt),
        ).fetchone()

    async def complete(
        self, job_id: int, worker_id: str, attempt: int, image: CheckedImage,
        result: dict[str, Any], delivery: NewDelivery, charge: Charge | None,
    ) -> int | None:
        def complete() -> int | None:
            now = self._clock()
            with self._write() as c:
                row = self._take_back(c, job_id, worker_id, attempt)
                if row is None:
                    self._settle_lost_attempt(c, job_id, attempt, charge, now)
                    return None
                parent = json.loads(row["request"]).get("parent_image_id")
                image_id = self._insert_image(c, job_id, "output", image, parent=parent, now=now)
                c.execute(
                    """UPDATE jobs SET state = 'succeeded', result_image_id = ?, result = ?,
                           lease_until = NULL, finished_at = ?, updated_at = ?,
                           error_class = NULL, error_detail = NULL
                       WHERE id = ?""",
                    (image_id, json.dumps(result), now, now, job_id),
                )
                self._close_hold(c, row, charge, now)
                payload = {**delivery.payload, "image_id": image_id}
                self._insert_delivery(c, job_id, row["platform"],
                                      NewDelivery(delivery.key, delivery.kind, payload), now)
                return image_id
        return await self._run(complete)

    async def fail(
        self, job_id: int, worker_id: str, attempt: int, *, error_class: str,
        detail: str, retryable: bool, final_state: JobState, retry_at: float | None,
        delivery: NewDelivery, result: dict[str, Any] | None = None, charge: Charge | None = None,
    ) -> JobState | None:
        def fail() -> JobState | None:
            now = self._clock()
            kind, text, billed = error_class, detail, charge
            with self._write() as c:
                row = self._take_back(c, job_id, worker_id, attempt)
                if row is None:
                    self._settle_lost_attempt(c, job_id, attempt, charge, now)
                    return None
                state = after_failure(retryable, attempt, row["max_attempts"], final_state)
                if state is JobState.QUEUED and billed is not None and billed.cost_micros:
                    # This call was billed: the retry must still fit every budget, with its hold.
                    self._settle(c, row, attempt, billed, now)
                    billed = None
                    # The default team budget it was admitted under still caps it.
                    hold = c.execute("SELECT default_limit_micros, default_period FROM holds WHERE job_id = ?",
                                     (job_id,)).fetchone()
                    default = held_default_budget(row["team"], *hold) if hold else None
                    if over_budget(self._statuses(c, row["team"], row["channel"], row["user"], now, default)):
                        state, kind = JobState.FAILED, "budget_exhausted"
                        text = f"{text} (a billed attempt used up the budget, so it was not retried)"
                c.execute(
                    """UPDATE jobs SET state = ?, error_class = ?, error_detail = ?, result = ?,
                           worker_id = NULL, lease_until = NULL, available_at = ?,
                           finished_at = ?, updated_at = ?
                       WHERE id = ?""",
                    (state.value, kind, text[:2000],
                     json.dumps(result) if result is not None else None,
                     retry_at if retry_at is not None else now,
                     None if state is JobState.QUEUED else now, now, job_id),
                )
                if state.terminal:
                    self._close_hold(c, row, billed, now)
                    payload = {**delivery.payload, "state": state.value, "error_class": kind}
                    self._insert_delivery(c, job_id, row["platform"],
                                          NewDelivery(delivery.key, delivery.kind, payload), now)
                return state
        return await self._run(fail)

    async def settle_hedge(self, job_id: int, attempt: int, charge: Charge) -> None:
        def settle() -> None:
            with self._write() as c:
                row = c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is not None:
                    self._settle(c, row, attempt, charge, self._clock(), hedge=1)
        await self._run(settle)

    async def stale_result(self, team: str, cache_key: str) -> EarlierResult | None:
        def find() -> EarlierResult | None:
            hit = self.conn.execute(
                """SELECT id, result, result_image_id, finished_at FROM jobs
                   WHERE cache_key = ? AND team = ? AND state = 'succeeded'
                   AND json_extract(result, '$.fallback_from') IS NULL
                   AND json_extract(result, '$.stale') IS NULL ORDER BY id DESC LIMIT 1""",
                (cache_key, team)).fetchone()
            image = hit and self.conn.execute(f"{IMAGES_WITH_DATA} WHERE images.id = ?",
                                              (hit["result_image_id"],)).fetchone()
            if not image:
                return None
            return EarlierResult(hit["id"], _image(image), json.loads(hit["result"]), hit["finished_at"])
        return await self._run(find)

    async def cancel(self, job_id: int) -> bool:
        def cancel() -> bool:
            now = self._clock()
            with self._write() as c:
                row = c.execute(
                    """UPDATE jobs SET state = 'cancelled', finished_at = ?, updated_at = ?
                       WHERE id = ? AND state = 'queued' RETURNING *""",
                    (now, now, job_id),
                ).fetchone()
                if row is None:
                    return False
                self._close_hold(c, row, None, now)
                return True
        return await self._run(cancel)

    async def relane(self, job_id: int, worker_id: str, attempt: int, lane: Lane, delivery: NewDelivery) -> bool:
        def relane() -> bool:
            now = self._clock()
            with self._write() as c:
                row = self._take_back(c, job_id, worker_id, attempt)
                if row is None:
                    return False
                c.execute(
                    """UPDATE jobs SET lane = ?, request = json_set(request, '$.lane', ?), state = 'queued',
                           worker_id = NULL, lease_until = NULL, available_at = ?, updated_at = ?
                       WHERE id = ?""",
                    (lane.value, lane.value, now, now, job_id))
                self._insert_delivery(c, job_id, row["platform"], delivery, now)
                return True
        return await self._run(relane)

    async def get_job(self, job_id: int) -> Job | None:
        def get() -> Job | None:
            row = self.conn.execute(f"SELECT *, {HELD_MICROS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return _job(row) if row else None
        return await self._run(get)

    async def position(self, job_id: int) -> int | None:
        return await self._run(self._position, self.conn, job_id)

    @staticmethod
    def _position(c: sqlite3.Connection, job_id: int) -> int | None:
        row = c.execute(
            """SELECT 1 + (SELECT COUNT(*) FROM jobs o WHERE o.state = 'queued' AND o.lane = j.lane
                           AND (o.round < j.round OR (o.round = j.round AND o.id < j.id)))
               FROM jobs j WHERE j.id = ? AND j.state = 'queued'""",
            (job_id,),
        ).fetchone()
        return row[0] if row else None

    async def error_counts(self, since: float) -> dict[str, int]:
        def counts() -> dict[str, int]:
            rows = self.conn.execute(
                """SELECT error_class, COUNT(*) FROM jobs WHERE error_class IS NOT NULL AND updated_at >= ?
                   GROUP BY error_class ORDER BY COUNT(*) DESC""", (since,)).fetchall()
            return {kind: n for kind, n in rows}
        return await self._run(counts)

    async def counts_by_state(self) -> dict[str, int]:
        def counts() -> dict[str, int]:
            rows = self.conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
            return {state: n for state, n in rows}
        return await self._run(counts)

    # -- money ----------------------------------------------------------

    async def set_budget(self, budget: Budget, updated_by: str) -> None:
        def put() -> None:
            with self._write() as c:
                c.execute(
                    """INSERT INTO budgets (team, scope, scope_id, limit_micros, period, soft_threshold,
                           updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (team, scope, scope_id) DO UPDATE SET limit_micros = excluded.limit_micros,
                           period = excluded.period, soft_threshold = excluded.soft_threshold,
                           updated_by = excluded.updated_by, updated_at = excluded.updated_at""",
                    (budget.team, budget.scope.value, budget.scope_id, budget.limit_micros,
                     budget.period.value, budget.soft_threshold, updated_by, self._clock()),
                )
        await self._run(put)

    async def delete_budget(self, team: str, scope: Scope, scope_id: str) -> bool:
        def delete() -> bool:
            with self._write() as c:
                return c.execute("DELETE FROM budgets WHERE team = ? AND scope = ? AND scope_id = ?",
                                 (team, scope.value, scope_id)).rowcount == 1
        return await self._run(delete)

    async def budgets(self, team: str) -> list[Budget]:
        def get() -> list[Budget]:
            rows = self.conn.execute("SELECT * FROM budgets WHERE team = ? ORDER BY scope, scope_id",
                                     (team,)).fetchall()
            return [_budget(r) for r in rows]
        return await self._run(get)

    async def budget_statuses(self, team: str, channel: str | None, user: str | None,
                              default_team_budget: Budget | None = None) -> list[BudgetStatus]:
        return await self._run(lambda: self._statuses(self.conn, team, channel, user, self._clock(),
                                                      default_team_budget))

    async def spent(self, team: str, *, user: str | None = None, since: float) -> int:
        def get() -> int:
            narrow, args = (" AND user = ?", (team, user, since)) if user else ("", (team, since))
            return self.conn.execute(
                f"""SELECT COALESCE(SUM(cost_micros), 0) FROM ledger
                    WHERE team = ?{narrow} AND entry = 'settlement' AND created_at >= ?""", args,
            ).fetchone()[0]
        return await self._run(get)

    async def record_moderation(self, team: str, channel: str, user: str, reason: str, prompt: str | None) -> None:
        def put() -> None:
            with self._write() as c:
                c.execute("""INSERT INTO moderation_log (team, channel, user, reason, prompt, created_at)
                             VALUES (?, ?, ?, ?, ?, ?)""", (team, channel, user, reason, prompt, self._clock()))
        await self._run(put)

    async def moderation_log(self, team: str) -> list[dict[str, Any]]:
        def get() -> list[dict[str, Any]]:
            rows = self.conn.execute("SELECT * FROM moderation_log WHERE team = ? ORDER BY id", (team,)).fetchall()
            return [dict(r) for r in rows]
        return await self._run(get)

    async def ledger(self, *, team: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        def get() -> list[dict[str, Any]]:
            rows = self.conn.execute(
                """SELECT * FROM ledger WHERE (:team IS NULL OR team = :team)
                   AND (:since IS NULL OR created_at >= :since) ORDER BY id""",
                {"team": team, "since": since},
            ).fetchall()
            return [dict(r) for r in rows]
        return await self._run(get)

    # -- platform context -----------------------------------------------

    async def attach_delivery(self, job_id: int, context: dict[str, Any]) -> bool:
        def attach() -> bool:
            with self._write() as c:
                row = c.execute("SELECT delivery, state FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is None:
                    return False
                merged = {**json.loads(row["delivery"]), **context}
                # An announced job waits for this before it may be leased (or is cancelled).
                c.execute("UPDATE jobs SET delivery = ?, announce_by = NULL WHERE id = ?",
                          (json.dumps(merged), job_id))
                return row["state"] != JobState.CANCELLED.value
        return await self._run(attach)

    async def remember_thread(self, platform: str, team: str, channel: str, thread_id: str, image_id: int) -> None:
        def put() -> None:
            with self._write() as c:
                c.execute(
                    """INSERT INTO threads (platform, team, channel, thread_id, image_id, updated_at)
                       VALUES (?, ?, ?, ?, ?, ?)
                       ON CONFLICT (platform, team, channel, thread_id)
                       DO UPDATE SET image_id = excluded.image_id, updated_at = excluded.updated_at""",
                    (platform, team, channel, thread_id, image_id, self._clock()),
                )
        await self._run(put)

    async def thread_image(self, platform: str, team: str, channel: str, thread_id: str) -> int | None:
        def get() -> int | None:
            row = self.conn.execute(
                """SELECT image_id FROM threads
                   WHERE platform = ? AND team = ? AND channel = ? AND thread_id = ?""",
                (platform, team, channel, thread_id),
            ).fetchone()
            return row[0] if row else None
        return await self._run(get)

    async def save_confirmation(self, token: str, team: str, user: str, request: dict[str, Any],
                                ttl_seconds: float) -> None:
        def put() -> None:
            now = self._clock()
            with self._write() as c:
                c.execute("DELETE FROM confirmations WHERE expires_at < ?", (now,))
                c.execute("INSERT INTO confirmations (token, team, user, request, expires_at) VALUES (?, ?, ?, ?, ?)",
                          (token, team, user, json.dumps(request), now + ttl_seconds))
        await self._run(put)

    async def take_confirmation(self, token: str, team: str, user: str) -> dict[str, Any] | str:
        def take() -> dict[str, Any] | str:
            with self._write() as c:
                row = c.execute("SELECT * FROM confirmations WHERE token = ? AND expires_at >= ?",
                                (token, self._clock())).fetchone()
                if row is None:
                    return "expired"
                if (row["team"], row["user"]) != (team, user):
                    return "not_yours"  # left untouched for the person who asked
                c.execute("DELETE FROM confirmations WHERE token = ?", (token,))
                return json.loads(row["request"])
        return await self._run(take)

    # -- images ---------------------------------------------------------

    @staticmethod
    def _insert_image(c: sqlite3.Connection, job_id: int, role: str, image: CheckedImage,
                      *, parent: int | None, now: float) -> int:
        # Bytes once per content, addressed by their own digest (never the caller's).
        digest = hashlib.sha256(image.data).hexdigest()
        c.execute("INSERT OR IGNORE INTO blobs (sha256, data) VALUES (?, ?)", (digest, image.data))
        return c.execute(
            """INSERT INTO images (job_id, role, parent_image_id, mime, width, height, size_bytes,
                   sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (job_id, role, parent, image.mime, image.width, image.height, len(image.data), digest, now),
        ).lastrowid

    async def get_image(self, image_id: int) -> StoredImage | None:
        def get() -> StoredImage | None:
            row = self.conn.execute(f"{IMAGES_WITH_DATA} WHERE images.id = ?", (image_id,)).fetchone()
            return _image(row) if row else None
        return await self._run(get)

    async def job_inputs(self, job_id: int) -> list[StoredImage]:
        def get() -> list[StoredImage]:
            rows = self.conn.execute(
                f"{IMAGES_WITH_DATA} WHERE images.job_id = ? AND images.role = 'input' ORDER BY images.id",
                (job_id,)
            ).fetchall()
            return [_image(r) for r in rows]
        return await self._run(get)

    # -- outbox ---------------------------------------------------------

    @staticmethod
    def _insert_delivery(c: sqlite3.Connection, job_id: int, platform: str,
                         delivery: NewDelivery, now: float) -> None:
        # OR IGNORE on the unique key: a job finished twice (a retry racing a
        # late worker) still posts once.
        c.execute(
            """INSERT OR IGNORE INTO outbox (key, job_id, platform, kind, payload, available_at, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (delivery.key, job_id, platform, delivery.kind, json.dumps(delivery.payload), now, now),
        )

    async def take_rate_slot(self, key: str, limit: int, window: float) -> float:
        def take() -> float:
            now = self._clock()
            with self._write() as c:
                c.execute("DELETE FROM rate_slots WHERE key = ? AND taken_at <= ?", (key, now - window))
                count, oldest = c.execute("SELECT COUNT(*), MIN(taken_at) FROM rate_slots WHERE key = ?",
                                          (key,)).fetchone()
                if count < limit:
                    c.execute("INSERT INTO rate_slots (key, taken_at) VALUES (?, ?)", (key, now))
                    return 0.0
                return max(0.01, oldest + window - now)
        return await self._run(take)

    async def raise_alert(self, key: str, platforms: list[str], text: str) -> bool:
        def raise_() -> bool:
            now = self._clock()
            with self._write() as c:
                return sum(c.execute(
                    """INSERT OR IGNORE INTO outbox (key, job_id, platform, kind, payload, available_at, created_at)
                       VALUES (?, NULL, ?, 'alert', ?, ?, ?)""",
                    (f"{key}:{platform}", platform, json.dumps({"text": text}), now, now)).rowcount
                    for platform in platforms) > 0
        return await self._run(raise_)

    async def claim_deliveries(self, platforms: list[str], limit: int, lease_seconds: float) -> list[Delivery]:
        def claim() -> list[Delivery]:
            now = self._clock()
            marks = ",".join("?" * len(platforms))
            with self._write() as c:
                # Claiming pushes available_at forward: a dispatcher that dies
                # mid-send leaves the row to be picked up again after the lease.
                rows = c.execute(
                    f"""UPDATE outbox SET available_at = ?, attempts = attempts + 1
                        WHERE id IN (SELECT id FROM outbox WHERE state = 'pending'
                                     AND platform IN ({marks}) AND available_at <= ?
                                     ORDER BY id LIMIT ?)
                        RETURNING *""",
                    (now + lease_seconds, *platforms, now, limit),
                ).fetchall()
            return [Delivery(r["id"], r["key"], r["job_id"], r["platform"], r["kind"],
                             json.loads(r["payload"]), r["attempts"]) for r in sorted(rows, key=lambda r: r["id"])]
        if not platforms:
            return []
        return await self._run(claim)

    async def mark_delivered(self, delivery_id: int) -> None:
        def mark() -> None:
            now = self._clock()
            with self._write() as c:
                c.execute("UPDATE outbox SET state = 'delivered', delivered_at = ? WHERE id = ?",
                          (now, delivery_id))
        await self._run(mark)

    async def retry_delivery(self, delivery_id: int, error: str, retry_at: float, max_attempts: int) -> None:
        def retry() -> None:
            with self._write() as c:
                c.execute(
                    """UPDATE outbox SET last_error = ?, available_at = ?,
                           state = CASE WHEN attempts >= ? THEN 'failed' ELSE 'pending' END
                       WHERE id = ?""",
                    (error[:2000], retry_at, max_attempts, delivery_id),
                )
        await self._run(retry)


# A job's input images for the Batch lane's size limit: how many and their bytes,
# the image an edit changes (named in its request) included.
_INPUT_IMAGES = """
    (SELECT COUNT(*) FROM images i WHERE i.job_id = jobs.id AND i.role = 'input')
      + (json_extract(request, '$.parent_image_id') IS NOT NULL) AS images,
    (SELECT COALESCE(SUM(i.size_bytes), 0) FROM images i WHERE i.job_id = jobs.id AND i.role = 'input')
      + COALESCE((SELECT p.size_bytes FROM images p WHERE p.id = json_extract(request, '$.parent_image_id')), 0)
      AS image_bytes"""


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"], team=row["team"], channel=row["channel"], user=row["user"],
        platform=row["platform"], kind=row["kind"],
        spec=GenerationSpec.from_json(json.loads(row["request"])),
        state=JobState(row["state"]), attempt=row["attempt"], max_attempts=row["max_attempts"],
        delivery=json.loads(row["delivery"]), created_at=row["created_at"],
        lease_until=row["lease_until"], worker_id=row["worker_id"], started_at=row["started_at"],
        finished_at=row["finished_at"], result_image_id=row["result_image_id"],
        result=json.loads(row["result"]) if row["result"] else None,
        error_class=row["error_class"], error_detail=row["error_detail"], held_micros=row["held_micros"],
        cache_key=row["cache_key"],
    )


def _budget(row: sqlite3.Row) -> Budget:
    return Budget(team=row["team"], scope=Scope(row["scope"]), scope_id=row["scope_id"],
                  limit_micros=row["limit_micros"], period=Period(row["period"]),
                  soft_threshold=row["soft_threshold"])


def _image(row: sqlite3.Row) -> StoredImage:
    return StoredImage(
        id=row["id"], job_id=row["job_id"], role=row["role"], mime=row["mime"],
        width=row["width"], height=row["height"], sha256=row["sha256"], data=bytes(row["data"]),
        parent_image_id=row["parent_image_id"],
    )
