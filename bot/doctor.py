"""`python -m bot doctor`: is every configured route usable, and what is it costing?"""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.bootstrap import Runtime
from bot.providers.errors import ProviderError, error_class
from bot.settings import Settings


async def doctor(runtime: Runtime, settings: Settings, out: Callable[[str], None] = print) -> bool:
    """Prints a report; True when every configured route works."""
    healthy = True
    counts = await runtime.store.counts_by_state()
    out(f"database  {settings.database_label}: reachable; jobs by state: "
        f"{', '.join(f'{k} {v}' for k, v in sorted(counts.items())) or 'none yet'}")
    out(f"prices    table version {runtime.catalog.version}"
        + (f" (overrides from {settings.imagine_config})" if settings.imagine_config else ""))

    router = runtime.provider
    if router is None:
        out("routes    NONE CONFIGURED (set GEMINI_API_KEY, or OPENAI_COMPAT_BASE_URL for a gateway)")
        healthy = False
    for route in (router.routes.values() if router is not None else ()):
        where = (settings.gemini_base_url or "Google's default endpoint") if route.name == "gemini" \
            else settings.openai_compat_base_url
        started = time.monotonic()
        try:
            listed = {name.removeprefix("models/") for name in await route.provider.list_models()}
        except ProviderError as exc:
            out(f"route     {route.name} ({where}): UNUSABLE: {exc.detail}")
            out(f"          fix: {exc.operator_fix}")
            healthy, listed = False, set()
        else:
            out(f"route     {route.name} ({where}): key works, {len(listed)} models listed "
                f"in {time.monotonic() - started:.2f} s")
        served = [m for m in runtime.catalog.models.values() if route.serves is None or m.alias in route.serves]
        for model in served:
            gateway_model = getattr(route.provider, "gateway_model", None)
            name = gateway_model(model.alias) if gateway_model else model.model_id
            seen = "available" if name in listed else ("not listed" if listed else "unknown")
            table = runtime.catalog.gateways[route.name].table(model.alias) \
                if route.name in runtime.catalog.gateways else model.price
            prices = ", ".join(f"{size} ${price}" for size, price in table.items()) or "NO PRICE (refused)"
            out(f"  {model.alias:<7} -> {name} ({seen}); {prices}; batch x{model.batch_discount}")
        out(f"  limits: {router.requests_per_minute(route.name) or 'no'} requests/minute; up to {route.concurrency.maximum} calls at once "
            f"(halved on a 429, now {route.concurrency.limit})")
        gateway = runtime.catalog.gateways.get(route.name)
        billed = ("billed" if gateway.bills_failed_calls else "not billed") if gateway else \
            "not billed (a blocked answer is billed for the tokens it used)"
        out(f"  failed calls: {billed}")
    for name, gateway in runtime.catalog.gateways.items():
        if router is None or name not in router.routes:
            prices = "; ".join(f"{alias} " + ", ".join(f"{size} ${price}" for size, price in
                                                       gateway.table(alias).items())
                               for alias in gateway.models)
            out(f"gateway   {name} (not configured): {prices or 'no models'}")

    errors = await runtime.store.error_counts(time.time() - 24 * 3600)
    out("errors    last 24 h: " + (", ".join(f"{k} {v}" for k, v in errors.items()) or "none"))
    for kind in errors:
        out(f"  {kind}: {error_class(kind).operator_fix}")
    return healthy

