"""What the Store contract tests (tests/integration/store) share: a success's charge, an
admission, a team budget, and the jobs and images they submit."""

from __future__ import annotations

from dataclasses import replace

from bot.money.admission import Admission, Charge
from bot.money.budgets import Budget, Period, Scope
from bot.money.quotas import QuotaLimits
from bot.store.ports import final_delivery_key
from bot.types import CheckedImage, Lane, NewDelivery, Usage
from tests.support.images import png_bytes
from tests.support.jobs import new_job, spec

CHARGE = Charge(cost_micros=134_000, usage=None, status="succeeded")
ADMISSION = Admission(67_800, "test-prices", QuotaLimits(None, None, None))


def team_budget() -> Budget:
    return Budget(team="T1", scope=Scope.TEAM, scope_id="", limit_micros=10_000_000, period=Period.MONTH)


def relaxed_job(prompt: str):
    return replace(new_job(prompt=prompt), spec=spec(prompt, lane=Lane.BATCH))


def output_image() -> CheckedImage:
    data = png_bytes()
    return CheckedImage(data=data, mime="image/png", width=8, height=8, sha256="0" * 64)


def announced(job):
    """The job as an adapter submits it before posting its status: no worker may start it
    until that message is attached."""
    return replace(job, announced=True)


async def settle(
    store,
    team: str,
    model: str,
    cost: int,
    prompt: str,
    user: str = "U1",
    channel: str = "C1",
    *,
    lane: Lane = Lane.STANDARD,
    approved_by: str | None = None,
) -> int:
    """Submit, lease and complete one job charged `cost`: a settlement in the ledger at the
    store's clock, its image reusable by later requests with the cache key `cache:<prompt>`
    (`approved_by`: an approved overage, past the budgets). Returns the job's id."""
    job = replace(
        new_job(team, prompt=prompt),
        user=user,
        channel=channel,
        spec=spec(prompt, model_alias=model, lane=lane, approved_by=approved_by),
        cache_key=f"cache:{prompt}",
    )
    await store.submit(job, [], Admission(cost, "test-prices", QuotaLimits(None, None, None), approved_by=approved_by))
    leased = await store.lease("w", 60)
    await store.complete(
        leased.id,
        leased.worker_id,
        leased.attempt,
        output_image(),
        {},
        NewDelivery(final_delivery_key(leased.id), "result", {}),
        Charge(cost, Usage(prompt_tokens=1, image_tokens=1), "succeeded"),
    )
    return leased.id
