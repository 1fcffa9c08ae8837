"""The store's ports, one per role, and `Store`, all of them at once.

Callers name the narrowest port they need; a store (bot/store/manager.py)
implements every one. Every method is a coroutine so the SQLite store (a worker
thread) and the PostgreSQL store (a native async driver) satisfy the same
Protocols and the same contract tests (tests/integration/store).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bot.ledger_view import LedgerFilter
from bot.money.admission import Admission, Charge, Denied
from bot.money.budgets import Budget, BudgetStatus, Scope
from bot.money.quotas import QuotaLimits
from bot.store.batch_sizing import BATCH_INLINE_BYTES
from bot.teams import LinkResult, TeamLink, TeamRef, UnlinkResult
from bot.types import (
    Batch,
    CheckedImage,
    DeletedImage,
    Delivery,
    EarlierResult,
    GalleryImage,
    Job,
    JobState,
    Lane,
    NewDelivery,
    NewJob,
    StorageSizes,
    StoredImage,
    Submitted,
)

# The error class of a job whose worker died (or hung) on every attempt.
LEASE_EXPIRED = "lease_expired"
# How long an announced job waits for its adapter's attach_delivery. Past it
# the job is cancelled and released, never started: its adapter failed to tell
# the user (or died first), and may have said nothing was charged.
ANNOUNCE_WINDOW = 120.0
# The error class of an announced job that was never attached in time.
NOT_ANNOUNCED = "not_announced"
# The error class of a relaxed job cancelled because the Batch lane has gone.
LANE_UNAVAILABLE = "lane_unavailable"


class StoreUnavailable(Exception):
    """The database cannot be reached or is locked past its timeout."""


class StoreMisconfigured(StoreUnavailable):
    """DATABASE_URL can never work (malformed, no such database or user, a wrong password):
    waiting will not help, the configuration must change."""


def final_delivery_key(job_id: int) -> str:
    """The outbox key of a job's one final message (result or failure)."""
    return f"job:{job_id}:final"


def after_failure(retryable: bool, attempt: int, max_attempts: int, final_state: JobState) -> JobState:
    """A failed attempt's job state, the rule JobQueue.fail applies: queued again while
    attempts remain, dead when a retryable failure used them all, else the caller's final state."""
    if retryable:
        return JobState.QUEUED if attempt < max_attempts else JobState.DEAD
    return final_state


class JobQueue(Protocol):
    """Durable jobs: submitted (with admission), leased in fair order, finished once."""

    async def submit(
        self,
        job: NewJob,
        inputs: list[CheckedImage],
        admission: Admission | None = None,
        cache_ttl: float = 0,
    ) -> Submitted | Denied:
        """Insert a queued job (and its input images) in one transaction.

        An announced job (`job.announced`) is not started before
        attach_delivery; if that does not come within ANNOUNCE_WINDOW, it
        is cancelled (error_class NOT_ANNOUNCED) and its hold released.

        With an admission, the same transaction checks every budget that
        applies (team, channel, user: spent + held + estimate <= limit) and
        the quotas, then holds the estimate: concurrent submits can never
        overspend. A job whose idempotency key already exists is not
        inserted again; the existing job is returned with duplicate=True.
        With `job.idempotency_window`, a key older than that many seconds
        is free again (the old job keeps its row, under a changed key).
        When a job with the same cache key succeeded within `cache_ttl`
        seconds, the new job is finished at once with that image, at $0
        and without a hold (cached=True), and its result is queued for delivery;
        it still counts toward the admission's quotas, and is Denied past them.
        Image bytes are stored once per distinct content (by their own sha256).
        """

    async def job_for_key(self, idempotency_key: str, window: float | None) -> int | None:
        """The job holding this idempotency key (within `window` seconds, when
        given), or None: lets a repeated request be answered before it is
        priced and checked again."""

    async def lease(
        self, worker_id: str, lease_seconds: float, *, only_job_id: int | None = None, flex: bool = True
    ) -> Job | None:
        """Atomically take the next job in fair order (or that one job), or None;
        with flex=False, never a Flex job.

        Expired leases are reclaimed first: back to the queue, or `dead` when
        the job has used all its attempts (with a failure delivery).
        """

    async def lease_many(
        self, takers: list[tuple[str, bool]], lease_seconds: float, *, only_job_id: int | None = None
    ) -> list[Job]:
        """lease() for several takers (worker id, may it run a Flex job) in one transaction: up to
        one job each, in fair order, each leased to its own taker (Job.worker_id); fewer when
        fewer are runnable."""

    async def wait_for_jobs(self, timeout: float) -> None:
        """Return when a job may have become runnable in another process, or
        after `timeout` seconds (a store without notifications just sleeps)."""

    async def extend_lease(self, job_id: int, worker_id: str, attempt: int, lease_seconds: float) -> bool: ...

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
        """Store the image, finish the job, settle its charge, release the
        rest of its hold and queue its delivery, all atomically. A charge of
        None settles nothing (an earlier image served at $0): the whole hold
        is released.

        Returns the image id, or None when this worker no longer holds the
        lease (another worker owns the job now; nothing is written).
        """

    async def fail(
        self,
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
        """Record a failed attempt: requeue, dead-letter or finish the job.

        `refund_attempt`: the attempt made no call (its route was paused), so it is given
        back; the job waits until `retry_at` without using one of its attempts.

        A finished job settles `charge` (a billed failure, e.g. a blocked
        answer) and releases the rest of its hold.

        Returns the job's new state, or None when the lease was lost.
        """

    async def settle_hedge(self, job_id: int, attempt: int, charge: Charge) -> None:
        """Record what the other call of a hedged attempt cost (a ledger settlement of
        its own, beside the attempt's), before the attempt's complete() or fail(), so the
        release that follows frees only what neither call used. Recorded whether or
        not this worker still holds the job: the call was billed all the same. Once
        per (job, attempt)."""

    async def relane(self, job_id: int, worker_id: str, attempt: int, lane: Lane, delivery: NewDelivery) -> bool:
        """Move a job this worker holds (running, this attempt) to another lane, queued again
        at once, and add `delivery` (telling its requester). Its hold stays as it is, so the
        new lane must not cost more. The spec's lane changes too, so the job is settled and
        ledgered at the new lane's rate. False, changing nothing, if the lease was lost."""

    async def cancel(self, job_id: int, *, tell: NewDelivery | None = None) -> bool:
        """Cancel a job that has not started (its hold released), queueing `tell` to its
        requester when given. False if it is not queued."""

    async def cancel_relaxed(self, detail: str) -> list[int]:
        """Cancel every queued job of a lane but Standard (Flex, Batch, Priority: the lanes
        that need the Developer API), release its hold and
        queue a failure delivery (error_class LANE_UNAVAILABLE, `detail`)
        telling its requester; returns their ids. Jobs already in a batch
        are left to it. For start-up, when the lane has gone."""

    async def get_job(self, job_id: int) -> Job | None: ...

    async def position(self, job_id: int) -> int | None:
        """1 for the next job to run; None once the job has left the queue."""

    async def team_queue(self, team: str, limit: int) -> list[tuple[Job, int | None]]:
        """The team's jobs running (oldest start first), then queued in position order, at most
        `limit`: each with its position as `position` gives it (None while running) and its
        hold as held_micros."""

    async def stale_result(self, team: str, cache_key: str) -> EarlierResult | None:
        """The team's latest finished image for `cache_key`, however old (no TTL), for
        answering while every route is down: never another team's, never one a
        fallback made in place of the model asked for, never one itself served stale."""

    async def get_image(self, image_id: int) -> StoredImage | None: ...

    async def job_inputs(self, job_id: int) -> list[StoredImage]: ...

    async def counts_by_state(self) -> dict[str, int]: ...

    async def check_writable(self) -> None:
        """Raise StoreUnavailable unless a write could run now (for /healthz)."""

    async def error_counts(self, since: float) -> dict[str, int]:
        """Jobs whose last error happened since `since`, by error class."""


class BatchQueue(Protocol):
    """Relaxed jobs gathered into provider batches (the Batch lane)."""

    async def open_batch(self, limit: int, max_bytes: int = BATCH_INLINE_BYTES) -> Batch | None:
        """Take up to `limit` queued relaxed jobs for one model (the one waiting
        longest), in order while their requests fit `max_bytes` inline together
        (`inline_request_bytes` of their input images, the edited image included),
        into a new batch in state `creating`, or None if none wait."""

    async def split_batch(self, batch_id: int, job_ids: list[int]) -> Batch:
        """Move these jobs of a `creating` batch (one the provider refused) into a
        new `creating` batch, to be sent on their own."""

    async def batch_sending(self, batch_id: int, job_ids: list[int]) -> None:
        """Record the order the batch's requests are about to be sent in (the
        provider answers in that order), before sending them."""

    async def batch_submitted(self, batch_id: int, remote_name: str, poll_at: float) -> bool:
        """The provider accepted the batch: record its name and tell each job's
        requester (a "started" delivery per job). False when the batch was
        given back meanwhile (a slow sender outlived by recovery): the caller
        must cancel the remote batch, since its jobs are queued again."""

    async def due_batches(self, poll_interval: float, stale_after: float) -> list[Batch]:
        """Submitted batches due for a poll, plus `creating` ones not touched
        for `stale_after` seconds (their sender died, or its create call's
        answer was lost). Each is pushed `poll_interval` into the future, so
        concurrent pollers share the work."""

    async def close_batch(self, batch_id: int, remote_state: str) -> None: ...


class Ledger(Protocol):
    """Money as recorded: budgets, what was spent and held, the ledger; and refused prompts."""

    async def set_budget(self, budget: Budget, updated_by: str, platform: str = "") -> None:
        """Create or replace a budget, and record the change (who, from what, to what) in the
        budget audit, in the same transaction."""

    async def delete_budget(
        self, team: str, scope: Scope, scope_id: str, removed_by: str = "", platform: str = ""
    ) -> bool:
        """Remove a budget (False when there was none), recording the removal in the audit."""

    async def budget_changes(self, team: str, limit: int) -> list[dict[str, Any]]:
        """The team's last `limit` budget changes, newest first: team, user, platform, scope,
        scope_id, old_/new_ limit_micros, period and soft_threshold (None for none), created_at."""

    async def ledger_rows(
        self, team: str, filters: LedgerFilter, *, limit: int, offset: int = 0
    ) -> list[dict[str, Any]]:
        """The team's ledger rows matching `filters`, newest first: `limit` of them after `offset`."""

    async def budgets(self, team: str) -> list[Budget]: ...

    async def budget_statuses(
        self,
        team: str,
        channel: str | None,
        user: str | None,
        default_team_budget: Budget | None = None,
        extra_budgets: Sequence[Budget] = (),
    ) -> list[BudgetStatus]:
        """Every budget that applies to (team, channel, user), with spent and held now.

        When the team has no team-scope budget row, `default_team_budget` (a
        Budget with default=True) applies in its place, figured like a row;
        `extra_budgets` (a role's per-user day) are figured like rows after them."""

    async def quota_counts(self, team: str, user: str, quotas: QuotaLimits) -> dict[str, int]:
        """Now, the figure each quota with a limit counts (as admission reads it, unlocked):
        a read for checks made before a request can be submitted."""

    async def spent(self, team: str, *, user: str | None = None, since: float) -> int:
        """Micro-dollars settled since `since` for a team (or one of its users)."""

    async def overage_spent(self, team: str, *, user: str | None = None, since: float) -> int:
        """The part of `spent` that moderators approved past the budgets ([Ask a moderator])."""

    async def ledger(
        self, *, team: str | None = None, since: float | None = None, entry: str | None = None
    ) -> list[dict[str, Any]]:
        """Ledger rows, oldest first, with cost as micro-dollars; only `entry` rows (e.g.
        "settlement") when given."""

    async def record_moderation(self, team: str, channel: str, user: str, reason: str, prompt: str | None) -> None: ...

    async def moderation_log(self, team: str) -> list[dict[str, Any]]:
        """The team's refused prompts, oldest first: reason, prompt (None in privacy mode), who, when."""


class Outbox(Protocol):
    """Messages for the adapters, queued in the transaction that decides them."""

    async def wait_for_deliveries(self, timeout: float) -> None:
        """The same, for outbox rows."""

    async def raise_alert(self, key: str, platforms: list[str], text: str) -> bool:
        """Queue an operator alert for each platform, once per `key` however
        many processes raise it; False when it was already raised."""

    async def claim_deliveries(self, platforms: list[str], limit: int, lease_seconds: float) -> list[Delivery]: ...

    async def mark_delivered(self, delivery_id: int) -> None: ...

    async def claim_for_dispatch(
        self, platforms: list[str], limit: int, lease_seconds: float, *, delivered: list[int]
    ) -> list[tuple[Delivery, Job | None]]:
        """Mark the `delivered` ids delivered, then claim_deliveries, each with its job as it is
        now (None for an alert, or a job gone): one transaction for a dispatcher's round."""

    async def mark_delivered_many(self, delivery_ids: list[int]) -> None: ...

    async def pending_deliveries(self) -> int:
        """How many deliveries wait to be sent (claimed or not); those given up don't count."""

    async def retry_delivery(self, delivery_id: int, error: str, retry_at: float, max_attempts: int) -> None: ...


class ChatContext(Protocol):
    """What a conversation needs kept: a job's platform context, threads, pending confirmations, shared rate slots."""

    async def attach_delivery(self, job_id: int, context: dict[str, Any]) -> bool:
        """Merge platform context into a job's delivery (e.g. the status message
        posted after the job was accepted). False when the job is gone or was
        cancelled (an announcement after ANNOUNCE_WINDOW): the adapter must
        then show it as not started, not leave it "Queued"."""

    async def remember_thread(self, platform: str, team: str, channel: str, thread_id: str, image_id: int) -> None:
        """Point a chat thread at its latest bot image."""

    async def thread_image(self, platform: str, team: str, channel: str, thread_id: str) -> int | None: ...

    async def swap_thread_image(
        self, platform: str, team: str, channel: str, thread_id: str, expected: int, image_id: int
    ) -> bool:
        """Point a chat thread at `image_id` if it still points at `expected` ([Undo]); False,
        changing nothing, when it points elsewhere or is not a thread of ours."""

    async def save_confirmation(
        self, token: str, team: str, user: str, request: dict[str, Any], ttl_seconds: float
    ) -> None: ...

    async def take_confirmation(self, token: str, team: str, user: str) -> dict[str, Any] | str:
        """The held request, removed so it runs once; or "expired", or "not_yours"
        when someone other than the asker answers (the request stays)."""

    async def take_rate_slot(self, key: str, limit: int, window: float) -> float:
        """Take one call slot under `key` if fewer than `limit` were taken in the
        last `window` seconds (returns 0), else take nothing and return the
        seconds until the oldest slot frees. Atomic across processes."""


class Dashboard(Protocol):
    """The web dashboard's rows (bot/sign_in.py, the overview)."""

    async def use_sign_in_link(self, link_id: str, team: str, user: str, expires_at: float) -> bool:
        """Claim a sign-in link once: True the first time, False for every later try (any process).
        Claims of links expired by now are pruned."""

    async def daily_spend_by_model(self, team: str, since: float) -> list[dict[str, Any]]:
        """The team's settlements since `since`, summed per UTC day and model: rows of
        day (the day's midnight, epoch seconds), model and micros, by day then model."""

    async def top_spenders(self, team: str, since: float, limit: int) -> dict[str, list[tuple[str, int]]]:
        """The team's `limit` biggest spenders since `since`: {"user": [(user, micros)...],
        "channel": [(channel, micros)...]}, most first (ties by name)."""

    async def cache_savings(self, team: str, since: float) -> int:
        """What the team's jobs answered from the cache since `since` would have cost, in micros:
        for each, the charge of the call that made the image it reused."""

    async def relaxed_charges(self, team: str, since: float) -> list[tuple[str, str, int]]:
        """The team's settlements on the relaxed lanes (flex, batch) since `since`, summed per
        model and lane: (model, lane, micros), by model then lane."""


class Gallery(Protocol):
    """A team's result images, their threads (an image and its edits), and deleting one.
    Every call takes the team: another team's image reads as missing."""

    async def gallery_images(self, team: str, limit: int, offset: int) -> list[GalleryImage]:
        """The team's result images not deleted, newest first, `limit` from `offset`."""

    async def gallery_count(self, team: str) -> int: ...

    async def user_images(self, team: str, user: str, limit: int, also: str | None = None) -> list[GalleryImage]:
        """The result images `user` asked for (not deleted), newest first, at most `limit`.
        `also`: a second key whose images count as the team's (a linked team's own, bot/orgs.py)."""

    async def gallery_image(self, team: str, image_id: int, also: str | None = None) -> GalleryImage | None:
        """One result image of the team (a tombstone too, with deleted_at set), or None.
        `also` as for user_images."""

    async def image_thread(self, team: str, image_id: int, also: str | None = None) -> list[GalleryImage]:
        """The image's thread, oldest first: its root (the image no edit made) and every
        image edited from it, however deep, tombstones included; [] when not the team's
        (nor `also`'s, as for user_images)."""

    async def chain_teams(self, image_id: int) -> list[str]:
        """The teams of the jobs that made the image and each image up its parents to the root
        (more than one when a linked team edited what it made before the link), sorted."""

    async def delete_image(self, team: str, image_id: int) -> DeletedImage | None:
        """Delete a result image for real, in one transaction: chat threads stop pointing at
        it, the prompt cache stops serving it, its bytes go unless another image holds the
        same, and its row goes too unless edits name it as their parent (then it stays as a
        tombstone, without bytes). The ledger is untouched. None when there is no such
        image of the team (or it was deleted already)."""


class Pruning(Protocol):
    """Retention: old rows pruned a batch at a time (bot/retention.py drives it), and sizes."""

    database_file: str | None  # the SQLite file; None for a database server

    async def prune(self, kind: str, before: float, limit: int) -> int:
        """Prune at most `limit` rows of `kind` (bot/store/retention.py PRUNE_KINDS) older than
        `before`, in one transaction; returns how many. Safe with pruners in other processes:
        each row is pruned, and counted, once. Image bytes go as delete_image's do (threads
        and cache entries dropped, a blob kept while another image holds it); a job's row
        goes only when no ledger row names it. The ledger is never touched."""

    async def inputs_pruned(self, job_id: int) -> bool:
        """Whether pictures attached to this job were pruned (a Reroll would lack them)."""

    async def storage_sizes(self) -> StorageSizes: ...


class Orgs(Protocol):
    """Organisations (bot/teams.py): which key a linked team uses, links and one-time link codes."""

    async def team_org(self, platform: str, team: str) -> str | None:
        """The key of the organisation this team belongs to; None when it is on its own."""

    async def team_links(self, org: str | None = None) -> list[TeamLink]:
        """The members of `org` (of every organisation when None), home included."""

    async def link_teams(self, home: TeamRef, joiner: TeamRef, by: str) -> LinkResult:
        """`joiner` into `home`'s organisation (or `home` into `joiner`'s when only that one has one)."""

    async def unlink_team(self, member: TeamRef) -> UnlinkResult:
        """Take a team out of its organisation; the ledger keeps every row as written."""

    async def save_link_code(self, code_hash: str, maker: TeamRef, user: str, channel: str, ttl: float) -> None: ...

    async def redeem_link_code(self, code_hash: str, joiner: TeamRef, by: str) -> LinkResult:
        """Link with the code's maker and use the code up, atomically; a refusal changes nothing."""

    async def queue_notice(self, key: str, platform: str, channel: str, text: str) -> bool:
        """A plain message for a chat channel, through the outbox (kind NOTICE); once per key."""


class Approvals(Protocol):
    """Refused requests waiting for a moderator ([Ask a moderator], bot/approvals.py). States go
    offered -> pending -> approved | denied | expired, each by one conditional UPDATE."""

    async def offer_approval(
        self,
        token: str,
        asked: tuple[str, str, str, str],
        request: dict[str, Any],
        estimate_micros: int,
        budget_state: str,
        ttl_seconds: float,
    ) -> None:
        """Keep a refused request (asked: team, platform, channel, user) as "offered"."""

    async def approval(self, token: str) -> dict[str, Any] | None: ...

    async def ask_approval(self, token: str, user: str, ttl_seconds: float) -> dict[str, Any] | None:
        """offered -> pending, for its requester only, once; the row, or None."""

    async def unask_approval(self, token: str) -> bool:
        """pending -> offered (its alert could not be posted), once; whether it was pending."""

    async def deny_approval(
        self, token: str, by: str, notice: Callable[[dict[str, Any]], str]
    ) -> dict[str, Any] | None:
        """pending -> denied, once; the requester's notice is queued in the same transaction."""

    async def expire_approvals(self, notice: Callable[[dict[str, Any]], str]) -> list[dict[str, Any]]:
        """pending -> expired for every one past its time, each requester told; offers past
        their time are dropped."""


class Store(JobQueue, BatchQueue, Ledger, Outbox, ChatContext, Dashboard, Gallery, Pruning, Orgs, Approvals, Protocol):
    """Every port: what the bootstrap opens and hands to the service, worker and adapters."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...
