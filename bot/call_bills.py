"""What each provider call the worker ran is billed, as bot.money.charges decides it.

The worker hands the store these bills; this module only says who answered, by
which model and route, with what usage and reported charge. It sits outside
bot.money because it reads provider errors, which money must not import.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from bot.catalog import Catalog, ModelInfo
from bot.money.charges import (
    Bill,
    FailedCall,
    FailureBill,
    charge_for_failure,
    charge_for_hedged_failure,
    charge_for_success,
)
from bot.providers.errors import AnsweredWithoutImage, BlockedError, ProviderError
from bot.types import GenerationResult, HedgeCall, Job, Usage

# The worker's logger: these lines read, and are filtered, as the worker's own.
log = logging.getLogger("bot.worker")


def success_bill(catalog: Catalog, job: Job, result: GenerationResult) -> tuple[ModelInfo, Bill]:
    """The model that actually ran (a fallback may differ) and what its call cost."""
    return charge_for_success(
        catalog,
        model_alias=result.model_alias or job.spec.model_alias,
        size=job.spec.size,
        lane=result.served_lane or job.spec.lane,
        reported_cost=result.cost_usd,
        usage=result.usage,
    )


def hedge_bill(catalog: Catalog, job: Job, hedge: HedgeCall) -> Bill | None:
    """What a hedged attempt's other call is billed; None when it reported nothing to bill."""
    answer = hedge.answer
    if isinstance(answer, GenerationResult):
        try:
            return success_bill(catalog, job, answer)[1]
        except Exception:  # noqa: BLE001 - the start-up checks price every route; say so loudly if not
            log.exception(
                "job %d: unpriced, needs review: the hedged call to %s via %s made an image but "
                "could not be priced; usage %s",
                job.id,
                hedge.model_alias,
                hedge.route,
                answer.usage.to_json() if answer.usage else None,
            )
            return None
    if not isinstance(answer, ProviderError):
        return None
    # An answer without an image is billed: the route's own figure, else its tokens.
    call = failed_call(answer, model_alias=hedge.model_alias, route=hedge.route)
    return charge_for_hedged_failure(catalog, call, size=job.spec.size, lane=job.spec.lane)


def failure_bill(
    catalog: Catalog,
    job: Job,
    exc: ProviderError,
    *,
    model_alias: str,
    billed: Decimal | None,
    usage: Usage | None,
) -> FailureBill:
    """What a failed attempt is billed (`billed`: what a call that returned an unusable image cost)."""
    return charge_for_failure(
        catalog,
        failed_call(exc, model_alias=model_alias, route=exc.route),
        size=job.spec.size,
        lane=job.spec.lane,
        billed=billed,
        billed_usage=usage,
    )


def failed_call(exc: ProviderError, *, model_alias: str, route: str | None) -> FailedCall:
    """A provider error as money sees it: who answered, with what reason, usage and reported charge."""
    answer = exc if isinstance(exc, AnsweredWithoutImage) else None
    return FailedCall(
        kind=exc.kind,
        model_alias=model_alias,
        route=route,
        blocked=isinstance(exc, BlockedError),
        answered=answer is not None,
        reason=answer.reason if answer is not None else None,
        reported_cost=getattr(exc, "cost_usd", None),
        usage=getattr(exc, "usage", None),
    )
