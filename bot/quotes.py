"""What a request would cost, and whether to ask before spending it.

A quote is a request's spec with its hold (bot.money.estimates). Near a
budget's alert line a "downgrade" team gets the cheaper model instead, and
anyone else a question; so does a request above the team's per-image limit.
A refusal for want of budget may suggest the cheaper model when it would fit.
The thresholds are the team's (policies.routing); the words are
bot.confirmations'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from bot import confirmations
from bot.catalog import Catalog
from bot.money.budgets import BudgetStatus
from bot.money.estimates import fits, hold_estimate, near_edge
from bot.specs import SpecBuilder
from bot.types import EditRequest, GenerationSpec, ImagineRequest, InvalidRequest, NeedsConfirmation
from policies.config import PolicyBook
from policies.routing import DOWNGRADE, check_channel, downgrade_for, over_confirm_limit

Request = ImagineRequest | EditRequest


@dataclass(frozen=True)
class Quote:
    spec: GenerationSpec
    estimate: Decimal
    downgraded_from: str | None = None  # the model asked for, when a cheaper one was quoted instead


class Quoter:
    def __init__(
        self, specs: SpecBuilder, catalog: Catalog, policies: PolicyBook, gateway_routes: tuple[str, ...]
    ) -> None:
        self._specs = specs
        self._catalog = catalog
        self._policies = policies
        self._gateway_routes = gateway_routes

    def estimate(self, spec: GenerationSpec, attachments: int) -> Decimal:
        """The hold: the dearest route the request may end up on (the two dearest when hedged)."""
        return hold_estimate(self._catalog, spec, attachments, self._gateway_routes)

    def _other_model(self, req: Request, spec: GenerationSpec, alias: str, attachments: int) -> Quote:
        """The same request on another model, priced; InvalidRequest when that model can't
        take it here (a channel rule, no price, too many images)."""
        other = self._specs.spec(
            req, spec.prompt, alias, spec.aspect_ratio, spec.size, spec.parent_image_id, attachments
        )
        check_channel(self._policies.for_team(req.team), req.channel, other.model_alias, other.size)
        return Quote(other, self.estimate(other, attachments))

    def ask_first(
        self, req: Request, quote: Quote, statuses: Sequence[BudgetStatus], attachments: int
    ) -> Quote | NeedsConfirmation:
        """For a request every budget can take: the quote to run (maybe the cheaper model's),
        or the question to ask first."""
        policy = self._policies.for_team(req.team)
        edge = near_edge(statuses, quote.estimate)
        cheaper_alias = downgrade_for(policy, quote.spec.model_alias) if edge else None
        if cheaper_alias is not None:
            try:
                cheaper = self._other_model(req, quote.spec, cheaper_alias, attachments)
            except InvalidRequest:  # the cheaper model can't do this here: ask instead
                return self.question(req, quote, statuses, attachments, edge[0].describe())
            quote = Quote(cheaper.spec, cheaper.estimate, downgraded_from=quote.spec.model_alias)
        elif edge:
            return self.question(
                req, quote, statuses, attachments, confirmations.past_alert_line(edge[0], quote.estimate)
            )
        limit = policy.confirm_above_usd  # None: no per-image limit
        if limit is not None and over_confirm_limit(policy, quote.estimate):
            return self.question(
                req, quote, statuses, attachments, confirmations.above_per_image_limit(quote.estimate, limit)
            )
        return quote

    def question(
        self, req: Request, quote: Quote, statuses: Sequence[BudgetStatus], attachments: int, why: str
    ) -> NeedsConfirmation:
        flash = None
        if quote.spec.model_alias != "flash":
            try:
                flash = self.estimate(
                    self._specs.spec(
                        req,
                        quote.spec.prompt,
                        "flash",
                        quote.spec.aspect_ratio,
                        quote.spec.size,
                        quote.spec.parent_image_id,
                        attachments,
                    ),
                    attachments,
                )
            except InvalidRequest:
                flash = None  # Flash can't do this request; adapters offer only [Run]
        return confirmations.question(req, quote.spec, quote.estimate, flash, statuses, why)

    def cheaper_hint(
        self, req: Request, spec: GenerationSpec, attachments: int, statuses: Sequence[BudgetStatus]
    ) -> str:
        """For a refusal: the cheaper model that would still fit every budget, if there is one."""
        cheaper_alias = DOWNGRADE.get(spec.model_alias)
        if cheaper_alias is None:
            return ""
        try:
            cheaper = self._other_model(req, spec, cheaper_alias, attachments)
        except InvalidRequest:
            return ""
        return confirmations.cheaper_hint(cheaper_alias, cheaper.estimate) if fits(statuses, cheaper.estimate) else ""
