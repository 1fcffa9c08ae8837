"""Gallery images made through the store, as the worker makes them: a job submitted with a
hold, leased, and completed with a real PNG and its charge; an edit names its parent."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from bot.money.admission import Admission, Charge
from bot.money.quotas import QuotaLimits
from bot.store.ports import final_delivery_key
from bot.types import CheckedImage, NewDelivery, Usage
from tests.support.images import png_bytes
from tests.support.jobs import new_job, spec


def png(color: str, width: int = 8, height: int = 8) -> CheckedImage:
    data = png_bytes(width, height, color)
    return CheckedImage(data, "image/png", width, height, hashlib.sha256(data).hexdigest())


async def render(
    store,
    prompt: str,
    cost: int,
    *,
    parent: int | None = None,
    team: str = "T1",
    user: str = "U1",
    color: str = "red",
    model: str = "pro",
    cache_key: str | None = None,
    width: int = 8,
    height: int = 8,
    input_images: int = 0,
) -> int:
    """An image made (an edit of `parent`, when given) and charged `cost`; returns its id."""
    job = replace(
        new_job(team, prompt=prompt),
        user=user,
        kind="edit" if parent else "imagine",
        cache_key=cache_key,
        spec=spec(prompt, model_alias=model, parent_image_id=parent, input_images=input_images),
    )
    submitted = await store.submit(job, [], Admission(cost, "test-prices", QuotaLimits(None, None, None)))
    leased = await store.lease("w", 60, only_job_id=submitted.job_id)
    image_id = await store.complete(
        leased.id,
        leased.worker_id,
        leased.attempt,
        png(color, width, height),
        {"model_version": model},
        NewDelivery(final_delivery_key(leased.id), "result", {}),
        Charge(cost, Usage(prompt_tokens=1, image_tokens=1), "succeeded"),
    )
    assert image_id is not None
    return image_id
