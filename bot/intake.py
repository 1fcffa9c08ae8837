"""The way from a request to a queued job, in the order the checks must run.

The allow-list first, then a repeat (a retried event, a double click) gets its
first job back before anything is priced again; then a team without a budget,
moderation, the spec and the channel's rules, the price, the question to ask
first, and last the store's atomic admission (budgets, quotas, the cache).
Every refusal on the way is an outcome with a sentence for the user.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from decimal import Decimal

from bot import approvals, confirmations
from bot.access import CLI_PLATFORM, off_allow_list
from bot.budget_desk import BudgetDesk
from bot.catalog import Catalog
from bot.metrics import Metrics
from bot.money import from_micros, pricing, to_micros
from bot.money.admission import APPROVAL_ANSWERED, Admission, Denied
from bot.money.budgets import BudgetStatus
from bot.money.estimates import fits, newly_past_threshold
from bot.money.quotas import QuotaLimits
from bot.quotes import Quote, Quoter
from bot.roles import RoleDesk, role_budgets, role_quotas, role_refusal
from bot.specs import SpecBuilder, cache_key, check_fits_a_batch, check_images
from bot.store.ports import Store
from bot.types import (
    Accepted,
    EditRequest,
    ImagineRequest,
    InvalidRequest,
    Lane,
    NeedsConfirmation,
    NewJob,
    Outcome,
    RefusalReason,
    Refused,
    Submitted,
)
from policies.config import PolicyBook
from policies.moderation import ModerationRefusal, check_prompt, printable
from policies.roles import check_roles
from policies.routing import NotAllowedHere, check_channel

Request = ImagineRequest | EditRequest


class Intake:
    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        policies: PolicyBook,
        specs: SpecBuilder,
        quotes: Quoter,
        budgets: BudgetDesk,
        metrics: Metrics,
        approval_desk: approvals.ApprovalDesk,
        *,
        max_attempts: int,
        on_submit: Callable[[], None],
        roles: RoleDesk | None = None,
    ) -> None:
        self._roles = roles or RoleDesk(policies)
        self._store = store
        self._catalog = catalog
        self._policies = policies
        self._specs = specs
        self._quotes = quotes
        self._budgets = budgets
        self._metrics = metrics
        self._approvals = approval_desk
        self._max_attempts = max_attempts
        self._on_submit = on_submit

    async def enqueue(
        self,
        req: Request,
        *,
        kind: str,
        prompt: str,
        model: str | None,
        aspect_ratio: str | None,
        size: str | None,
        parent_image_id: int | None,
        parent_sha256: str | None = None,
        parent_bytes: int = 0,
        cache_ttl: float,
    ) -> Outcome:
        """The request queued (Accepted), asked about first (NeedsConfirmation), or Refused."""
        if (refused := off_allow_list(self._policies, req.own_team, req.platform)) is not None:
            return refused
        if req.idempotency_key is not None:
            # A repeat (a retried event, a double click) gets its first job back before
            # anything is priced again: never a question or a refusal about a job that exists.
            existing = await self._store.job_for_key(req.idempotency_key, req.idempotency_window)
            if existing is not None:
                return await self._duplicate_of(existing)
        policy = self._policies.for_team(req.team)
        if policy.default_team_budget_usd == 0 and not await self._budgets.has_own_team_budget(req.team):
            return confirmations.no_budget_yet(req.team, platform=req.platform, cli=req.platform == CLI_PLATFORM)
        try:
            text = check_prompt(prompt, max_chars=policy.max_prompt_chars, banned_terms=policy.banned_terms)
        except ModerationRefusal as exc:
            await self._store.record_moderation(
                req.team, req.channel, req.user, exc.reason, None if policy.privacy_mode else printable(prompt)
            )
            return Refused(RefusalReason.MODERATION, str(exc))
        # From the platform (the request, or its directory), never from what the user typed.
        limits = await self._roles.limits(req)
        try:
            inputs = await asyncio.to_thread(check_images, req.images)  # decodes every pixel
            spec = self._specs.spec(req, text, model, aspect_ratio, size, parent_image_id, len(inputs))
            if spec.lane is Lane.BATCH:
                check_fits_a_batch(spec, inputs, parent_bytes)
            check_channel(policy, req.channel, spec.model_alias, spec.size)
            if limits is not None:
                check_roles(limits, spec.model_alias, spec.size)
            estimate = self._quotes.estimate(spec, len(inputs))
            if req.approved_by:  # its ledger rows name the moderator who let it past the budget
                spec = dataclasses.replace(spec, approved_by=req.approved_by)
        except NotAllowedHere as exc:
            return Refused(RefusalReason.NOT_ALLOWED_HERE, str(exc))
        except pricing.Unpriced as exc:
            return Refused(RefusalReason.UNPRICED, str(exc))
        except InvalidRequest as exc:
            return Refused(RefusalReason.INVALID_REQUEST, str(exc))

        default_budget = self._budgets.default_team_budget(req.team)
        extra = role_budgets(req.team, req.user, limits)
        statuses = await self._store.budget_statuses(req.team, req.channel, req.user, default_budget, extra)
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
            to_micros(estimate),
            self._catalog.version,
            role_quotas(QuotaLimits.of(policy), limits),
            default_team_budget=default_budget,
            extra_budgets=extra,
            approval_token=req.approval_token,
            approved_by=req.approved_by,
        )
        submitted = await self._store.submit(job, inputs, admission, cache_ttl=cache_ttl)
        if isinstance(submitted, Denied):
            if submitted.limit == APPROVAL_ANSWERED:
                return Refused(RefusalReason.NOT_FOUND, approvals.ANSWERED)
            # A role's own limit is the user's, not the team's: a moderator is not asked past it.
            if (by_role := role_refusal(limits, submitted, estimate)) is not None:
                return by_role
            refused = confirmations.refusal(submitted, estimate)
            if submitted.budget is None:
                return refused
            hinted = dataclasses.replace(
                refused, detail=refused.detail + self._quotes.cheaper_hint(req, spec, len(inputs), statuses)
            )
            # Kept as it was priced: an approval runs the model and size the moderator saw.
            priced = dataclasses.replace(req, model=spec.model_alias, size=spec.size, aspect_ratio=spec.aspect_ratio)
            return await self._approvals.offer(priced, hinted, refused.detail, to_micros(estimate))
        return self._accepted(req, model, quote, submitted, statuses)

    def _accepted(
        self,
        req: Request,
        model: str | None,
        quote: Quote,
        submitted: Submitted,
        statuses: list[BudgetStatus],
    ) -> Accepted:
        """What the user is told about an admitted job (`model`: the one asked for, if any)."""
        spec, estimate = quote.spec, quote.estimate
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
            input_images=spec.input_images,
        )

    async def _duplicate_of(self, job_id: int) -> Accepted:
        job = await self._store.get_job(job_id)
        assert job is not None, "job_for_key just found it, and jobs are never deleted"
        position = await self._store.position(job_id)
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
            input_images=job.spec.input_images,
        )
