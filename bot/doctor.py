"""`python -m bot doctor`: is every configured route usable, and what is it costing?"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from bot.bootstrap import Runtime
from bot.catalog import lifecycle_warnings
from bot.providers.errors import ProviderError, error_class
from bot.providers.gemini import vertex_serves
from bot.providers.router import Route, RoutedProvider
from bot.retention import measure
from bot.settings import Settings


async def doctor(
    runtime: Runtime, settings: Settings, out: Callable[[str], None] = print, clock: Callable[[], float] = time.time
) -> bool:
    """Prints a report; True when every configured route works."""
    healthy = True
    counts = await runtime.store.counts_by_state()
    out(
        f"database  {settings.database_label}: reachable; jobs by state: "
        f"{', '.join(f'{k} {v}' for k, v in sorted(counts.items())) or 'none yet'}"
    )
    for line in (await measure(runtime.store, runtime.retention)).lines():
        out(f"storage   {line}")
    kept = ", ".join(f"{kind} {days} d" if days else f"{kind} for ever" for kind, days in runtime.retention.cutoffs())
    out(f"retention {kept}; disk alert at {runtime.retention.disk_alert_percent}%")
    out(
        f"prices    table version {runtime.catalog.version}"
        + (f" (overrides from {settings.imagine_config})" if settings.imagine_config else "")
    )
    # A warning, not a failure: requests for a retired model are made with its replacement.
    for warning in lifecycle_warnings(runtime.catalog, datetime.fromtimestamp(clock(), UTC).date()):
        out(f"models    {warning}")

    router = runtime.provider
    # run_doctor builds it with bootstrap.build_provider: routes, or None without a key.
    assert router is None or isinstance(router, RoutedProvider)
    if router is None:
        out("routes    NONE CONFIGURED (set GEMINI_API_KEY, or OPENAI_COMPAT_BASE_URL for a gateway)")
        healthy = False
    else:
        for route in router.routes.values():
            healthy = await _check_route(runtime, settings, router, route, out) and healthy
    for name, gateway in runtime.catalog.gateways.items():
        if router is None or name not in router.routes:
            prices = "; ".join(
                f"{alias} " + ", ".join(f"{size} ${price}" for size, price in gateway.table(alias).items())
                for alias in gateway.models
            )
            out(f"gateway   {name} (not configured): {prices or 'no models'}")

    errors = await runtime.store.error_counts(time.time() - 24 * 3600)
    out("errors    last 24 h: " + (", ".join(f"{k} {v}" for k, v in errors.items()) or "none"))
    for kind in errors:
        out(f"  {kind}: {error_class(kind).operator_fix}")
    return healthy


async def _check_route(
    runtime: Runtime, settings: Settings, router: RoutedProvider, route: Route, out: Callable[[str], None]
) -> bool:
    """Prints one route's key check, models, prices and limits; True when it works."""
    healthy = True
    vertex = route.name == "gemini" and settings.google_genai_use_vertexai
    where = _where(route.name, settings)
    started = time.monotonic()
    try:
        listed = {_model_id(name) for name in await route.provider.list_models()}
    except ProviderError as exc:
        out(f"route     {route.name} ({where}): UNUSABLE: {exc.detail}")
        out(f"          fix: {exc.operator_fix}")
        healthy, listed = False, set()
    else:
        out(
            f"route     {route.name} ({where}): {'credentials work' if vertex else 'key works'}, "
            f"{len(listed)} models listed in {time.monotonic() - started:.2f} s"
        )
    served = [m for m in runtime.catalog.models.values() if route.serves is None or m.alias in route.serves]
    unserved = _not_served_at(settings.google_cloud_location, [m.model_id for m in served]) if vertex else []
    if vertex:
        out(_location_line(settings.google_cloud_location, unserved))
        healthy = healthy and not unserved
    for model in served:
        gateway_model = getattr(route.provider, "gateway_model", None)
        name = gateway_model(model.alias) if gateway_model else model.model_id
        seen = "available" if name in listed else ("not listed" if listed else "unknown")
        if name in unserved:
            seen += f", but not at {settings.google_cloud_location}"
        table = (
            runtime.catalog.gateways[route.name].table(model.alias)
            if route.name in runtime.catalog.gateways
            else model.price
        )
        prices = ", ".join(f"{size} ${price}" for size, price in table.items()) or "NO PRICE (refused)"
        out(f"  {model.alias:<7} -> {name} ({seen}); {prices}; batch x{model.batch_discount}")
    out(
        f"  limits: {router.requests_per_minute(route.name) or 'no'} requests/minute; "
        f"up to {route.concurrency.maximum} calls at once "
        f"(halved on a 429, now {route.concurrency.limit})"
    )
    gateway = runtime.catalog.gateways.get(route.name)
    billed = (
        ("billed" if gateway.bills_failed_calls else "not billed")
        if gateway
        else "not billed (an answer without an image, blocked or not, is billed for the tokens it used)"
    )
    out(f"  failed calls: {billed}")
    return healthy


# Vertex lists Google's models as publishers/google/models/ID; the Developer API as models/ID.
_MODEL_PREFIXES = ("publishers/google/models/", "models/")


def _model_id(name: str) -> str:
    for prefix in _MODEL_PREFIXES:
        if name.startswith(prefix):
            return name.removeprefix(prefix)
    return name


def _where(route: str, settings: Settings) -> str:
    if route != "gemini":
        return settings.openai_compat_base_url or route
    endpoint = settings.gemini_base_url or "Google's default endpoint"
    if not settings.google_genai_use_vertexai:
        return endpoint
    return f"Vertex AI project {settings.google_cloud_project}, location {settings.google_cloud_location}, {endpoint}"


def _not_served_at(location: str, model_ids: list[str]) -> list[str]:
    # Vertex lists its models without a location, so the list cannot show this.
    return [m for m in model_ids if not vertex_serves(m, location)]


def _location_line(location: str, unserved: list[str]) -> str:
    if not unserved:
        return f"  location: {location} (serves every configured model)"
    return (
        f"  location: {location} does NOT serve {', '.join(unserved)} (only `global` does; calls get "
        "404 NOT_FOUND). Set GOOGLE_CLOUD_LOCATION=global"
    )
