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
    out(f"database  {settings.database_url.split('?')[0]}: reachable; jobs by state: "
        f"{', '.join(f'{k} {v}' for k, v in sorted(counts.items())) or 'none yet'}")
    out(f"prices    table version {runtime.catalog.version}"
        + (f" (overrides from {settings.imagine_config})" if settings.imagine_config else ""))

    provider = runtime.provider
    if provider is None:
        out("route     gemini: NOT CONFIGURED (set GEMINI_API_KEY, or Vertex AI's variables)")
        healthy = False
    else:
        mode = "Vertex AI" if settings.google_genai_use_vertexai else "Developer API"
        endpoint = settings.gemini_base_url or "Google's default endpoint"
        started = time.monotonic()
        try:
            listed = {name.removeprefix("models/") for name in await provider.list_models()}
        except ProviderError as exc:
            out(f"route     gemini ({mode}, {endpoint}): UNUSABLE: {exc.detail}")
            out(f"          fix: {exc.operator_fix}")
            healthy, listed = False, set()
        else:
            out(f"route     gemini ({mode}, {endpoint}): key works, {len(listed)} models listed "
                f"in {time.monotonic() - started:.2f} s")
        for model in runtime.catalog.models.values():
            seen = "available" if model.model_id in listed else ("not listed" if listed else "unknown")
            prices = ", ".join(f"{size} ${price}" for size, price in model.price.items()) or "NO PRICE (refused)"
            out(f"  {model.alias:<7} -> {model.model_id} ({seen}); {prices}; batch x{model.batch_discount}")
        out("  failed calls: not billed by Gemini; a blocked answer is billed for the tokens it used")
        out("  rate limits: none configured; concurrency is IMAGINE_WORKERS="
            f"{settings.imagine_workers} per worker process")
    for name, gateway in runtime.catalog.gateways.items():
        billed = "billed" if gateway.bills_failed_calls else "not billed"
        prices = ", ".join(f"{size} ${price}" for size, price in gateway.price.items())
        configured = "configured" if settings.openai_compat_base_url else "not configured"
        out(f"gateway   {name} ({configured}): {prices}; failed calls {billed}")

    errors = await runtime.store.error_counts(time.time() - 24 * 3600)
    out("errors    last 24 h: " + (", ".join(f"{k} {v}" for k, v in errors.items()) or "none"))
    for kind in errors:
        out(f"  {kind}: {error_class(kind).operator_fix}")
    return healthy
