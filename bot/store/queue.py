"""The job queue: submit, fair leasing, finishing, cancelling; written once for every connector.

Fair order: each job gets a `round` at submit. A team's next job goes one round
after its last queued job, but never before the round being served now, so a
team with one job waits at most one round behind a team with a hundred.
Leasing takes the lowest (round, id), Priority first: round-robin across teams,
FIFO within a team, and a job's position is a single indexed count.

Rows a statement takes are locked where the database has row locks ({skip_locked}
in bot/store/sql), so concurrent workers each get different jobs; a worker
finishing a job locks its row first (`_take_back`), so a reclaim can never
requeue a job under a worker that is completing it. All timestamps come from
the injected clock, never from the database's.
"""

from __future__ import annotations

import hashlib
from typing import Any

from bot.money.admission import Admission, Charge, Denied
from bot.store.chat import ChatOperations
from bot.store.dashboard import DashboardOperations
from bot.store.ledger import LedgerOperations
from bot.store.lookups import LookupOperations
from bot.store.outbox import OutboxOperations
from bot.store.ports import (
    ANNOUNCE_WINDOW,
    LANE_UNAVAILABLE,
    LEASE_EXPIRED,
    NOT_ANNOUNCED,
    after_failure,
    final_delivery_key,
)
from bot.store.savings import SavingsOperations
from bot.store.tx import JOBS, OUTBOX, Json, Row, Tx, job, reads, writes
from bot.types import (
    CheckedImage,
    Job,
    JobState,
    Lane,
    NewDelivery,
    NewJob,
    Submitted,
)

# How often (seconds of the store's clock) leases look for lapsed leases and unannounced jobs.
SWEEP_EVERY = 1.0


class QueueOperations(
    LookupOperations, LedgerOperations, OutboxOperations, ChatOperations, DashboardOperations, SavingsOperations
):
    @reads
    async def job_for_key(self, tx: Tx, idempotency_key: str, window: float | None) -> int | None:
        since = self._clock() - window if window is not None else float("-inf")
        return await tx.value("job_for_key", key=idempotency_key, since=since)

    @writes
    async def submit(
        self, tx: Tx, job: NewJob, inputs: list[CheckedImage], admission: Admission | None = None, cache_ttl: float = 0
    ) -> Submitted | Denied:
        now = self._clock()
        # Held to commit: the checks below and the hold they admit cannot
        # interleave with another submit (or billed retry) for this team.
        await tx.lock(f"imagine-team:{job.team}")
        if job.idempotency_key is not None:
            if job.idempotency_window is not None:
                # Past its window the key is free again: the old job keeps its row under another key.
                await tx.run("free_old_key", key=job.idempotency_key, before=now - job.idempotency_window)
            duplicate = await _duplicate(tx, job.idempotency_key)
            if duplicate is not None:
                return duplicate
        if job.cache_key and cache_ttl > 0:
            # Only the same team's images, and never one a fallback made in place of the model asked for.
            hit = await tx.one("cache_hit", cache_key=job.cache_key, team=job.team, since=now - cache_ttl)
            if hit is not None:
                # $0, so no budget applies, but it is an image like any other to the quotas.
                denied = None if admission is None else await self._admit(tx, job, admission, now, costs=False)
                return denied or await self._answer_from_cache(tx, job, inputs, hit, now)
        if admission is not None:
            denied = await self._admit(tx, job, admission, now)
            if denied is not None:
                return denied
        served = await tx.value("served_round")
        last = await tx.value("team_last_round", team=job.team, lane=job.spec.lane.value)
        job_id = await _insert_job(
            tx,
            job,
            now,
            state=JobState.QUEUED,
            round=served if last is None else max(served, last + 1),
            announce_by=now + ANNOUNCE_WINDOW if job.announced else None,
        )
        if job_id is None:
            return await _lost_race(tx, job)
        for each in inputs:
            await _insert_image(tx, job_id, "input", each, parent=None, now=now)
        if admission is not None:
            await self._hold(tx, job_id, job, admission, now)
        await tx.notify(JOBS)
        return Submitted(job_id, await tx.value("position", id=job_id) or 0, duplicate=False)

    async def _answer_from_cache(
        self, tx: Tx, job: NewJob, inputs: list[CheckedImage], hit: Row, now: float
    ) -> Submitted:
        # A copy costs nothing: the original's hedge (and what it cost) is not this job's.
        result = {**without_call_costs(hit["result"]), "cost_usd": "0", "cached": True, "elapsed_s": 0.0}
        job_id = await _insert_job(
            tx,
            job,
            now,
            state=JobState.SUCCEEDED,
            round=0,
            result_image_id=hit["result_image_id"],
            result=Json(result),
            finished_at=now,
        )
        if job_id is None:
            return await _lost_race(tx, job)
        for each in inputs:  # kept, so a Reroll of this job sends the same pictures
            await _insert_image(tx, job_id, "input", each, parent=None, now=now)
        await self._insert_delivery(
            tx,
            job_id,
            job.platform,
            NewDelivery(final_delivery_key(job_id), "result", {**result, "image_id": hit["result_image_id"]}),
            now,
        )
        return Submitted(job_id, 0, duplicate=False, cached=True)

    async def lease(
        self, worker_id: str, lease_seconds: float, *, only_job_id: int | None = None, flex: bool = True
    ) -> Job | None:
        leased = await self.lease_many([(worker_id, flex)], lease_seconds, only_job_id=only_job_id)
        return leased[0] if leased else None

    @writes
    async def lease_many(
        self, tx: Tx, takers: list[tuple[str, bool]], lease_seconds: float, *, only_job_id: int | None = None
    ) -> list[Job]:
        now = self._clock()
        last = getattr(self, "_last_sweep", None)
        if last is None or not now - SWEEP_EVERY < last <= now:
            # At most once a second per store: two statements that find nothing on almost every
            # lease of a busy worker. A lapsed lease or an unannounced job waits a second more.
            self._last_sweep = now
            await self._reclaim_expired(tx, now)
            await self._cancel_unannounced(tx, now)
        chosen = await _choose(tx, takers, now, only_job_id)
        if not chosen:
            return []
        rows = await self._take(tx, chosen, now + lease_seconds, now)
        order = {job_id: n for n, job_id in enumerate(chosen)}
        rows.sort(key=lambda r: order[r["id"]])
        return [job(r) for r in rows]

    async def _take(self, tx: Tx, chosen: dict[int, str], until: float, now: float) -> list[Row]:
        """Lease the chosen jobs (job id -> worker) with their "started" deliveries, and move the
        served round on; their rows, in any order. (PostgreSQL does it in one statement.)"""
        workers = Json({str(job_id): worker for job_id, worker in chosen.items()})
        rows = await tx.all("lease_take", workers=workers, until=until, now=now, ids=list(chosen))
        # Tells the adapters to show "generating" (one per attempt), for every job taken, in one statement.
        if await tx.run("insert_started", now=now, ids=list(chosen)):
            await tx.notify(OUTBOX)
        # Last, so the one row every lease may update is held for as short a time as possible.
        await tx.run("advance_served_round", round=max(r["round"] for r in rows))
        return rows

    async def _reclaim_expired(self, tx: Tx, now: float) -> None:
        # A worker that died (or hung) past its lease gives the job back. The
        # lost attempt counts, so a job that kills its worker every time
        # ends up dead instead of looping forever. Rows another transaction
        # holds (a worker finishing just now, another reclaimer) are skipped.
        expired = [r["id"] for r in await tx.all("reclaim_pick", now=now)]
        if not expired:
            return
        for row in await tx.all("reclaim_dead", error_class=LEASE_EXPIRED, now=now, ids=expired):
            await self._close_hold(tx, row, None, now)
            await self._insert_delivery(
                tx,
                row["id"],
                row["platform"],
                NewDelivery(
                    key=final_delivery_key(row["id"]),
                    kind="failure",
                    payload={"state": JobState.DEAD.value, "error_class": LEASE_EXPIRED},
                ),
                now,
            )
        if await tx.run("reclaim_requeue", now=now, ids=expired):
            await tx.notify(JOBS)

    async def _cancel_unannounced(self, tx: Tx, now: float) -> None:
        # Announced jobs whose adapter never attached: the user may have been
        # told nothing was charged, so they never start (no message follows).
        await self._cancel_picked(
            tx,
            await tx.all("unannounced_pick", now=now),
            NOT_ANNOUNCED,
            "its adapter never confirmed the request was announced",
            now,
        )

    async def _cancel_picked(self, tx: Tx, picked: list[Row], error_class: str, detail: str, now: float) -> list[Row]:
        """Cancel these queued jobs (no attempt to settle) and release their holds."""
        if not picked:
            return []
        rows = await tx.all(
            "cancel_jobs", error_class=error_class, detail=detail, now=now, ids=[r["id"] for r in picked]
        )
        for row in rows:
            await self._close_hold(tx, row, None, now)
        return rows

    @writes
    async def cancel_relaxed(self, tx: Tx, detail: str) -> list[int]:
        now = self._clock()
        rows = await self._cancel_picked(tx, await tx.all("relaxed_pick"), LANE_UNAVAILABLE, detail, now)
        for row in rows:
            await self._insert_delivery(
                tx,
                row["id"],
                row["platform"],
                NewDelivery(
                    final_delivery_key(row["id"]),
                    "failure",
                    {"state": JobState.CANCELLED.value, "error_class": LANE_UNAVAILABLE, "detail": detail},
                ),
                now,
            )
        return sorted(row["id"] for row in rows)

    @writes
    async def extend_lease(self, tx: Tx, job_id: int, worker_id: str, attempt: int, lease_seconds: float) -> bool:
        now = self._clock()
        return (
            await tx.run(
                "extend_lease", until=now + lease_seconds, now=now, id=job_id, worker=worker_id, attempt=attempt
            )
            == 1
        )

    @writes
    async def complete(
        self,
        tx: Tx,
        job_id: int,
        worker_id: str,
        attempt: int,
        image: CheckedImage,
        result: dict[str, Any],
        delivery: NewDelivery,
        charge: Charge | None,
    ) -> int | None:
        now = self._clock()
        row = await tx.one("take_back", id=job_id, worker=worker_id, attempt=attempt)
        if row is None:
            await self._settle_lost_attempt(tx, job_id, attempt, charge, now)
            return None
        image_id = await _insert_image(
            tx, job_id, "output", image, parent=row["request"].get("parent_image_id"), now=now
        )
        await tx.run("succeed_job", image_id=image_id, result=Json(result), now=now, id=job_id)
        await self._close_hold(tx, row, charge, now)
        await self._insert_delivery(
            tx,
            job_id,
            row["platform"],
            NewDelivery(delivery.key, delivery.kind, {**delivery.payload, "image_id": image_id}),
            now,
        )
        return image_id

    @writes
    async def fail(
        self,
        tx: Tx,
        job_id: int,
        worker_id: str,
        attempt: int,
        *,
        error_class: str,
        detail: str,
        retryable: bool,
        final_state: JobState,
        retry_at: float | None,
        delivery: NewDelivery,
        result: dict[str, Any] | None = None,
        charge: Charge | None = None,
        refund_attempt: bool = False,
    ) -> JobState | None:
        now = self._clock()
        kind, text, billed = error_class, detail, charge
        row = await tx.one("take_back", id=job_id, worker=worker_id, attempt=attempt)
        if row is None:
            await self._settle_lost_attempt(tx, job_id, attempt, charge, now)
            return None
        # Given back only when nothing was billed: a billed attempt's settlement is keyed by its
        # number, and the retry's must not collide with it.
        refund = 1 if refund_attempt and not (charge and charge.cost_micros) else 0
        state = after_failure(retryable, attempt - refund, row["max_attempts"], final_state)
        if state is JobState.QUEUED and billed is not None and billed.cost_micros:
            # This call was billed (settled now): the retry must still fit every budget, with its hold.
            unfit = await self._billed_retry_fits(tx, row, attempt, billed, now)
            billed = None
            if unfit is not None:
                state, kind = JobState.FAILED, "budget_exhausted"
                text = f"{text} ({unfit})"
        await tx.run(
            "fail_job",
            state=state.value,
            error_class=kind,
            detail=text[:2000],
            result=Json(result) if result is not None else None,
            available_at=retry_at if retry_at is not None else now,
            finished_at=None if state is JobState.QUEUED else now,
            refund=refund,
            now=now,
            id=job_id,
        )
        if state is JobState.QUEUED:
            await tx.notify(JOBS)
        if state.terminal:
            await self._close_hold(tx, row, billed, now)
            await self._insert_delivery(
                tx,
                job_id,
                row["platform"],
                NewDelivery(
                    delivery.key, delivery.kind, {**delivery.payload, "state": state.value, "error_class": kind}
                ),
                now,
            )
        return state

    @writes
    async def settle_hedge(self, tx: Tx, job_id: int, attempt: int, charge: Charge) -> None:
        row = await tx.one("job_row", id=job_id)
        if row is not None:
            await self._settle(tx, row, attempt, charge, self._clock(), hedge=1)

    @writes
    async def cancel(self, tx: Tx, job_id: int, *, tell: NewDelivery | None = None) -> bool:
        now = self._clock()
        row = await tx.one("cancel_queued", now=now, id=job_id)
        if row is None:
            return False
        await self._close_hold(tx, row, None, now)
        if tell is not None:
            await self._insert_delivery(tx, job_id, row["platform"], tell, now)
        return True

    @writes
    async def relane(
        self, tx: Tx, job_id: int, worker_id: str, attempt: int, lane: Lane, delivery: NewDelivery
    ) -> bool:
        now = self._clock()
        row = await tx.one("take_back", id=job_id, worker=worker_id, attempt=attempt)
        if row is None:
            return False
        await tx.run("relane_job", lane=lane.value, now=now, id=job_id)
        await self._insert_delivery(tx, job_id, row["platform"], delivery, now)
        return True


def without_call_costs(result: dict[str, Any]) -> dict[str, Any]:
    """A finished job's result, less what its own calls cost beside the image (a hedge)."""
    return {key: value for key, value in result.items() if key != "hedge"}


async def _insert_job(
    tx: Tx,
    job: NewJob,
    now: float,
    *,
    state: JobState,
    round: int,
    announce_by: float | None = None,
    result_image_id: int | None = None,
    result: Json | None = None,
    finished_at: float | None = None,
) -> int | None:
    """The new job's id, or None when its idempotency key is already taken."""
    return await tx.value(
        "insert_job",
        team=job.team,
        channel=job.channel,
        user=job.user,
        platform=job.platform,
        kind=job.kind,
        request=Json(job.spec.to_json()),
        delivery=Json(job.delivery),
        idempotency_key=job.idempotency_key,
        cache_key=job.cache_key,
        lane=job.spec.lane.value,
        state=state.value,
        round=round,
        max_attempts=job.max_attempts,
        now=now,
        announce_by=announce_by,
        result_image_id=result_image_id,
        result=result,
        finished_at=finished_at,
    )


async def _duplicate(tx: Tx, idempotency_key: str) -> Submitted | None:
    job_id = await tx.value("job_by_key", key=idempotency_key)
    if job_id is None:
        return None
    return Submitted(job_id, await tx.value("position", id=job_id) or 0, duplicate=True)


async def _lost_race(tx: Tx, job: NewJob) -> Submitted:
    """Another transaction inserted the same idempotency key after our check
    (it can, from another team's lock): answer with its job, as if we had seen it."""
    assert job.idempotency_key is not None  # the only key a job insert can collide on
    duplicate = await _duplicate(tx, job.idempotency_key)
    assert duplicate is not None  # committed: the insert waited for it
    return duplicate


async def _insert_image(tx: Tx, job_id: int, role: str, image: CheckedImage, *, parent: int | None, now: float) -> int:
    # Bytes once per content, addressed by their own digest (never the caller's).
    digest = hashlib.sha256(image.data).hexdigest()
    await tx.run("insert_blob", sha256=digest, data=image.data)
    return await tx.value(
        "insert_image",
        job_id=job_id,
        role=role,
        parent=parent,
        mime=image.mime,
        width=image.width,
        height=image.height,
        size_bytes=len(image.data),
        sha256=digest,
        now=now,
    )


async def _choose(tx: Tx, takers: list[tuple[str, bool]], now: float, only: int | None) -> dict[int, str]:
    """The next jobs in fair order for these takers (worker id, may it run Flex), as job id -> worker:
    a Flex job only to a taker that may run one. Rows are locked where rows lock."""
    flexible = [worker for worker, flex in takers if flex]
    fixed = [worker for worker, flex in takers if not flex]
    chosen: dict[int, str] = {}
    picked = await tx.all("lease_pick", flex=bool(flexible), now=now, only=only, limit=len(takers))
    for row in picked:
        if row["lane"] == Lane.FLEX.value:
            if flexible:
                chosen[row["id"]] = flexible.pop(0)
        elif fixed or flexible:
            chosen[row["id"]] = (fixed or flexible).pop(0)
    if fixed and len(chosen) < len(picked):
        # Flex jobs were passed over for want of a taker: the others may still find a job behind them.
        for row in await tx.all("lease_pick", flex=False, now=now, only=only, limit=len(takers)):
            if fixed and row["id"] not in chosen:
                chosen[row["id"]] = fixed.pop(0)
    return chosen
