"""What the worker records about each provider call: one structured log line,
the metrics, and an operator alert when a call cost more than its job held or
ran but could not be priced.

No prompt text is ever logged, only its hash.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal

from bot.alerts import CallWatch
from bot.catalog import Catalog
from bot.job_results import prompt_hash
from bot.metrics import Metrics
from bot.money import from_micros
from bot.money.charges import overshoot_micros
from bot.providers.errors import ProviderError, UnpricedCall
from bot.types import GenerationResult, HedgeCall, Job, Usage

# The worker's logger: these lines read, and are filtered, as the worker's own.
log = logging.getLogger("bot.worker")
calls_log = logging.getLogger("bot.calls")


class CallLog:
    def __init__(self, metrics: Metrics, watch: CallWatch | None, catalog: Catalog, default_route: str) -> None:
        self._metrics = metrics
        self._watch = watch
        self._catalog = catalog
        self._default_route = default_route  # the provider's name, when a call does not say its route

    def call(
        self,
        job: Job,
        latency: float,
        *,
        usage: Usage | None = None,
        cost: str | None = None,
        error: ProviderError | None = None,
        route: str | None = None,
    ) -> None:
        """One structured line (and the metrics) per provider call: enough to chart and debug, no prompt text."""
        route = route or (error.route if error else None) or self._default_route
        # A batch or Flex answer takes minutes to hours by design: not a latency to chart or alert on.
        interactive = job.spec.lane.interactive
        self._metrics.provider_call(
            route=route,
            model=job.spec.model_id,
            size=job.spec.size,
            status="ok" if error is None else error.kind,
            seconds=latency if interactive else None,
        )
        if self._watch is not None and interactive:
            self._watch.observe(error_kind=error.kind if error else None, seconds=latency)
        if cost is not None:
            self._metrics.charged(job.team, float(cost), lane=job.spec.lane.value)
        calls_log.info(
            json.dumps(
                {
                    "event": "provider_call",
                    "job": job.id,
                    "attempt": job.attempt,
                    "route": route,
                    "model": job.spec.model_id,
                    "size": job.spec.size,
                    "lane": job.spec.lane.value,
                    "prompt_sha256": prompt_hash(job.spec.prompt),
                    "status": "ok" if error is None else error.kind,
                    "http_status": error.status_code if error else None,
                    "latency_ms": round(latency * 1000),
                    "prompt_tokens": usage.prompt_tokens if usage else None,
                    "image_tokens": usage.image_tokens if usage else None,
                    "cost_usd": cost,
                }
            )
        )

    def hedge(self, job: Job, hedge: HedgeCall, cost: Decimal | None) -> None:
        """A hedged attempt's other call: counted by who won and whether it answered."""
        self._metrics.hedges.labels(
            "hedge" if hedge.won else "primary", "cancelled" if hedge.answer is None else "answered"
        ).inc()
        calls_log.info(
            json.dumps(
                {
                    "event": "hedge_call",
                    "job": job.id,
                    "attempt": job.attempt,
                    "route": hedge.route,
                    "model": hedge.model_alias,
                    "hedge_won": hedge.won,
                    "answered": hedge.answer is not None,
                    "cost_usd": None if cost is None else str(cost),
                }
            )
        )

    async def check_hold(self, job: Job, cost_micros: int, model: str, route: str) -> None:
        """A call that cost more than its job held is charged in full (that is the bill), but
        the budget checks trusted the hold, so it is counted and an operator is told."""
        over = overshoot_micros(cost_micros, job.held_micros)
        if not over:
            return
        self._metrics.overshoot(route=route, model=model, usd=over / 1_000_000)
        remedy = (
            f'{model}\'s "{job.spec.size}" price in [gateways.{route}.price]'
            if route in self._catalog.gateways
            else f"[models.{model}] text_allowance_tokens"
        )
        text = (
            f"Job {job.id} ({model} {job.spec.size}, {job.spec.lane.value} lane, via {route}) cost "
            f"${from_micros(cost_micros)}, ${from_micros(over)} more than the ${from_micros(job.held_micros)} "
            f"held for it. The ledger charges what was billed, so budgets may have gone over by that much. "
            f"If it recurs, raise {remedy} in IMAGINE_CONFIG."
        )
        if self._watch is not None:
            await self._watch.alert(f"overshoot:{job.id}:{job.attempt}", text)
        else:
            log.warning("alert: %s", text)

    def unpriced(self, job: Job, result: GenerationResult, exc: Exception) -> UnpricedCall:
        """A call that ran but cannot be priced (start-up checks should make this impossible):
        logged for review and counted; returns the error its job ends with."""
        model, route = self._who_ran(job, result)
        log.error(
            "job %d: unpriced, needs review: a call to %s via %s (%s, %s lane) ran but could not be "
            "priced: %r; usage %s",
            job.id,
            model,
            route,
            job.spec.size,
            job.spec.lane.value,
            exc,
            result.usage.to_json() if result.usage else None,
            exc_info=exc,
        )
        self.call(job, result.call_seconds or 0.0, usage=result.usage, route=route)
        error = UnpricedCall(f"{model} via {route} at {job.spec.size} could not be priced: {exc}")
        error.route = route
        return error

    async def alert_unpriced(self, job: Job, result: GenerationResult, exc: Exception) -> None:
        """Tell the operator to settle an unpriced call by hand: Google bills it all the same."""
        if self._watch is None:
            return
        model, route = self._who_ran(job, result)
        await self._watch.alert(
            f"unpriced:{job.id}",
            (
                f"Job {job.id} of team {job.team}: a call to {model} via {route} at {job.spec.size} ran but "
                f"could not be priced ({exc}). Unpriced, needs review: nothing was recorded in the ledger; "
                f"add the price to IMAGINE_CONFIG and settle the call by hand."
            ),
        )

    def _who_ran(self, job: Job, result: GenerationResult) -> tuple[str, str]:
        """The model and route that made a result (a fallback may differ from the job's)."""
        return result.model_alias or job.spec.model_alias, result.route or self._default_route
