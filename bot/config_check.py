"""Start-up checks that money can't go wrong by configuration.

Nothing may be called without a price: a fallback chain, a gateway route or a
lane that would run a model nobody priced is refused when the configuration
loads, naming the team, the chain and the model, so the operator fixes it
before a single image is made (the process exits with code 4).
"""

from __future__ import annotations

from bot.catalog import Catalog
from bot.types import InvalidRequest
from policies.config import PolicyBook


def unpriced_paths(catalog: Catalog, policies: PolicyBook, gateway_routes: tuple[str, ...] = ()) -> list[str]:
    """Every configured way to run a model without a price, one sentence each ([] when none)."""
    problems = [problem for route in gateway_routes for problem in _gateway_problems(catalog, route)]
    for team, policy in policies.teams().items():
        where = f'team "{team}"' if team else "[policy]"
        for alias, chain in policy.fallback.items():
            label = f"{where} fallback {alias} -> {', '.join(chain)}"
            try:
                catalog.resolve(alias)
            except InvalidRequest:
                problems.append(f"{label}: '{alias}' is not a model in the catalog")
            for step in chain:
                route, _, model = step.rpartition(":")
                problems += [f"{label}: {why}" for why in _step_problems(catalog, route, model)]
    return problems


def _gateway_problems(catalog: Catalog, route: str) -> list[str]:
    """A configured gateway route must price every model it serves, at each of that model's sizes."""
    gateway = catalog.gateways.get(route)
    if gateway is None or not gateway.prices:
        return [
            f"gateway route '{route}' has no price table: add [gateways.{route}.price] "
            f'pro = {{ "1K" = ... }} to IMAGINE_CONFIG'
        ]
    problems = []
    for alias in gateway.models:
        try:
            sizes = catalog.resolve(alias).sizes
        except InvalidRequest:
            problems.append(f"gateway route '{route}' serves '{alias}', which is not a model in the catalog")
            continue
        if missing := [size for size in sizes if gateway.price(alias, size) is None]:
            problems.append(
                f"gateway route '{route}' has no price for {alias} at {', '.join(missing)}: add them "
                f"to [gateways.{route}.price] {alias} in IMAGINE_CONFIG"
            )
    return problems


def _step_problems(catalog: Catalog, route: str, model: str) -> list[str]:
    try:
        info = catalog.resolve(model)
    except InvalidRequest:
        return [f"'{model}' is not a model in the catalog"]
    if route:
        gateway = catalog.gateways.get(route)
        if gateway is None or not any(gateway.price(info.alias, size) is not None for size in info.sizes):
            return [f"route '{route}' has no price for {info.alias} ([gateways.{route}.price] {info.alias})"]
        return []
    if not info.price:
        return [f"'{info.alias}' ({info.model_id}) has no price; set [models.{info.alias}.price] or drop it"]
    return []
