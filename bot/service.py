"""The core API adapters call: submit, edit, status, cancel, usage, budgets.

Expected failures come back as `Refused` outcomes with a sentence fit for
the user; adapters render them in their own words and never see an
exception for bad input. Every decision is made here, in bot.money (what a
request holds, whether it fits) and in policies/ (moderation, channel rules,
when to ask first); the store applies the money checks atomically.

Beside it: bot.specs turns a request into a GenerationSpec, bot.quotes prices
it and decides whether to ask first, bot.confirmations words the questions and
refusals about money and keeps the questions awaiting an answer, and
bot.budget_desk reports and sets a team's budgets.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from bot import confirmations
from bot.budget_desk import BudgetDesk, UsageReport
from bot.catalog import Catalog
from bot.confirmations import HeldQuestions, confirmed
from bot.metrics import Metrics
from bot.money import from_micros, pricing, to_micros, usd
from bot.money.admission import Admission, Denied
from bot.money.budgets import Budget, BudgetStatus, Scope
from bot.money.estimates import fits, newly_past_threshold
from bot.money.quotas import QuotaLimits
from bot.quotes import Quote, Quoter
from bot.specs import SpecBuilder, cache_key, check_fits_a_batch, check_images
from bot.store.base import Store, StoreUnavailable
from bot.types import (
    Accepted,
    EditRequest,
    GenerationSpec,
    ImagineRequest,
    InputImage,
    InvalidRequest,
    Job,
    Lane,
    NeedsConfirmation,
    NewJob,
    Outcome,
    RefusalReason,
    Refused,
    StoredImage,
)
from policies.config import PolicyBook, TeamPolicy
from policies.moderation import ModerationRefusal, check_prompt, printable
from policies.routing import NotAllowedHere, check_channel

__all__ = ["CLI_PLATFORM", "STORE_DOWN", "Caller", "ImagineService", "UsageReport", "confirmed"]

log = logging.getLogger(__name__)
STORE_DOWN = "I can't reach my database right now, so nothing was queued. Please try again in a minute."
NOT_ON_ALLOW_LIST = (
    "This bot isn't enabled for this workspace or server. Ask the bot's operator to add "
    "it to the allow-list ([access] teams). Nothing was charged."
)
# The platform of requests made from the terminal (python -m bot imagine).
CLI_PLATFORM = "cli"


@dataclass(frozen=True)
class Caller:
    """Who is asking, and what their platform says about them (admin/owner,
    Manage Server...). The core decides what that allows."""

    team: str
    user: str
    platform_admin: bool = False
    platform: str = ""


class ImagineService:
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
    ) -> None:
        self._cache_ttl = cache_ttl
        self._metrics = metrics or Metrics()
        self._store = store
        self._catalog = catalog
        self._policies = policies or PolicyBook()
        self._max_attempts = max_attempts
        # Flex and Priority (generateContent's service_tier) need the Developer API, as Batch does.
        self._specs = SpecBuilder(
            catalog,
            self._policies,
            batch_lane=batch_lane,
            service_tiers=batch_lane if service_tiers is None else service_tiers,
            gateway_routes=gateway_routes,
            clock=clock,
        )
        self._quotes = Quoter(self._specs, catalog, self._policies, gateway_routes)
        self._questions = HeldQuestions(store, clock)
        self._budgets = BudgetDesk(store, self._policies, clock)
        self._on_submit = on_submit or (lambda: None)
        self._clock = clock

    # -- generating -----------------------------------------------------

    async def submit(self, req: ImagineRequest) -> Outcome:
        return await self._guarded(
            self._enqueue(
                req,
                kind="imagine",
                prompt=req.prompt,
                model=req.model,
                aspect_ratio=req.aspect_ratio,
                size=req.size,
                parent_image_id=None,
            )
        )

    async def edit(self, req: EditRequest) -> Outcome:
        """Edit a finished image of the same team; its settings carry over unless overridden."""

        async def edit() -> Outcome:
            parent = await self._store.get_image(req.parent_image_id)
            parent_job = await self._store.get_job(parent.job_id) if parent and parent.job_id else None
            if parent is None or parent.role != "output" or parent_job is None or parent_job.team != req.team:
                return Refused(RefusalReason.NOT_FOUND, "I can't find that image to edit.")
            return await self._enqueue(
                req,
                kind="edit",
                prompt=req.instruction,
                model=req.model or parent_job.spec.model_alias,
                aspect_ratio=req.aspect_ratio or parent_job.spec.aspect_ratio,
                size=req.size or parent_job.spec.size,
                parent_image_id=parent.id,
                parent_sha256=parent.sha256,
                parent_bytes=len(parent.data),
            )

        return await self._guarded(edit())

    async def _guarded(self, work):
        # Fail closed: if the store can't be reached, nothing is admitted.
        try:
            return await work
        except StoreUnavailable:
            log.exception("store unavailable; request refused")
            return Refused(RefusalReason.UNAVAILABLE, STORE_DOWN)

    async def _enqueue(
        self,
        req: ImagineRequest | EditRequest,
        *,
        kind: str,
        prompt: str,
        model: str | None,
        aspect_ratio: str | None,
        size: str | None,
        parent_image_id: int | None,
        parent_sha256: str | None = None,
        parent_bytes: int = 0,
    ) -> Outcome:
        if (refused := self._off_allow_list(req.team, req.platform)) is not None:
            return refused
        if req.idempotency_key is not None:
            # A repeat (a retried event, a double click) gets its first job back before
            # anything is priced again: never a question or a refusal about a job that exists.
            existing = await self._store.job_for_key(req.idempotency_key, req.idempotency_window)
            if existing is not None:
                return await self._duplicate_of(existing)
        policy = self._policies.for_team(req.team)
        if policy.default_team_budget_usd == 0 and not await self._budgets.has_own_team_budget(req.team):
            return confirmations.no_budget_yet(req.team, cli=req.platform == CLI_PLATFORM)
        try:
            text = check_prompt(prompt, max_chars=policy.max_prompt_chars, banned_terms=policy.banned_terms)
        except ModerationRefusal as exc:
            await self._store.record_moderation(
                req.team, req.channel, req.user, exc.reason, None if policy.privacy_mode else printable(prompt)
            )
            return Refused(RefusalReason.MODERATION, str(exc))
        try:
            inputs = check_images(req.images)
            spec = self._spec(req, text, model, aspect_ratio, size, parent_image_id, len(inputs))
            if spec.lane is Lane.BATCH:
                check_fits_a_batch(spec, inputs, parent_bytes)
            check_channel(policy, req.channel, spec.model_alias, spec.size)
            estimate = self._quotes.estimate(spec, len(inputs))
        except NotAllowedHere as exc:
            return Refused(RefusalReason.NOT_ALLOWED_HERE, str(exc))
        except pricing.Unpriced as exc:
            return Refused(RefusalReason.UNPRICED, str(exc))
        except InvalidRequest as exc:
            return Refused(RefusalReason.INVALID_REQUEST, str(exc))

        default_budget = self.default_team_budget(req.team)
        statuses = await self._store.budget_statuses(req.team, req.channel, req.user, default_budget)
        quote = Quote(spec, estimate)
        # Fit first: a request no budget can take is refused, never offered a
        # confirmation (the store checks again, atomically, when it holds).
        # An over-budget request skips the questions: the store refuses it
        # (or answers it from the cache, at $0), never a confirmation.
        if not req.confirmed and fits(statuses, estimate):
            asked = self._quotes.ask_first(req, quote, statuses, len(inputs))
            if isinstance(asked, NeedsConfirmation):
                return asked
            quote = asked
        spec, estimate = quote.spec, quote.estimate

        job = NewJob(
            team=req.team,
            channel=req.channel,
            user=req.user,
            platform=req.platform,
            kind=kind,
            spec=spec,
            max_attempts=self._max_attempts,
            delivery=dict(req.delivery),
            idempotency_key=req.idempotency_key,
            idempotency_window=req.idempotency_window,
            cache_key=None if req.fresh else cache_key(spec, inputs, parent_sha256),
            announced=req.announced,
        )
        admission = Admission(
            to_micros(estimate), self._catalog.version, QuotaLimits.of(policy), default_team_budget=default_budget
        )
        submitted = await self._store.submit(job, inputs, admission, cache_ttl=self._cache_ttl)
        if isinstance(submitted, Denied):
            refused = confirmations.refusal(submitted, estimate)
            if submitted.budget is None:
                return refused
            return dataclasses.replace(
                refused, detail=refused.detail + self._quotes.cheaper_hint(req, spec, len(inputs), statuses)
            )
        if submitted.cached:
            self._metrics.cache_hits.inc()
            self._on_submit()  # its result is already in the outbox
            return Accepted(
                job_id=submitted.job_id,
                position=0,
                model=spec.model_alias,
                size=spec.size,
                aspect_ratio=spec.aspect_ratio,
                estimate_usd=Decimal(0),
                cached=True,
                retired_note=self._specs.retired_note(model, spec.model_alias),
            )
        if not submitted.duplicate:
            self._on_submit()
        held = to_micros(estimate)
        alerts = (
            ()
            if submitted.duplicate
            else confirmations.alert_lines(newly_past_threshold(statuses, held), req.team, req.user, held)
        )
        return Accepted(
            job_id=submitted.job_id,
            position=submitted.position,
            model=spec.model_alias,
            size=spec.size,
            aspect_ratio=spec.aspect_ratio,
            estimate_usd=estimate,
            duplicate=submitted.duplicate,
            downgraded_from=quote.downgraded_from,
            alerts=alerts,
            relaxed=spec.lane is Lane.BATCH,
            lane=spec.lane.value,
            lane_note=self._specs.lane_note(req, spec),
            retired_note=self._specs.retired_note(model, spec.model_alias),
        )

    def _spec(
        self,
        req: ImagineRequest | EditRequest,
        text: str,
        model: str | None,
        aspect_ratio: str | None,
        size: str | None,
        parent_image_id: int | None,
        attachments: int,
    ) -> GenerationSpec:
        return self._specs.spec(req, text, model, aspect_ratio, size, parent_image_id, attachments)

    async def _duplicate_of(self, job_id: int) -> Accepted:
        job, position = await self.status(job_id)
        return Accepted(
            job_id=job_id,
            position=position or 0,
            model=job.spec.model_alias,
            size=job.spec.size,
            aspect_ratio=job.spec.aspect_ratio,
            estimate_usd=from_micros(job.held_micros),
            duplicate=True,
            relaxed=job.spec.lane is Lane.BATCH,
            lane=job.spec.lane.value,
        )

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

        async def rerun() -> Outcome:
            job = await self._store.get_job(job_id)
            if job is None or job.team != caller.team:
                return Refused(RefusalReason.NOT_FOUND, "I can't find that image any more.")
            attached = tuple(InputImage(i.data, i.mime) for i in await self._store.job_inputs(job_id))
            # fresh: a reroll wants a new image, not the cached one.
            common = dict(
                team=caller.team,
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
            )
            if job.spec.parent_image_id is not None:
                return await self.edit(
                    EditRequest(parent_image_id=job.spec.parent_image_id, instruction=job.spec.prompt, **common)
                )
            return await self.submit(ImagineRequest(prompt=job.spec.prompt, **common))

        return await self._guarded(rerun())

    async def may_delete(self, job_id: int, caller: Caller) -> bool:
        """The requester or a moderator may remove a result."""
        job = await self._store.get_job(job_id)
        return job is not None and job.team == caller.team and (job.user == caller.user or self.is_moderator(caller))

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
        taken = await self._guarded(
            self._questions.take(
                token,
                caller.team,
                caller.user,
                use_flash=use_flash,
                idempotency_key=idempotency_key,
                idempotency_window=idempotency_window,
            )
        )
        if isinstance(taken, Refused):
            return taken, None
        request, until = taken
        if idempotency_key is not None and until > self._clock():
            # Before the submit, so a press right behind this one finds it.
            await self._guarded(self._questions.keep_answer(token, caller.team, caller.user, request, until))
        outcome = await (self.edit(request) if isinstance(request, EditRequest) else self.submit(request))
        return outcome, request

    # -- platform context -----------------------------------------------

    async def attach_delivery(self, job_id: int, context: dict) -> bool:
        """Record where a job reports (its status message); an announced job may start now.

        False when the job was cancelled meanwhile (its announcement came too
        late): the adapter must not leave it showing as queued."""
        live = await self._store.attach_delivery(job_id, context)
        self._on_submit()
        return live

    async def remember_thread(self, platform: str, team: str, channel: str, thread_id: str, image_id: int) -> None:
        await self._store.remember_thread(platform, team, channel, thread_id, image_id)

    async def thread_image(self, platform: str, team: str, channel: str, thread_id: str) -> int | None:
        return await self._store.thread_image(platform, team, channel, thread_id)

    async def image(self, image_id: int) -> StoredImage | None:
        return await self._store.get_image(image_id)

    async def status(self, job_id: int) -> tuple[Job | None, int | None]:
        """The job and, while it is queued, its position (1 = next)."""
        job = await self._store.get_job(job_id)
        return job, (await self._store.position(job_id) if job else None)

    async def cancel(self, job_id: int) -> bool:
        """Cancel a queued job; its hold is released at once."""
        return await self._store.cancel(job_id)

    # -- money ----------------------------------------------------------

    def policy(self, team: str) -> TeamPolicy:
        return self._policies.for_team(team)

    def _off_allow_list(self, team: str, platform: str) -> Refused | None:
        # The allow-list is about chat teams; whoever runs the CLI operates the bot.
        if platform == CLI_PLATFORM or self.team_allowed(team):
            return None
        return Refused(RefusalReason.TEAM_NOT_ALLOWED, NOT_ON_ALLOW_LIST)

    def team_allowed(self, team: str) -> bool:
        """Whether this Slack team / Discord guild is on the `[access] teams`
        allow-list (every team is, when there is none)."""
        return self._policies.allows(team)

    def default_team_budget(self, team: str) -> Budget | None:
        """The budget that caps a team with no team budget of its own."""
        return self._budgets.default_team_budget(team)

    def is_moderator(self, caller: Caller) -> bool:
        return caller.platform_admin or caller.user in self._policies.for_team(caller.team).moderators

    async def usage(
        self, team: str, user: str, channel: str | None = None, *, platform: str = ""
    ) -> UsageReport | Refused:
        if (refused := self._off_allow_list(team, platform)) is not None:
            return refused
        return await self._budgets.usage(team, user, channel)

    async def show_budgets(self, caller: Caller) -> list[BudgetStatus] | Refused:
        if (refused := self._moderators_only(caller, "Only moderators can see the team's budgets.")) is not None:
            return refused
        return await self._budgets.statuses(caller.team)

    async def set_budget(
        self,
        caller: Caller,
        amount_usd: str | Decimal,
        period: str = "month",
        *,
        scope: Scope = Scope.TEAM,
        scope_id: str = "",
        soft_threshold: float | None = None,
    ) -> Budget | Refused:
        if (refused := self._moderators_only(caller, "Only moderators can change budgets.")) is not None:
            return refused
        try:
            budget = await self._budgets.set(
                caller.team,
                caller.user,
                amount_usd,
                period,
                scope=scope,
                scope_id=scope_id,
                soft_threshold=soft_threshold,
            )
        except InvalidRequest as exc:
            return Refused(RefusalReason.INVALID_REQUEST, str(exc))
        except StoreUnavailable:
            log.exception("set_budget: store unavailable")
            return Refused(RefusalReason.UNAVAILABLE, STORE_DOWN)
        log.info(
            "budget set: team=%s %s %s/%s by %s",
            caller.team,
            budget.label(),
            usd(budget.limit_micros),
            budget.period.value,
            caller.user,
        )
        return budget

    def _moderators_only(self, caller: Caller, refusal: str) -> Refused | None:
        """A team's budgets are its moderators' to see and set (a team on the allow-list)."""
        if (refused := self._off_allow_list(caller.team, caller.platform)) is not None:
            return refused
        if not self.is_moderator(caller):
            return Refused(RefusalReason.NOT_MODERATOR, refusal)
        return None
