"""What a finished attempt's result records: for the reply, the ledger's review
and the cache. A success says which model and route made the image and what it
cost (a hedged attempt's other call included); a failure says what an operator
needs to reproduce it, never the prompt itself (only its hash).
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

from bot.catalog import ModelInfo
from bot.providers.errors import ProviderError
from bot.types import GenerationResult, HedgeCall, Job


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]


def hedge_summary(hedge: HedgeCall, cost: Decimal | None) -> dict:
    """What a result says about its hedged attempt's other call, for the reply."""
    return {
        "route": hedge.route,
        "model": hedge.model_alias,
        "won": hedge.won,
        "after_s": hedge.after_s,
        "answered": hedge.answer is not None,
        "cost_usd": None if cost is None else str(cost),
    }


def success_result(
    job: Job,
    model: ModelInfo,
    result: GenerationResult,
    *,
    route: str,
    cost: Decimal,
    hedge_cost: Decimal | None,
    elapsed: float,
) -> dict[str, Any]:
    outcome = {
        "model": model.alias,
        "model_id": model.model_id,
        "model_version": result.model_version,
        "route": route,
        "fallback_from": result.fallback_from,
        "size": job.spec.size,
        "aspect_ratio": job.spec.aspect_ratio,
        "usage": result.usage.to_json() if result.usage else None,
        "cost_usd": str(cost),
        "elapsed_s": round(elapsed, 3),
        "text": result.text,
        "response_id": result.response_id,
        "lane": job.spec.lane.value,
        "served_lane": (result.served_lane or job.spec.lane).value,
    }
    if result.hedge is not None:
        outcome |= {"cost_usd": str(cost + (hedge_cost or 0)), "hedge": hedge_summary(result.hedge, hedge_cost)}
    return outcome


def failure_result(job: Job, exc: ProviderError, *, route: str) -> dict[str, Any]:
    """What an operator needs to reproduce a failure, never the prompt itself."""
    return {
        "repro": {
            "model_id": job.spec.model_id,
            "route": route,
            "size": job.spec.size,
            "aspect_ratio": job.spec.aspect_ratio,
            "status_code": exc.status_code,
            "request_id": exc.request_id,
            "prompt_sha256": prompt_hash(job.spec.prompt),
            "error_class": exc.kind,
        }
    }
