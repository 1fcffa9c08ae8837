"""What the user is told about money before anything runs: the questions asked near
a budget's edge or above the per-image limit, the refusals of a budget or quota,
and the held requests a [Run] / [Use Flash] answer resubmits (kept as JSON).

The figures come from bot.money and the thresholds from policies; this module
only words them.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
from collections.abc import Callable, Sequence
from decimal import Decimal

from bot.money import from_micros, to_micros, usd
from bot.money.admission import Denied
from bot.money.budgets import BudgetStatus, when
from bot.money.estimates import least_remaining
from bot.money.quotas import QUOTA_TEXT
from bot.store.ports import Store
from bot.types import (
    EditRequest,
    GenerationSpec,
    ImagineRequest,
    InputImage,
    NeedsConfirmation,
    RefusalReason,
    Refused,
)
from policies.moderation import printable

NO_BUDGET_YET = (
    "Your team has no budget yet, and this bot needs one before it makes images. A moderator "
    "(an admin, or someone with Manage Server on Discord) can set one with "
    "`{how}`. Nothing was charged."
)
# How each chat platform's moderators set the budget: Slack takes words, Discord subcommand options.
SET_BUDGET_HOW = {"discord": "/imagine-budget set usd:<amount> period:month"}
SET_BUDGET_HOW_ELSEWHERE = "/imagine-budget set <usd> month"
NO_BUDGET_YET_CLI = (
    "Team {team} has no budget yet, and [policy] default_team_budget_usd is 0, so nothing runs "
    "until it has one: python -m bot budget set --team {team} --usd 20. Nothing was charged."
)


def no_budget_yet(team: str, *, platform: str, cli: bool) -> Refused:
    """A team with no budget of its own where the default team budget is 0: nothing runs yet."""
    if cli:
        return Refused(RefusalReason.BUDGET_EXHAUSTED, NO_BUDGET_YET_CLI.format(team=team))
    how = SET_BUDGET_HOW.get(platform, SET_BUDGET_HOW_ELSEWHERE)
    return Refused(RefusalReason.BUDGET_EXHAUSTED, NO_BUDGET_YET.format(how=how))


def cheaper_hint(alias: str, estimate: Decimal) -> str:
    """Added to a budget refusal when a cheaper model would still fit every budget."""
    return f" A {alias} image (about {usd(to_micros(estimate))}) would still fit: ask with model {alias}."


def past_alert_line(edge: BudgetStatus, estimate: Decimal) -> str:
    return (
        f"This image (about {usd(to_micros(estimate))}) takes the {edge.budget.label()} budget "
        f"past its {edge.budget.soft_threshold:.0%} alert line: {edge.describe()}."
    )


def above_per_image_limit(estimate: Decimal, limit: Decimal) -> str:
    return (
        f"This image costs about {usd(to_micros(estimate))}, above the "
        f"{usd(to_micros(limit))} per-image limit that needs a confirmation."
    )


def alert_lines(statuses: Sequence[BudgetStatus], team: str, user: str, held_micros: int) -> tuple[str, ...]:
    """One operator alert per budget that this hold took past its alert line."""
    return tuple(
        f"The {s.budget.label()} budget of team {team} passed its {s.budget.soft_threshold:.0%} "
        f"alert line: {s.describe()}, plus {usd(held_micros)} just requested by {user}."
        for s in statuses
    )


def question(
    req: ImagineRequest | EditRequest,
    spec: GenerationSpec,
    estimate: Decimal,
    flash_estimate: Decimal | None,
    statuses: Sequence[BudgetStatus],
    why: str,
) -> NeedsConfirmation:
    """Ask before spending; `flash_estimate` is None when Flash can't do the request ([Run] only)."""
    remaining = least_remaining(statuses)
    # The resolved settings go with the question, so [Use Flash] runs at the
    # size that was priced, not at Flash's own default.
    resolved = dataclasses.replace(req, model=spec.model_alias, size=spec.size, aspect_ratio=spec.aspect_ratio)
    return NeedsConfirmation(
        detail=why,
        estimate_usd=estimate,
        flash_estimate_usd=flash_estimate,
        remaining_usd=from_micros(remaining) if remaining is not None else None,
        request=resolved,
    )


def refusal(denied: Denied, estimate: Decimal | None) -> Refused:
    """Why the store did not admit a request: a budget it would go over, or a quota.
    Without an estimate (checked before the request could be priced) the budget is used up."""
    if denied.budget is not None:
        b = denied.budget
        assert denied.resets_at is not None, "a budget's period always ends, so its denial says when"
        spent = f"{usd(denied.current)} is already spent or held"
        return Refused(
            RefusalReason.BUDGET_EXHAUSTED,
            (
                f"This would go over the {b.label()} budget of {usd(b.limit_micros)} per {b.period.value}: "
                f"{spent} and this image needs up to {usd(to_micros(estimate))}. "
                if estimate is not None
                else f"The {b.label()} budget of {usd(b.limit_micros)} per {b.period.value} is used up: {spent}. "
            )
            + f"It resets {when(denied.resets_at)}. Nothing was charged.",
        )
    sentence, frees = QUOTA_TEXT[denied.limit]
    reset = when(denied.resets_at) if denied.resets_at else ""
    return Refused(
        RefusalReason.QUOTA_EXCEEDED,
        (
            sentence.format(current=denied.current, limit=denied.allowed)
            + " "
            + frees.format(reset=reset).capitalize()
            + ". Nothing was charged."
        ),
    )


# Read again from the platform when the question is answered (ImagineService.confirm), never kept.
NOT_KEPT = frozenset({"roles", "platform_admin"})


def request_json(req: ImagineRequest | EditRequest) -> dict:
    data = {f.name: getattr(req, f.name) for f in dataclasses.fields(req) if f.name not in NOT_KEPT}
    data["images"] = [{"mime": i.mime, "data": base64.b64encode(i.data).decode()} for i in req.images]
    data["kind"] = "edit" if isinstance(req, EditRequest) else "imagine"
    for text in ("prompt", "instruction"):  # as moderation cleans them; a database may refuse the rest
        if text in data:
            data[text] = printable(data[text])
    return data


def request_from_json(data: dict) -> ImagineRequest | EditRequest:
    data = dict(data)
    cls = EditRequest if data.pop("kind") == "edit" else ImagineRequest
    data["images"] = tuple(InputImage(base64.b64decode(i["data"]), i["mime"]) for i in data["images"])
    return cls(**data)


def confirmed(outcome: NeedsConfirmation, *, use_flash: bool = False) -> ImagineRequest | EditRequest:
    """The request to resubmit when the user picks [Run] or [Use Flash]."""
    return confirmed_request(outcome.request, use_flash=use_flash)


def confirmed_request(request: ImagineRequest | EditRequest, *, use_flash: bool) -> ImagineRequest | EditRequest:
    return dataclasses.replace(request, confirmed=True, model="flash" if use_flash else request.model)


class HeldQuestions:
    """Requests waiting for their [Run] / [Use Flash] answer, kept in the store under a token."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock

    async def hold(self, outcome: NeedsConfirmation, ttl_seconds: float) -> str:
        """Keep a question's request; returns its token."""
        token = secrets.token_urlsafe(12)
        req = outcome.request
        await self._store.save_confirmation(token, req.team, req.user, request_json(req), ttl_seconds)
        return token

    async def take(
        self,
        token: str,
        team: str,
        user: str,
        *,
        use_flash: bool,
        idempotency_key: str | None,
        idempotency_window: float | None,
    ) -> tuple[ImagineRequest | EditRequest, float] | Refused:
        """The request to run as confirmed, and until when a later press gets it again (see
        ImagineService.confirm); or why not: someone else's question, or one expired."""
        held = await self._store.take_confirmation(token, team, user)
        if held == "not_yours":
            return Refused(RefusalReason.NOT_ALLOWED_HERE, "Only the person who asked can answer this.")
        if isinstance(held, str):  # "expired"
            return Refused(
                RefusalReason.NOT_FOUND, "That question was already answered, or it has expired. Please ask again."
            )
        if "answered" in held:  # a later press on a question already answered
            return request_from_json(held["answered"]), float(held["until"])
        request = confirmed_request(request_from_json(held), use_flash=use_flash)
        if idempotency_key is not None:
            request = dataclasses.replace(
                request, idempotency_key=idempotency_key, idempotency_window=idempotency_window
            )
        return request, self._clock() + (idempotency_window or 0)

    async def keep_answer(
        self, token: str, team: str, user: str, request: ImagineRequest | EditRequest, until: float
    ) -> None:
        """Keep the answered question under its token until `until`, with the request it ran."""
        await self._store.save_confirmation(
            token, team, user, {"answered": request_json(request), "until": until}, until - self._clock()
        )
