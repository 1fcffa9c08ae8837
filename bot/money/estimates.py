"""What a request holds before it runs, and what that means for its budgets.

The hold covers the dearest route the request may end up on: the model asked
for, each usable fallback (a Gemini model or a gateway route), and, with no
route named, each gateway this bot runs that prices the model. A hedged
request may make two billed calls, so it holds the two dearest.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from bot.catalog import Catalog
from bot.money import pricing, to_micros
from bot.money.budgets import BudgetStatus
from bot.types import GenerationSpec, InvalidRequest, Lane


def hold_estimate(
    catalog: Catalog, spec: GenerationSpec, attachments: int, gateway_routes: Sequence[str] = ()
) -> Decimal:
    """The most this request may cost: the max over its chain (the sum of the two dearest when hedged).

    Raises pricing.Unpriced (an InvalidRequest) when the model asked for has no
    price; an unpriced fallback is skipped (the service keeps only priced ones)."""
    images_sent = attachments + (spec.parent_image_id is not None)
    dearest = []
    for entry in (spec.model_alias, *spec.fallbacks):
        alias = entry.rpartition(":")[2]
        prices = gateway_prices(catalog, spec, (entry,), gateway_routes)
        try:
            prices.append(
                pricing.estimate(
                    catalog.resolve(alias), spec.size, spec.lane, images_sent, prompt_chars=len(spec.prompt)
                )
            )
        except InvalidRequest:
            if alias == spec.model_alias:
                raise  # the model asked for must be priced
        dearest += [max(prices)] if prices else []
    if spec.hedge_after_s is not None:
        return sum(sorted(dearest, reverse=True)[:2], Decimal(0))
    return max(dearest)


def gateway_prices(
    catalog: Catalog, spec: GenerationSpec, entries: Sequence[str], gateway_routes: Sequence[str]
) -> list[Decimal]:
    """What each of these chain entries costs on a configured gateway that may serve it, at
    that model's own gateway price (a Flash image is never held at Pro's)."""
    if spec.lane is not Lane.STANDARD:
        return []  # the other lanes are Gemini's alone
    prices = []
    for entry in entries:
        route, _, alias = entry.rpartition(":")
        for name in (route,) if route else gateway_routes:
            gateway = catalog.gateways.get(name)
            price = gateway.price(catalog.resolve(alias).alias, spec.size) if gateway else None
            if price is not None:
                prices.append(price)
    return prices


def fits(statuses: Sequence[BudgetStatus], estimate_usd: Decimal) -> bool:
    """Whether every budget can take this much more (the store checks again, atomically, when it holds)."""
    return not any(s.over_limit(to_micros(estimate_usd)) for s in statuses)


def near_edge(statuses: Sequence[BudgetStatus], estimate_usd: Decimal) -> list[BudgetStatus]:
    """The budgets this request would take past their soft (alert) threshold."""
    return [s for s in statuses if s.past_soft_threshold(to_micros(estimate_usd))]


def newly_past_threshold(statuses: Sequence[BudgetStatus], held_micros: int) -> list[BudgetStatus]:
    """The budgets that were under their alert line and that this hold takes past it."""
    return [s for s in statuses if not s.past_soft_threshold() and s.past_soft_threshold(held_micros)]


def least_remaining(statuses: Sequence[BudgetStatus]) -> int | None:
    """Micro-dollars left in the tightest budget, or None when no budget applies."""
    return min((s.remaining_micros for s in statuses), default=None)
