"""The core API adapters call: submit, edit, status, cancel, usage, budgets.

Expected failures come back as `Refused` outcomes with a sentence fit for
the user; adapters render them in their own words and never see an
exception for bad input. Every decision is made here and in policies/;
the store applies the money checks atomically.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from bot import images
from bot.money import pricing
from bot.catalog import Catalog, ModelInfo, retired_note
from bot.metrics import Metrics
from bot.money import from_micros, to_micros, usd
from bot.money.admission import Admission, Denied, with_default_team_budget
from bot.store.batch_sizing import BATCH_INLINE_BYTES, inline_request_bytes
from bot.store.ports import Store, StoreUnavailable
from bot.types import (
    Accepted, CheckedImage, EditRequest, GenerationSpec, ImagineRequest, InputImage,
    InvalidRequest, Job, Lane, NeedsConfirmation, NewJob, Outcome, RefusalReason, Refused, StoredImage,
)
from policies.config import PolicyBook, TeamPolicy
from policies.moderation import ModerationRefusal, check_prompt, printable
from bot.money.quotas import QUOTA_TEXT, QuotaLimits
from policies.routing import DOWNGRADE, NotAllowedHere, check_channel
from bot.money.budgets import Budget, BudgetStatus, Period, Scope, period_start, when

log = logging.getLogger(__name__)
STORE_DOWN = "I can't reach my database right now, so nothing was queued. Please try again in a minute."
NOT_ON_ALLOW_LIST = ("This bot isn't enabled for this workspace or server. Ask the bot's operator to add "
                     "it to the allow-list ([access] teams). Nothing was charged.")
NO_BUDGET_YET = ("Your team has no budget yet, and this bot needs one before it makes images. A moderator "
                 "(an admin, or someone with Manage Server on Discord) can set one with "
                 "`/imagine-budget set <usd> month`. Nothing was charged.")
NO_BUDGET_YET_CLI = ("Team {team} has no budget yet, and [policy] default_team_budget_usd is 0, so nothing runs "
                     "until it has one: python -m bot budget set --team {team} --usd 20. Nothing was charged.")
# By lane value (a Lane is its value as a key too): its name, and the flag that asks for it.
LANE_NAMES = {"standard": "Standard", "flex": "Flex", "batch": "Batch", "priority": "Priority"}
LANE_FLAGS = {"standard": "no flag", "flex": "--relax", "batch": "--batch", "priority": "--priority"}
PRIORITY_NOT_ENABLED = ("The Priority lane (--priority) is not enabled for this team: it costs about {extra} more "
                        "than Standard. The bot's operator can enable it with `priority = true` under "
                        "[teams.\"{team}\"] in IMAGINE_CONFIG. Leave out --priority to run it now. Nothing was charged.")
# The platform of requests made from the terminal (python -m bot imagine).
CLI_PLATFORM = "cli"
MAX_BUDGET_USD = Decimal(1_000_000)


@dataclass(frozen=True)
class Caller:
    """Who is asking, and what their platform says about them (admin/owner,
    Manage Server...). The core decides what that allows."""

    team: str
    user: str
    platform_admin: bool = False
    platform: str = ""


@dataclass(frozen=True)
class UsageReport:
    team: str
    user: str
    user_spent_today_micros: int
    user_spent_month_micros: int
    team_spent_month_micros: int
    budgets: list[BudgetStatus]


class ImagineService:
    def __init__(
        self, store: Store, catalog: Catalog, *, policies: PolicyBook | None = None,
        max_attempts: int = 3, batch_lane: bool = False, service_tiers: bool | None = None, cache_ttl: float = 0,
        on_submit: Callable[[], None] | None = None, clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None, gateway_routes: tuple[str, ...] = (),
    ) -> None:
        self._cache_ttl = cache_ttl
        self._gateway_routes = gateway_routes
        self._metrics = metrics or Metrics()
        self._store = store
        self._catalog = catalog
        self._policies = policies or PolicyBook()
        self._max_attempts = max_attempts
        self._batch_lane = batch_lane
        # Flex and Priority (generateContent's service_tier) need the Developer API, as Batch does.
        self._service_tiers = batch_lane if service_tiers is None else service_tiers
        self._on_submit = on_submit or (lambda: None)
        self._clock = clock

    # -- generating -----------------------------------------------------

    async def submit(self, req: ImagineRequest) -> Outcome:
        return await self._guarded(self._enqueue(
            req, kind="imagine", prompt=req.prompt, model=req.model, aspect_ratio=req.aspect_ratio,
            size=req.size, parent_image_id=None,
        ))

    async def edit(self, req: EditRequest) -> Outcome:
        """Edit a finished image of the same team; its settings carry over unless overridden."""
        async def edit() -> Outcome:
            parent = await self._store.get_image(req.parent_image_id)
            parent_job = await self._store.get_job(parent.job_id) if parent and parent.job_id else None
            if parent is None or parent.role != "output" or parent_job is None or parent_job.team != req.team:
                return Refused(RefusalReason.NOT_FOUND, "I can't find that image to edit.")
            return await self._enqueue(
                req, kind="edit", prompt=req.instruction,
                model=req.model or parent_job.spec.model_alias,
                aspect_ratio=req.aspect_ratio or parent_job.spec.aspect_ratio,
                size=req.size or parent_job.spec.size,
                parent_image_id=parent.id, parent_sha256=parent.sha256, parent_bytes=len(parent.data),
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
        self, req: ImagineRequest | EditRequest, *, kind: str, prompt: str, model: str | None,
        aspect_ratio: str | None, size: str | None, parent_image_id: int | None,
        parent_sha256: str | None = None, parent_bytes: int = 0,
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
        if policy.default_team_budget_usd == 0 and not await self._has_own_team_budget(req.team):
            return Refused(RefusalReason.BUDGET_EXHAUSTED, NO_BUDGET_YET_CLI.format(team=req.team)
                           if req.platform == CLI_PLATFORM else NO_BUDGET_YET)
        try:
            text = check_prompt(prompt, max_chars=policy.max_prompt_chars, banned_terms=policy.banned_terms)
        except ModerationRefusal as exc:
            await self._store.record_moderation(
                req.team, req.channel, req.user, exc.reason, None if policy.privacy_mode else printable(prompt))
            return Refused(RefusalReason.MODERATION, str(exc))
        try:
            inputs = check_images(req.images)
            spec = self._spec(req, text, model, aspect_ratio, size, parent_image_id, len(inputs))
            if spec.lane is Lane.BATCH:
                check_fits_a_batch(spec, inputs, parent_bytes)
            check_channel(policy, req.channel, spec.model_alias, spec.size)
            estimate = self._estimate(spec, len(inputs))
        except NotAllowedHere as exc:
            return Refused(RefusalReason.NOT_ALLOWED_HERE, str(exc))
        except pricing.Unpriced as exc:
            return Refused(RefusalReason.UNPRICED, str(exc))
        except InvalidRequest as exc:
            return Refused(RefusalReason.INVALID_REQUEST, str(exc))

        downgraded_from = None
        default_budget = self.default_team_budget(req.team)
        statuses = await self._store.budget_statuses(req.team, req.channel, req.user, default_budget)
        # Fit first: a request no budget can take is refused, never offered a
        # confirmation (the store checks again, atomically, when it holds).
        fits = not any(s.over_limit(to_micros(estimate)) for s in statuses)
        # An over-budget request skips the questions below: the store refuses it
        # (or answers it from the cache, at $0), never a confirmation.
        if not req.confirmed and fits:
            near_edge = [s for s in statuses if s.past_soft_threshold(to_micros(estimate))]
            if near_edge and policy.over_soft_threshold == "downgrade" and spec.model_alias in DOWNGRADE:
                try:
                    cheaper = self._spec(req, text, DOWNGRADE[spec.model_alias], spec.aspect_ratio, spec.size,
                                         parent_image_id, len(inputs))
                    check_channel(policy, req.channel, cheaper.model_alias, cheaper.size)
                    downgraded_from, spec, estimate = spec.model_alias, cheaper, self._estimate(cheaper, len(inputs))
                except InvalidRequest:  # the cheaper model can't do this here (channel rule, no price): ask instead
                    return self._confirm(req, spec, estimate, statuses, len(inputs), near_edge[0].describe())
            elif near_edge:
                edge = near_edge[0]
                return self._confirm(req, spec, estimate, statuses, len(inputs), (
                    f"This image (about {usd(to_micros(estimate))}) takes the {edge.budget.label()} budget "
                    f"past its {edge.budget.soft_threshold:.0%} alert line: {edge.describe()}."))
            if policy.confirm_above_usd is not None and estimate > policy.confirm_above_usd:
                return self._confirm(req, spec, estimate, statuses, len(inputs),
                                     f"This image costs about {usd(to_micros(estimate))}, above the "
                                     f"{usd(to_micros(policy.confirm_above_usd))} per-image limit that "
                                     f"needs a confirmation.")

        job = NewJob(
            team=req.team, channel=req.channel, user=req.user, platform=req.platform, kind=kind,
            spec=spec, max_attempts=self._max_attempts, delivery=dict(req.delivery),
            idempotency_key=req.idempotency_key, idempotency_window=req.idempotency_window,
            cache_key=None if req.fresh else cache_key(spec, inputs, parent_sha256),
            announced=req.announced,
        )
        admission = Admission(to_micros(estimate), self._catalog.version, QuotaLimits.of(policy),
                              default_team_budget=default_budget)
        submitted = await self._store.submit(job, inputs, admission, cache_ttl=self._cache_ttl)
        if isinstance(submitted, Denied):
            refused = self._refusal(submitted, estimate)
            if submitted.budget is None:
                return refused
            return dataclasses.replace(refused, detail=refused.detail + self._cheaper_hint(
                req, spec, text, parent_image_id, len(inputs), statuses))
        if submitted.cached:
            self._metrics.cache_hits.inc()
            self._on_submit()  # its result is already in the outbox
            return Accepted(job_id=submitted.job_id, position=0, model=spec.model_alias, size=spec.size,
                            aspect_ratio=spec.aspect_ratio, estimate_usd=Decimal(0), cached=True,
                            retired_note=self._retired_note(model, spec.model_alias))
        if not submitted.duplicate:
            self._on_submit()
        held = to_micros(estimate)
        alerts = () if submitted.duplicate else tuple(
            f"The {s.budget.label()} budget of team {req.team} passed its {s.budget.soft_threshold:.0%} "
            f"alert line: {s.describe()}, plus {usd(held)} just requested by {req.user}."
            for s in statuses if not s.past_soft_threshold() and s.past_soft_threshold(held))
        return Accepted(
            job_id=submitted.job_id, position=submitted.position, model=spec.model_alias,
            size=spec.size, aspect_ratio=spec.aspect_ratio, estimate_usd=estimate,
            duplicate=submitted.duplicate, downgraded_from=downgraded_from, alerts=alerts,
            relaxed=spec.lane is Lane.BATCH, lane=spec.lane.value, lane_note=self._lane_note(req, spec),
            retired_note=self._retired_note(model, spec.model_alias),
        )

    def _spec(
        self, req: ImagineRequest | EditRequest, text: str, model: str | None,
        aspect_ratio: str | None, size: str | None, parent_image_id: int | None, attachments: int,
    ) -> GenerationSpec:
        # A retired model's request (an edit of its image too) is made with its replacement.
        info, ratio, size = self._resolve(model, aspect_ratio, size)
        lane = self._lane(req, info)
        # The parent image (for edits) is read by the worker from its own row, and counts too.
        sent = attachments + (parent_image_id is not None)
        if sent > info.max_reference_images:
            counted = ", counting the image being edited" if parent_image_id is not None else ""
            raise InvalidRequest(f"{info.alias} takes at most {info.max_reference_images} images with one request "
                                 f"(this one has {sent}{counted}). Send fewer images.")
        # The other lanes are Gemini's alone: no fallbacks, and priced at their own rate.
        fallbacks = () if lane is not Lane.STANDARD else self._usable_fallbacks(req, info.alias, ratio, size)
        # Hedging needs a route to hedge with: the next in the chain.
        hedge_after_s = self._policies.for_team(req.team).hedge_after_s if fallbacks else None
        return GenerationSpec(
            prompt=text, model_alias=info.alias, model_id=info.model_id, aspect_ratio=ratio,
            size=size, lane=lane,
            send_image_size=info.send_image_size, parent_image_id=parent_image_id, fallbacks=fallbacks,
            hedge_after_s=hedge_after_s,
        )

    def _lane(self, req: ImagineRequest | EditRequest, info: ModelInfo) -> Lane:
        """The lane asked for, if this team, this model and this bot's setup allow it. A relaxed
        request on a model without Flex goes to the Batch lane at the same half price
        (`lane_note` says so); anything else a model or the bot lacks is refused, never sent
        at Standard's full price."""
        asked = requested_lane(req)
        if asked is Lane.PRIORITY and not self._policies.for_team(req.team).priority:
            raise InvalidRequest(PRIORITY_NOT_ENABLED.format(
                extra=f"{info.priority_multiplier - 1:.0%}", team=req.team))
        if asked is Lane.FLEX and "flex" not in info.lanes and "batch" in info.lanes and self._batch_lane:
            return Lane.BATCH
        if asked.value not in info.lanes:
            takes = ", ".join(f"{LANE_NAMES[lane]} ({LANE_FLAGS[lane]})" for lane in info.lanes)
            raise InvalidRequest(f"{info.alias} has no {LANE_NAMES[asked]} lane ({LANE_FLAGS[asked]}). "
                                 f"Its lanes: {takes}. Nothing was charged.")
        if asked is Lane.BATCH and not self._batch_lane:
            raise InvalidRequest("The Batch lane (--batch) needs Google's Batch API, which this bot is not "
                                 "set up for (it needs a Gemini API key). Leave out --batch.")
        if asked in (Lane.FLEX, Lane.PRIORITY) and not self._service_tiers:
            raise InvalidRequest(f"The {LANE_NAMES[asked]} lane ({LANE_FLAGS[asked]}) needs the Gemini Developer "
                                 f"API (a Gemini API key), which this bot is not set up for. Leave out "
                                 f"{LANE_FLAGS[asked]}.")
        return asked

    def _lane_note(self, req: ImagineRequest | EditRequest, spec: GenerationSpec) -> str | None:
        if requested_lane(req) is Lane.FLEX and spec.lane is Lane.BATCH:
            return (f"{spec.model_alias} has no Flex lane, so this relaxed request goes to the Batch lane "
                    "at the same half price; results within hours.")
        return None

    def _resolve(self, model: str | None, aspect_ratio: str | None, size: str | None) -> tuple[ModelInfo, str, str]:
        resolved = self._catalog.validate_on(self._today(), model, aspect_ratio, size)
        return resolved.model, resolved.aspect_ratio, resolved.size

    def _today(self) -> datetime.date:
        return datetime.datetime.fromtimestamp(self._clock(), datetime.UTC).date()

    def _retired_note(self, model: str | None, made_with: str) -> str | None:
        """The reply's note when `model` is retired ("legacy was retired on ...; made with flash.")."""
        _, retired = self._catalog.current(model, self._today())
        return retired_note(retired, made_with) if retired else None

    def _usable_fallbacks(self, req: ImagineRequest | EditRequest, alias: str, ratio: str,
                          size: str) -> tuple[str, ...]:
        """The team's fallbacks for `alias` that may serve this very request:
        allowed in this channel, able to make this ratio and size, and priced.
        A fallback obeys every rule the model asked for obeys."""
        policy = self._policies.for_team(req.team)
        usable = []
        for fallback in policy.fallback.get(alias, ()):
            route, _, fallback_alias = fallback.rpartition(":")
            try:
                info, _, _ = self._catalog.validate(fallback_alias, ratio, size)
                if info.retired(self._today()):
                    continue  # Google answers a retired model with a 404
                check_channel(policy, req.channel, info.alias, size)
                if route:
                    gateway = self._catalog.gateways.get(route)
                    # A route this bot does not run can't serve it (and must not inflate the hold).
                    if route not in self._gateway_routes or gateway is None or gateway.price(info.alias, size) is None:
                        continue
                else:
                    pricing.image_price(info, size, Lane.STANDARD)
            except InvalidRequest:
                continue  # NotAllowedHere and Unpriced are InvalidRequests too
            usable.append(fallback)
        return tuple(usable)

    def _cheaper_hint(self, req, spec: GenerationSpec, text: str, parent_image_id: int | None,
                      attachments: int, statuses: list[BudgetStatus]) -> str:
        """For a refusal: the cheaper model that would still fit every budget, if there is one."""
        cheaper_alias = DOWNGRADE.get(spec.model_alias)
        if cheaper_alias is None:
            return ""
        try:
            cheaper = self._spec(req, text, cheaper_alias, spec.aspect_ratio, spec.size, parent_image_id,
                                 attachments)
            check_channel(self._policies.for_team(req.team), req.channel, cheaper.model_alias, cheaper.size)
            estimate = self._estimate(cheaper, attachments)
        except InvalidRequest:
            return ""
        if any(s.over_limit(to_micros(estimate)) for s in statuses):
            return ""
        return f" A {cheaper_alias} image (about {usd(to_micros(estimate))}) would still fit: ask with model {cheaper_alias}."

    async def _duplicate_of(self, job_id: int) -> Accepted:
        job, position = await self.status(job_id)
        return Accepted(job_id=job_id, position=position or 0, model=job.spec.model_alias, size=job.spec.size,
                        aspect_ratio=job.spec.aspect_ratio, estimate_usd=from_micros(job.held_micros),
                        duplicate=True, relaxed=job.spec.lane is Lane.BATCH, lane=job.spec.lane.value)

    async def _has_own_team_budget(self, team: str) -> bool:
        return any(b.scope is Scope.TEAM for b in await self._store.budgets(team))

    def _estimate(self, spec: GenerationSpec, attachments: int) -> Decimal:
        """The hold covers the dearest model the request may end up on (its fallbacks too).

        With hedging, two calls of the chain may run and both are billed: the hold is the
        sum of the two dearest (the primary and the dearest route that may hedge it)."""
        images_sent = attachments + (spec.parent_image_id is not None)
        dearest = []
        for entry in (spec.model_alias, *spec.fallbacks):
            alias = entry.rpartition(":")[2]
            prices = self._gateway_prices(spec, (entry,))
            try:
                prices.append(pricing.estimate(self._catalog.resolve(alias), spec.size, spec.lane, images_sent,
                                               prompt_chars=len(spec.prompt)))
            except InvalidRequest:
                if alias == spec.model_alias:
                    raise  # the model asked for must be priced; _usable_fallbacks kept only priced ones
            dearest += [max(prices)] if prices else []
        if spec.hedge_after_s is not None:
            return sum(sorted(dearest, reverse=True)[:2], Decimal(0))
        return max(dearest)

    def _gateway_prices(self, spec: GenerationSpec, entries: Sequence[str]) -> list[Decimal]:
        """What each of these chain entries costs on a configured gateway that may serve it, at
        that model's own gateway price (a Flash image is never held at Pro's)."""
        if spec.lane is not Lane.STANDARD:
            return []  # the other lanes are Gemini's alone
        prices = []
        for entry in entries:
            route, _, alias = entry.rpartition(":")
            for name in (route,) if route else self._gateway_routes:
                gateway = self._catalog.gateways.get(name)
                price = gateway.price(self._catalog.resolve(alias).alias, spec.size) if gateway else None
                if price is not None:
                    prices.append(price)
        return prices

    def _confirm(self, req, spec: GenerationSpec, estimate: Decimal, statuses: list[BudgetStatus],
                 attachments: int, why: str) -> NeedsConfirmation:
        flash = None
        if spec.model_alias != "flash":
            try:
                flash_spec = self._spec(req, spec.prompt, "flash", spec.aspect_ratio, spec.size,
                                        spec.parent_image_id, attachments)
                flash = self._estimate(flash_spec, attachments)
            except InvalidRequest:
                flash = None  # Flash can't do this request; adapters offer only [Run]
        remaining = min((s.remaining_micros for s in statuses), default=None)
        # The resolved settings go with the question, so [Use Flash] runs at the
        # size that was priced, not at Flash's own default.
        resolved = dataclasses.replace(req, model=spec.model_alias, size=spec.size,
                                       aspect_ratio=spec.aspect_ratio)
        return NeedsConfirmation(
            detail=why, estimate_usd=estimate, flash_estimate_usd=flash,
            remaining_usd=from_micros(remaining) if remaining is not None else None, request=resolved,
        )

    def _refusal(self, denied: Denied, estimate: Decimal) -> Refused:
        if denied.budget is not None:
            b = denied.budget
            return Refused(RefusalReason.BUDGET_EXHAUSTED, (
                f"This would go over the {b.label()} budget of {usd(b.limit_micros)} per {b.period.value}: "
                f"{usd(denied.current)} is already spent or held and this image needs up to "
                f"{usd(to_micros(estimate))}. It resets {when(denied.resets_at)}. Nothing was charged."))
        sentence, frees = QUOTA_TEXT[denied.limit]
        reset = when(denied.resets_at) if denied.resets_at else ""
        return Refused(RefusalReason.QUOTA_EXCEEDED, (
            sentence.format(current=denied.current, limit=denied.allowed) + " "
            + frees.format(reset=reset).capitalize() + ". Nothing was charged."))

    async def rerun(
        self, job_id: int, caller: Caller, *, platform: str, channel: str, size: str | None = None,
        delivery: dict | None = None, idempotency_key: str | None = None, idempotency_window: float | None = None,
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
            common = dict(team=caller.team, channel=channel, user=caller.user, platform=platform,
                          model=job.spec.model_alias, aspect_ratio=job.spec.aspect_ratio,
                          size=size or job.spec.size, images=attached, delivery=delivery or {},
                          idempotency_key=idempotency_key, idempotency_window=idempotency_window,
                          fresh=True, announced=True)
            if job.spec.parent_image_id is not None:
                return await self.edit(EditRequest(parent_image_id=job.spec.parent_image_id,
                                                   instruction=job.spec.prompt, **common))
            return await self.submit(ImagineRequest(prompt=job.spec.prompt, **common))
        return await self._guarded(rerun())

    async def may_delete(self, job_id: int, caller: Caller) -> bool:
        """The requester or a moderator may remove a result."""
        job = await self._store.get_job(job_id)
        return job is not None and job.team == caller.team and (
            job.user == caller.user or self.is_moderator(caller))

    # -- confirmations --------------------------------------------------

    async def hold_confirmation(self, outcome: NeedsConfirmation, ttl_seconds: float = 3600) -> str:
        """Keep a NeedsConfirmation's request until [Run] or [Use Flash]; returns its token."""
        token = secrets.token_urlsafe(12)
        req = outcome.request
        await self._store.save_confirmation(token, req.team, req.user, _request_json(req), ttl_seconds)
        return token

    async def confirm(self, token: str, caller: Caller, *, use_flash: bool = False,
                      idempotency_key: str | None = None, idempotency_window: float | None = None,
                      ) -> tuple[Outcome, ImagineRequest | EditRequest | None]:
        """Run a held request as confirmed; only the person who asked may confirm it.

        A button press carries an idempotency key and a window: the answered
        question is then kept that long under the same token, with the first
        press's request and key, so another press (a double click, [Use Flash]
        right after [Run]) resubmits under that key and gets the same job back
        instead of "expired". It is kept no longer than the key is taken."""
        held = await self._guarded(self._store.take_confirmation(token, caller.team, caller.user))
        if isinstance(held, Refused):
            return held, None
        if held == "not_yours":
            return Refused(RefusalReason.NOT_ALLOWED_HERE, "Only the person who asked can answer this."), None
        if held == "expired":
            return Refused(RefusalReason.NOT_FOUND,
                           "That question was already answered, or it has expired. Please ask again."), None
        if "answered" in held:  # a later press on a question already answered
            request, until = _request_from_json(held["answered"]), float(held["until"])
        else:
            request = _confirmed(_request_from_json(held), use_flash=use_flash)
            if idempotency_key is not None:
                request = dataclasses.replace(request, idempotency_key=idempotency_key,
                                              idempotency_window=idempotency_window)
            until = self._clock() + (idempotency_window or 0)
        if idempotency_key is not None and until > self._clock():
            # Before the submit, so a press right behind this one finds it.
            await self._guarded(self._store.save_confirmation(
                token, caller.team, caller.user, {"answered": _request_json(request), "until": until},
                until - self._clock()))
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
        limit = self._policies.for_team(team).default_team_budget_usd
        return Budget(team=team, scope=Scope.TEAM, scope_id="", limit_micros=to_micros(limit),
                      period=Period.MONTH, soft_threshold=float(self.policy(team).soft_threshold), default=True)

    def is_moderator(self, caller: Caller) -> bool:
        return caller.platform_admin or caller.user in self._policies.for_team(caller.team).moderators

    async def usage(self, team: str, user: str, channel: str | None = None, *,
                    platform: str = "") -> UsageReport | Refused:
        if (refused := self._off_allow_list(team, platform)) is not None:
            return refused
        now = self._clock()
        return UsageReport(
            team=team, user=user,
            user_spent_today_micros=await self._store.spent(team, user=user, since=period_start(Period.DAY, now)),
            user_spent_month_micros=await self._store.spent(team, user=user, since=period_start(Period.MONTH, now)),
            team_spent_month_micros=await self._store.spent(team, since=period_start(Period.MONTH, now)),
            budgets=await self._store.budget_statuses(team, channel, user, self.default_team_budget(team)),
        )

    async def show_budgets(self, caller: Caller) -> list[BudgetStatus] | Refused:
        if (refused := self._off_allow_list(caller.team, caller.platform)) is not None:
            return refused
        if not self.is_moderator(caller):
            return Refused(RefusalReason.NOT_MODERATOR, "Only moderators can see the team's budgets.")
        statuses = []
        default = self.default_team_budget(caller.team)
        for budget in with_default_team_budget(await self._store.budgets(caller.team), default):
            channel = budget.scope_id if budget.scope is Scope.CHANNEL else None
            user = budget.scope_id if budget.scope is Scope.USER else None
            statuses += [s for s in await self._store.budget_statuses(caller.team, channel, user, default)
                         if s.budget == budget]
        return statuses

    async def set_budget(
        self, caller: Caller, amount_usd: str | Decimal, period: str = "month", *,
        scope: Scope = Scope.TEAM, scope_id: str = "", soft_threshold: float | None = None,
    ) -> Budget | Refused:
        if (refused := self._off_allow_list(caller.team, caller.platform)) is not None:
            return refused
        if not self.is_moderator(caller):
            return Refused(RefusalReason.NOT_MODERATOR, "Only moderators can change budgets.")
        try:
            amount = Decimal(str(amount_usd).strip().lstrip("$"))
        except InvalidOperation:
            amount = Decimal("NaN")
        if not amount.is_finite() or amount < 0 or amount > MAX_BUDGET_USD:
            return Refused(RefusalReason.INVALID_REQUEST,
                           f"A budget is an amount in dollars between 0 and {MAX_BUDGET_USD:,}, like 50 or 12.5.")
        try:
            period_ = Period(period.strip().lower())
        except ValueError:
            return Refused(RefusalReason.INVALID_REQUEST, "The period is day, week or month.")
        if (scope is Scope.TEAM) != (scope_id == ""):
            return Refused(RefusalReason.INVALID_REQUEST, "A channel or user budget needs the channel or user.")
        threshold = soft_threshold if soft_threshold is not None else float(self.policy(caller.team).soft_threshold)
        if not 0 < threshold <= 1:
            return Refused(RefusalReason.INVALID_REQUEST, "The alert threshold is a fraction between 0 and 1.")
        budget = Budget(team=caller.team, scope=scope, scope_id=scope_id, limit_micros=to_micros(amount),
                        period=period_, soft_threshold=threshold)
        try:
            await self._store.set_budget(budget, updated_by=caller.user)
        except StoreUnavailable:
            log.exception("set_budget: store unavailable")
            return Refused(RefusalReason.UNAVAILABLE, STORE_DOWN)
        log.info("budget set: team=%s %s %s/%s by %s", caller.team, budget.label(),
                 usd(budget.limit_micros), period_.value, caller.user)
        return budget


def cache_key(spec: GenerationSpec, inputs: list[CheckedImage], parent_sha256: str | None) -> str:
    """Requests that would make the same image: same model, size, ratio, prompt and pictures."""
    parts = [spec.model_id, spec.size, spec.aspect_ratio, spec.lane.value, spec.prompt,
             parent_sha256 or "", *(image.sha256 for image in inputs)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def check_fits_a_batch(spec: GenerationSpec, inputs: Sequence[CheckedImage], parent_bytes: int) -> None:
    """A relaxed request must fit in a batch Google takes inline (about 20 MB, images
    base64-encoded): one that never could is refused now, not failed hours later."""
    images = len(inputs) + (spec.parent_image_id is not None)
    size = inline_request_bytes(sum(len(i.data) for i in inputs) + parent_bytes, images, spec.prompt)
    if size > BATCH_INLINE_BYTES:
        raise InvalidRequest(
            f"This request is too big for the Batch lane: its images come to {size / 1_048_576:.1f} MB once "
            f"encoded, and a batch takes at most {BATCH_INLINE_BYTES / 1_048_576:.0f} MB. "
            f"Run it without --batch (or send smaller images).")


def requested_lane(req: ImagineRequest | EditRequest) -> Lane:
    """The lane a request asks for: its `lane`, else Flex for `relax`, else Standard."""
    if req.lane:
        try:
            return Lane(req.lane.strip().lower())
        except ValueError:
            raise InvalidRequest(f"Unknown lane '{req.lane}'. Choose one of: "
                                 f"{', '.join(lane.value for lane in Lane)}.") from None
    return Lane.FLEX if req.relax else Lane.STANDARD


def check_images(attached: Sequence[InputImage]) -> list[CheckedImage]:
    """Every attachment must really be an image; the first that is not refuses the request."""
    return [images.check(img.data) for img in attached]


def _request_json(req: ImagineRequest | EditRequest) -> dict:
    data = {f.name: getattr(req, f.name) for f in dataclasses.fields(req)}
    data["images"] = [{"mime": i.mime, "data": base64.b64encode(i.data).decode()} for i in req.images]
    data["kind"] = "edit" if isinstance(req, EditRequest) else "imagine"
    for text in ("prompt", "instruction"):  # as moderation cleans them; a database may refuse the rest
        if text in data:
            data[text] = printable(data[text])
    return data


def _request_from_json(data: dict) -> ImagineRequest | EditRequest:
    data = dict(data)
    cls = EditRequest if data.pop("kind") == "edit" else ImagineRequest
    data["images"] = tuple(InputImage(base64.b64decode(i["data"]), i["mime"]) for i in data["images"])
    return cls(**data)


def confirmed(outcome: NeedsConfirmation, *, use_flash: bool = False) -> ImagineRequest | EditRequest:
    """The request to resubmit when the user picks [Run] or [Use Flash]."""
    return _confirmed(outcome.request, use_flash=use_flash)


def _confirmed(request: ImagineRequest | EditRequest, *, use_flash: bool) -> ImagineRequest | EditRequest:
    return dataclasses.replace(request, confirmed=True, **({"model": "flash"} if use_flash else {}))
