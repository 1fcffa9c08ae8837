"""The core API adapters call: submit, edit, status, cancel, usage, budgets.

Expected failures come back as `Refused` outcomes with a sentence fit for
the user; adapters render them in their own words and never see an
exception for bad input. Every decision is made here, in bot.money (what a
request holds, whether it fits) and in policies/ (moderation, channel rules,
when to ask first); the store applies the money checks atomically.

Beside it: bot.intake takes a request to a queued job in the order the checks
must run, bot.specs turns a request into a GenerationSpec, bot.quotes prices
it and decides whether to ask first, bot.confirmations words the questions and
refusals about money and keeps the questions awaiting an answer,
bot.budget_desk reports and sets a team's budgets, bot.queue_board shows a team's
queue and cancels from it, and bot.access says who may use the bot and who
moderates a team. The calls about a team as a whole (its access, usage, budgets
and ledger) are in bot.team_calls, a mixin of ImagineService.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypedDict, TypeVar

from tenacity import stop_after_delay

from bot.access import CLI_PLATFORM, Caller, acts_for
from bot.approvals import ApprovalDesk, PendingApproval
from bot.attachments import AttachmentGate, DeclaredFile, DownloadSlots
from bot.budget_desk import BudgetDesk, UsageReport
from bot.catalog import Catalog
from bot.confirmations import HeldQuestions, confirmed
from bot.gallery import GalleryDesk, GalleryPage, Lineage
from bot.intake import Intake
from bot.metrics import Metrics
from bot.org_calls import OrgCalls
from bot.org_links import LinkDesk
from bot.orgs import OrgDirectory
from bot.outcome_writes import waiting_out_the_store
from bot.queue_board import QueueBoard, QueueEntry
from bot.quotes import Quoter
from bot.roles import RoleDesk, RoleDirectory
from bot.savings import SavingsDesk
from bot.sign_in import SignIn
from bot.specs import SpecBuilder
from bot.store.ports import ANNOUNCE_WINDOW, Store
from bot.team_calls import STORE_DOWN, TeamCalls
from bot.thread_lineage import ThreadKey, ThreadLineage, Undone, thread_image
from bot.types import (
    DeletedImage,
    EditRequest,
    GalleryImage,
    ImagineRequest,
    InputImage,
    Job,
    NeedsConfirmation,
    Outcome,
    RefusalReason,
    Refused,
    StoredImage,
)
from policies.config import PolicyBook
from policies.roles import PlatformRole

__all__ = ["CLI_PLATFORM", "STORE_DOWN", "Caller", "ImagineService", "UsageReport", "confirmed"]

log = logging.getLogger(__name__)
T = TypeVar("T")
# A Reroll of a job whose attachments were pruned ([retention] inputs_days) would run without them.
INPUTS_PRUNED = (
    "The pictures attached to that request are no longer kept, so I can't run it again as it was: "
    "ask again with the pictures attached."
)


class _RerunFields(TypedDict):
    """What a rerun's request carries, an ImagineRequest or an EditRequest alike."""

    team: str
    channel: str
    user: str
    platform: str
    model: str | None
    aspect_ratio: str | None
    size: str | None
    images: tuple[InputImage, ...]
    delivery: dict[str, Any]
    idempotency_key: str | None
    idempotency_window: float | None
    fresh: bool
    announced: bool
    roles: tuple[PlatformRole, ...] | None
    platform_admin: bool


class ImagineService(TeamCalls, OrgCalls):
    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        *,
        policies: PolicyBook | None = None,
        max_attempts: int = 3,
        batch_lane: bool = False,
        service_tiers: bool | None = None,
        cache_ttl: float = 0,
        on_submit: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        gateway_routes: tuple[str, ...] = (),
        sign_in: SignIn | None = None,
        downloads: DownloadSlots | None = None,
        memory_limit: int | None = None,
    ) -> None:
        self._sign_in = sign_in  # None: the web dashboard is off (no IMAGINE_WEB_SECRET)
        self._cache_ttl = cache_ttl
        self._metrics = metrics or Metrics()
        self._store = store
        self._policies = policies or PolicyBook()
        # Flex and Priority (generateContent's service_tier) need the Developer API, as Batch does.
        self._specs = SpecBuilder(
            catalog,
            self._policies,
            batch_lane=batch_lane,
            service_tiers=batch_lane if service_tiers is None else service_tiers,
            gateway_routes=gateway_routes,
            clock=clock,
            memory_limit=memory_limit,
        )
        self._quotes = Quoter(self._specs, catalog, self._policies, gateway_routes)
        self._questions = HeldQuestions(store, clock)
        self._budgets = BudgetDesk(store, self._policies, clock)
        self._queue_board = QueueBoard(store, self._policies)
        self._gallery = GalleryDesk(store, self._policies)
        self._threads = ThreadLineage(store, self._policies, self._gallery)
        self._savings = SavingsDesk(store, catalog, clock)
        self._on_submit = on_submit or (lambda: None)
        self._roles = RoleDesk(self._policies)
        self._approvals = ApprovalDesk(store, self._policies, clock)
        self._intake = Intake(
            store,
            catalog,
            self._policies,
            self._specs,
            self._quotes,
            self._budgets,
            self._metrics,
            self._approvals,
            max_attempts=max_attempts,
            on_submit=self._on_submit,
            roles=self._roles,
        )
        self._clock = clock
        self._attachments = AttachmentGate(store, self._policies, self._specs, self._budgets, clock, self._roles)
        self._downloads = downloads or DownloadSlots()
        self._orgs = OrgDirectory(store, self._policies)
        self._links = LinkDesk(store, self._policies, self._orgs)

    def add_role_directory(self, platform: str, directory: RoleDirectory) -> None:
        """How the core looks up the roles of a platform whose requests do not carry them (Slack)."""
        self._roles.add_directory(platform, directory)

    # -- attachments ----------------------------------------------------

    async def check_attachments(
        self, req: ImagineRequest | EditRequest, files: Sequence[DeclaredFile]
    ) -> Refused | None:
        """Before downloading `files` for `req` (built without its images): why it must be
        refused (too many images, not an image, too big, a quota or budget used up), or None."""
        return await self._guarded(self._check_attachments(req, files))

    async def _check_attachments(
        self, req: ImagineRequest | EditRequest, files: Sequence[DeclaredFile]
    ) -> Refused | None:
        return await self._attachments.check(await self._orgs.request(req), files)

    def most_reference_images(self) -> int:
        """The most images one request may carry today, on the most generous model (a form
        offers that many; the model asked for refuses more than it takes)."""
        return self._specs.most_reference_images()

    def download_slot(self, platform: str, team: str, user: str) -> AbstractAsyncContextManager[None]:
        """Hold one while downloading a user's file: it waits while too many downloads run."""
        return self._downloads.slot(f"{platform}:{team}:{user}")

    # -- generating -----------------------------------------------------

    async def submit(self, req: ImagineRequest) -> Outcome:
        return await self._guarded(self._submit(req))

    async def _submit(self, req: ImagineRequest) -> Outcome:
        req = await self._orgs.request(req)  # a linked team spends from its organisation's budgets
        return await self._intake.enqueue(
            req,
            kind="imagine",
            prompt=req.prompt,
            model=req.model,
            aspect_ratio=req.aspect_ratio,
            size=req.size,
            parent_image_id=None,
            cache_ttl=self._cache_ttl,
        )

    async def edit(self, req: EditRequest) -> Outcome:
        """Edit a finished image of the same team; its settings carry over unless overridden."""

        async def edit(req: EditRequest) -> Outcome:
            req = await self._orgs.request(req)
            parent = await self._store.get_image(req.parent_image_id)
            parent_job = await self._store.get_job(parent.job_id) if parent and parent.job_id else None
            # The team's own images made before it was linked are its too.
            if parent is None or parent.role != "output" or parent_job is None or parent_job.team not in req.keys:
                return Refused(RefusalReason.NOT_FOUND, "I can't find that image to edit.")
            return await self._intake.enqueue(
                req,
                kind="edit",
                prompt=req.instruction,
                model=req.model or parent_job.spec.model_alias,
                aspect_ratio=req.aspect_ratio or parent_job.spec.aspect_ratio,
                size=req.size or parent_job.spec.size,
                parent_image_id=parent.id,
                parent_sha256=parent.sha256,
                parent_bytes=len(parent.data),
                cache_ttl=self._cache_ttl,
            )

        return await self._guarded(edit(req))

    async def rerun(
        self,
        job_id: int,
        caller: Caller,
        *,
        platform: str,
        channel: str,
        size: str | None = None,
        delivery: dict | None = None,
        idempotency_key: str | None = None,
        idempotency_window: float | None = None,
    ) -> Outcome:
        """Run a finished job's request again (Reroll), optionally at another size (4K).

        A button press's key (message, button, user) with a short window makes a
        double click one job. The adapter announces the new job (posts its
        status, then attach_delivery)."""

        async def rerun(caller: Caller) -> Outcome:
            caller = await self._orgs.caller(caller, platform)
            job = await self._store.get_job(job_id)
            if job is None or job.team not in caller.keys:
                return Refused(RefusalReason.NOT_FOUND, "I can't find that image any more.")
            if await self._store.inputs_pruned(job_id):
                return Refused(RefusalReason.NOT_FOUND, INPUTS_PRUNED)
            attached = tuple(InputImage(i.data, i.mime) for i in await self._store.job_inputs(job_id))
            # fresh: a reroll wants a new image, not the cached one.
            common = _RerunFields(
                team=caller.own_team,  # the submit resolves it, and checks the allow-list names it
                channel=channel,
                user=caller.user,
                platform=platform,
                model=job.spec.model_alias,
                aspect_ratio=job.spec.aspect_ratio,
                size=size or job.spec.size,
                images=attached,
                delivery=delivery or {},
                idempotency_key=idempotency_key,
                idempotency_window=idempotency_window,
                fresh=True,
                announced=True,
                roles=caller.roles,
                platform_admin=caller.platform_admin,
            )
            if job.spec.parent_image_id is not None:
                return await self.edit(
                    EditRequest(parent_image_id=job.spec.parent_image_id, instruction=job.spec.prompt, **common)
                )
            return await self.submit(ImagineRequest(prompt=job.spec.prompt, **common))

        return await self._guarded(rerun(caller))

    async def may_delete(self, job_id: int, caller: Caller) -> bool:
        """The requester or a moderator may remove a result."""
        caller = await self._orgs.caller(caller)
        job = await self._store.get_job(job_id)
        return job is not None and acts_for(self._policies, caller, job.team, job.user)

    # -- the gallery ----------------------------------------------------

    async def gallery(self, team: str, page: int = 1, *, platform: str = "") -> GalleryPage | Refused:
        """The team's result images, newest first, 24 a page (page 1 the newest; a page past
        the last is the last)."""
        return await self._gallery.page(await self._orgs.key(platform, team), page, platform)

    async def lineage(self, team: str, image_id: int) -> Lineage | None:
        """An image of the team with its thread: the root, each edit, the running cost of its
        chain and the thread's total (Lineage.summary() words it for chat). None when the
        image is not the team's, or was deleted."""
        keys = await self._orgs.keys("", team)
        return await self._gallery.lineage(keys[0], image_id, keys[-1])

    # -- a chat thread's lineage (bot/thread_lineage.py) ----------------

    async def posted_line(self, team: str, image_id: int, *, cached: bool = False) -> str | None:
        """The line under a posted image: "edit 3 of this thread · this image $0.13 · thread total $0.54"."""
        return await self._threads.posted_line(team, image_id, cached=cached)

    async def undo(
        self, job_id: int, caller: Caller, platform: str, threads_of: Callable[[dict[str, Any]], Sequence[ThreadKey]]
    ) -> Undone | Refused:
        """[Undo] on an edit: its thread's latest image is the one it edited again, for nothing."""

        async def undo(caller: Caller) -> Undone | Refused:
            return await self._threads.undo(job_id, await self._orgs.caller(caller, platform), platform, threads_of)

        return await self._guarded(undo(caller))

    async def thread_history(self, team: str, platform: str, thread: ThreadKey) -> Lineage | None | Refused:
        """The lineage of the image a chat thread shows (None: not one of our threads)."""

        async def history(team: str) -> Lineage | None | Refused:
            return await self._threads.thread_history(await self._orgs.keys(platform, team), platform, thread)

        return await self._guarded(history(team))

    async def job_thread_history(
        self, job_id: int, team: str, platform: str, threads_of: Callable[[dict[str, Any]], Sequence[ThreadKey]]
    ) -> Lineage | None | Refused:
        """[History] under a posted image: the lineage of what its thread (`threads_of` the
        job's delivery context) shows. None: not a job of the team's (`team` as the platform
        names it), or its thread shows no image any more."""

        async def history(team: str) -> Lineage | None | Refused:
            keys = await self._orgs.keys(platform, team)
            job = await self._store.get_job(job_id)
            threads = threads_of(job.delivery) if job is not None and job.team in keys else ()
            return await self._threads.thread_history(keys, platform, threads[0]) if threads else None

        return await self._guarded(history(team))

    async def recent_images(self, team: str, user: str, platform: str) -> list[GalleryImage] | Refused:
        """The user's last 10 images, newest first."""

        async def recent(team: str) -> list[GalleryImage] | Refused:
            return await self._threads.recent(await self._orgs.keys(platform, team), user, platform)

        return await self._guarded(recent(team))

    async def may_delete_image(self, image_id: int, caller: Caller) -> bool:
        """Whether the caller may delete this result image: its requester, or a moderator."""
        return not isinstance(await self._gallery.may_delete(image_id, await self._orgs.caller(caller)), Refused)

    async def delete_image(self, image_id: int, caller: Caller) -> DeletedImage | Refused:
        """Delete a result image for real (its bytes, its chat threads' link to it, its place
        in the prompt cache), for its requester or a moderator; the ledger keeps its rows."""
        return await self._guarded(self._delete_image(image_id, caller))

    async def _delete_image(self, image_id: int, caller: Caller) -> DeletedImage | Refused:
        return await self._gallery.delete(image_id, await self._orgs.caller(caller))

    async def delete_result(self, job_id: int, caller: Caller) -> DeletedImage | Refused:
        """delete_image for a job's result (a chat message's [Delete] button)."""
        return await self._guarded(self._delete_result(job_id, caller))

    async def _delete_result(self, job_id: int, caller: Caller) -> DeletedImage | Refused:
        return await self._gallery.delete_result(job_id, await self._orgs.caller(caller))

    # -- confirmations --------------------------------------------------

    async def hold_confirmation(self, outcome: NeedsConfirmation, ttl_seconds: float = 3600) -> str:
        """Keep a NeedsConfirmation's request until [Run] or [Use Flash]; returns its token."""
        return await self._questions.hold(outcome, ttl_seconds)

    async def confirm(
        self,
        token: str,
        caller: Caller,
        *,
        use_flash: bool = False,
        idempotency_key: str | None = None,
        idempotency_window: float | None = None,
    ) -> tuple[Outcome, ImagineRequest | EditRequest | None]:
        """Run a held request as confirmed; only the person who asked may confirm it.

        A button press carries an idempotency key and a window: the answered
        question is then kept that long under the same token, with the first
        press's request and key, so another press (a double click, [Use Flash]
        right after [Run]) resubmits under that key and gets the same job back
        instead of "expired". It is kept no longer than the key is taken."""
        resolved = await self._guarded(self._orgs.caller(caller))
        if isinstance(resolved, Refused):
            return resolved, None
        caller = resolved
        # Held under the team's key when asked: its own, if asked before the team was linked.
        for held_under in caller.keys:
            taken = await self._guarded(
                self._questions.take(
                    token,
                    held_under,
                    caller.user,
                    use_flash=use_flash,
                    idempotency_key=idempotency_key,
                    idempotency_window=idempotency_window,
                )
            )
            if not (isinstance(taken, Refused) and taken.reason is RefusalReason.NOT_ALLOWED_HERE):
                break
        if isinstance(taken, Refused):
            return taken, None
        request, until = taken
        # What the platform says about the one who pressed now, never what was kept with the question.
        request = dataclasses.replace(request, roles=caller.roles, platform_admin=caller.platform_admin)
        if idempotency_key is not None and until > self._clock():
            # Before the submit, so a press right behind this one finds it.
            await self._guarded(self._questions.keep_answer(token, held_under, caller.user, request, until))
        outcome = await (self.edit(request) if isinstance(request, EditRequest) else self.submit(request))
        return outcome, request

    # -- approvals ([Ask a moderator], bot/approvals.py) -------------------

    async def ask_moderator(self, token: str, caller: Caller) -> PendingApproval | Refused:
        """The requester's [Ask a moderator] on a budget refusal: what the adapter posts to the
        alert channel with [Approve] [Deny]. Once: a second press is refused."""

        async def ask(caller: Caller) -> PendingApproval | Refused:
            return await self._approvals.ask(token, await self._orgs.caller(caller))

        return await self._guarded(ask(caller))

    async def same_organisation(self, platform: str, team: str, other: str) -> bool:
        """Whether two teams of `platform` are one (the same, or linked into one organisation):
        an alert channel of `other` may then carry asks from `team`. False when the store is down."""

        async def same() -> bool:
            return team == other or await self._orgs.key(platform, team) == await self._orgs.key(platform, other)

        return await self._guarded(same()) is True

    async def alert_not_posted(self, token: str) -> str:
        """The adapter could not post an ask to the alert channel: the request goes back to
        offered (its requester may press again); what the requester is told."""
        said = await self._guarded(self._approvals.not_posted(token))
        return said.detail if isinstance(said, Refused) else said

    async def approve(self, token: str, caller: Caller) -> tuple[Outcome, ImagineRequest | EditRequest | None]:
        """A moderator's [Approve]: the request runs once as an approved overage (Accepted, for
        the adapter to announce where it was asked, as for [Run]), with the request it ran.
        A second press gets the first job back (Accepted, duplicate)."""

        async def approved(caller: Caller) -> ImagineRequest | EditRequest | Refused:
            # A moderator of any team of the organisation answers for it (bot/orgs.py).
            return await self._approvals.approved_request(token, await self._orgs.caller(caller))

        request = await self._guarded(approved(caller))
        if isinstance(request, Refused):
            return request, None
        outcome = await (self.edit(request) if isinstance(request, EditRequest) else self.submit(request))
        return outcome, request

    async def deny(self, token: str, caller: Caller) -> Refused | None:
        """A moderator's [Deny]: the requester is told (through the outbox); None when denied."""

        async def deny(caller: Caller) -> dict[str, Any] | Refused:
            return await self._approvals.deny(token, await self._orgs.caller(caller))

        denied = await self._guarded(deny(caller))
        return denied if isinstance(denied, Refused) else None

    async def expire_approvals(self) -> int:
        """Lapse the requests unanswered for 24 hours (the worker's sweep)."""
        return await self._approvals.expire()

    # -- platform context -----------------------------------------------

    async def attach_delivery(self, job_id: int, context: dict) -> bool:
        """Record where a job reports (its status message); an announced job may start now.

        False when the job was cancelled meanwhile (its announcement came too
        late): the adapter must not leave it showing as queued."""
        # The job is admitted and the user already sees its status: a database restarting
        # in between is waited out (within the announce window), or the job would never
        # be posted and the status would say "Queued" for ever.
        live = await waiting_out_the_store(
            lambda: self._store.attach_delivery(job_id, context),
            stop_after_delay(ANNOUNCE_WINDOW / 2),
            lambda exc: log.warning("job %d: store unavailable while recording its status (%s); retrying", job_id, exc),
        )
        self._on_submit()
        return live

    async def remember_thread(self, platform: str, team: str, channel: str, thread_id: str, image_id: int) -> None:
        # Under the key of the time (a thread begun before a link stays found: see thread_image).
        await self._store.remember_thread(platform, await self._orgs.key(platform, team), channel, thread_id, image_id)

    async def thread_image(self, platform: str, team: str, channel: str, thread_id: str) -> int | None | Refused:
        """The image a message in this thread edits (None: not one of our threads), or Refused
        while the store is down: a reply has no other answer, so it must not vanish."""
        return await self._guarded(self._thread_image(platform, team, channel, thread_id))

    async def _thread_image(self, platform: str, team: str, channel: str, thread_id: str) -> int | None:
        return await thread_image(self._store, platform, await self._orgs.keys(platform, team), (channel, thread_id))

    async def image(self, image_id: int) -> StoredImage | None:
        return await self._store.get_image(image_id)

    async def team_image(self, team: str, image_id: int) -> StoredImage | None:
        """An image (a job's input or result) when it belongs to `team`; None otherwise, as for
        an unknown id, so one team cannot learn of another's images."""
        found = await self._store.get_image(image_id)
        if found is None or found.job_id is None:
            return None
        job = await self._store.get_job(found.job_id)
        return found if job is not None and job.team in await self._orgs.keys("", team) else None

    async def status(self, job_id: int) -> tuple[Job | None, int | None]:
        """The job and, while it is queued, its position (1 = next)."""
        job = await self._store.get_job(job_id)
        return job, (await self._store.position(job_id) if job else None)

    async def team_status(self, team: str, job_id: int) -> tuple[Job, int | None] | None:
        """status() of a job of `team` (a web session's: its own id, or an organisation's key);
        None otherwise, as for an unknown id."""
        job, position = await self.status(job_id)
        return (job, position) if job is not None and job.team in await self._orgs.keys("", team) else None

    async def cancel(self, job_id: int) -> bool:
        """Cancel a queued job; its hold is released at once."""
        return await self._store.cancel(job_id)

    async def team_queue(self, caller: Caller) -> list[QueueEntry] | Refused:
        """The caller's team's jobs running and queued, with positions, holds and whether
        the caller may cancel each."""
        return await self._guarded(self._team_queue(caller))

    async def _team_queue(self, caller: Caller) -> list[QueueEntry] | Refused:
        return await self._queue_board.entries(await self._orgs.caller(caller))

    async def cancel_for(self, job_id: int, caller: Caller) -> Job | Refused:
        """Cancel a queued job for its requester or a team moderator (hold released at once);
        returns the job as it was. Anyone else, or a job that started, is refused."""
        return await self._guarded(self._cancel_for(job_id, caller))

    async def _cancel_for(self, job_id: int, caller: Caller) -> Job | Refused:
        return await self._queue_board.cancel(job_id, await self._orgs.caller(caller))
