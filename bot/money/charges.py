"""What each provider call is charged: pure decisions the worker hands to the store.

A call that made an image is charged its route's reported figure, else the
price table applied to its usage. A call that made none is charged by the
first rule that applies (see charge_for_failure). The worker passes the
result to Store.complete / fail / settle_hedge as a Charge; nothing here
touches a store or knows a provider's types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot.catalog import Catalog, ModelInfo
from bot.money import pricing, to_micros
from bot.money.admission import Charge
from bot.types import Lane, Usage


@dataclass(frozen=True)
class Bill:
    """What one call costs, in dollars, with the usage and ledger status it is recorded under."""

    cost: Decimal
    usage: Usage | None
    status: str  # succeeded | blocked | failed, or the error class of a gateway-billed failure

    @property
    def charge(self) -> Charge:
        return Charge(to_micros(self.cost), self.usage, self.status)


@dataclass(frozen=True)
class FailedCall:
    """A call that ended without an image, as money sees it (built by the worker from the error)."""

    kind: str  # the error class
    model_alias: str  # the model that ran (the job's when the route did not say)
    route: str | None
    blocked: bool = False  # the model refused: "blocked" in the ledger
    answered: bool = False  # the model answered, without an image
    reason: str | None = None  # that answer's finish or block reason
    reported_cost: Decimal | None = None  # what the route says it charged for the answer
    usage: Usage | None = None  # the tokens it reported

    @property
    def status(self) -> str:
        return "blocked" if self.blocked else "failed"


@dataclass(frozen=True)
class FailureBill:
    """What a failed attempt is charged (None: free), and what its result says about it."""

    bill: Bill | None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def charge(self) -> Charge | None:
        return self.bill.charge if self.bill is not None else None


def charge_for_success(
    catalog: Catalog, *, model_alias: str, size: str, lane: Lane, reported_cost: Decimal | None, usage: Usage | None
) -> tuple[ModelInfo, Bill]:
    """The model that actually ran (a fallback may differ) and what its image cost: the
    route's reported charge, else the price table applied to its usage at the lane served.
    Raises (pricing.Unpriced, an unknown model) when it cannot be priced."""
    model = catalog.resolve(model_alias)
    cost = reported_cost if reported_cost is not None else pricing.settle(model, size, lane, usage)
    return model, Bill(cost, usage, "succeeded")


def charge_for_failure(
    catalog: Catalog,
    call: FailedCall,
    *,
    size: str,
    lane: Lane,
    billed: Decimal | None = None,
    billed_usage: Usage | None = None,
) -> FailureBill:
    """A failed attempt's charge, by the first rule that applies:

    1. an answer whose route reported what it charged: that figure;
    2. a call through a gateway (and not already `billed`): the gateway's rule, its
       per-image price when it bills failed calls, else nothing;
    3. an answer with token counts: those tokens at the rates of the model that ran;
    4. a call that returned an image we could not use (`billed`, from its success price).
    Anything else (an error before any answer) is free."""
    result: dict[str, Any] = {}
    if call.answered:
        result["block_reason" if call.blocked else "finish_reason"] = call.reason
    gateway = catalog.gateways.get(call.route or "")
    if call.answered and call.reported_cost is not None:
        return FailureBill(
            Bill(call.reported_cost, call.usage, call.status), result | {"cost_usd": str(call.reported_cost)}
        )
    if gateway is not None and billed is None:
        price = gateway.price(call.model_alias, size)
        if gateway.bills_failed_calls and price is not None:
            return FailureBill(Bill(price, call.usage, call.kind), result | {"cost_usd": str(price)})
        return FailureBill(None, result)
    if call.answered and call.usage is not None:
        cost = pricing.tokens_cost(catalog.resolve(call.model_alias), lane, call.usage)
        return FailureBill(
            Bill(cost, call.usage, call.status), result | {"usage": call.usage.to_json(), "cost_usd": str(cost)}
        )
    if billed is not None:
        return FailureBill(Bill(billed, billed_usage, "failed"), result | {"cost_usd": str(billed)})
    return FailureBill(None, result)


def charge_for_hedged_failure(catalog: Catalog, call: FailedCall, *, size: str, lane: Lane) -> Bill | None:
    """A hedged attempt's other call that answered without an image: the route's own
    figure, else its tokens, else a gateway's failed-call price; None when none applies."""
    if call.reported_cost is not None:
        return Bill(call.reported_cost, call.usage, call.status)
    if call.usage is not None:
        return Bill(pricing.tokens_cost(catalog.resolve(call.model_alias), lane, call.usage), call.usage, call.status)
    gateway = catalog.gateways.get(call.route or "")
    price = gateway.price(call.model_alias, size) if gateway is not None else None
    if gateway is not None and gateway.bills_failed_calls and price is not None:
        return Bill(price, None, call.kind)
    return None


def overshoot_micros(cost_micros: int, held_micros: int) -> int:
    """How much a call cost beyond its job's hold (0 when within it). A hold of 0 is
    unknown (a store that does not report it), not an overshoot."""
    if held_micros <= 0:
        return 0
    return max(0, cost_micros - held_micros)
