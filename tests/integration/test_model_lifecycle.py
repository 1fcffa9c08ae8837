"""A retired model's requests are made with its replacement, at its price, and the reply says so
(the catalog's figures and dates: tests/unit/test_model_lifecycle.py)."""

from __future__ import annotations

import datetime

import pytest

from bot.catalog import load_catalog
from bot.service import ImagineService
from bot.types import Accepted, ImagineRequest, InputImage, RefusalReason, Refused
from policies.config import PolicyBook
from tests.support.clock import FakeClock
from tests.support.images import png_bytes

BEFORE_SHUTDOWN = datetime.datetime(2026, 9, 1, 12, tzinfo=datetime.UTC).timestamp()


TODAY = datetime.datetime(2026, 11, 30, 12, tzinfo=datetime.UTC).timestamp()


def request(prompt="a koi pond", **kw) -> ImagineRequest:
    return ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt=prompt, **kw)


@pytest.mark.parametrize(
    "kwargs, size, estimate_model",
    [
        ({"model": "legacy"}, "1K", "flash"),  # legacy's default size, at flash's price
        ({"model": "nano-banana", "size": "2K"}, "2K", "flash"),  # a size flash offers is kept
        ({"model": "gemini-2.5-flash-image", "aspect_ratio": "21:9"}, "1K", "flash"),
    ],
)
async def test_a_request_for_a_retired_model_is_made_with_its_replacement_at_its_price(
    store, kwargs, size, estimate_model
):
    service = ImagineService(store, load_catalog(), clock=FakeClock(TODAY))
    outcome = await service.submit(request(**kwargs))
    assert isinstance(outcome, Accepted), outcome
    assert (outcome.model, outcome.size) == ("flash", size)
    assert outcome.retired_note == "legacy was retired on 2026-10-02; made with flash."
    job = await store.get_job(outcome.job_id)
    assert (job.spec.model_alias, job.spec.model_id, job.spec.send_image_size) == (
        "flash",
        "gemini-3.1-flash-image",
        True,
    )
    flash_only = await ImagineService(store, load_catalog(), clock=FakeClock(TODAY)).submit(
        request(model=estimate_model, size=size, aspect_ratio=kwargs.get("aspect_ratio"), fresh=True)
    )
    assert outcome.estimate_usd == flash_only.estimate_usd and flash_only.retired_note is None


async def test_before_its_shutdown_legacy_is_itself(store):
    outcome = await ImagineService(store, load_catalog(), clock=FakeClock(BEFORE_SHUTDOWN)).submit(
        request(model="legacy")
    )
    assert isinstance(outcome, Accepted) and outcome.model == "legacy" and outcome.retired_note is None
    assert (await store.get_job(outcome.job_id)).spec.model_id == "gemini-2.5-flash-image"


async def test_a_size_neither_model_offers_is_still_refused(store):
    outcome = await ImagineService(store, load_catalog(), clock=FakeClock(TODAY)).submit(
        request(model="legacy", size="8K")
    )
    assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.INVALID_REQUEST
    assert "legacy was retired on 2026-10-02" in outcome.detail and "It takes: 512, 1K, 2K, 4K" in outcome.detail


async def test_a_retired_fallback_is_never_used(store):
    policies = PolicyBook(teams={"T1": {"fallback": {"pro": ["legacy", "flash"]}}})
    service = ImagineService(store, load_catalog(), policies=policies, clock=FakeClock(TODAY))
    outcome = await service.submit(request(size="1K"))
    assert (await store.get_job(outcome.job_id)).spec.fallbacks == ("flash",)


@pytest.mark.parametrize(
    "model, count, accepted",
    [
        ("pro", 14, True),
        ("pro", 15, False),
        ("flash", 7, True),
    ],
)
async def test_the_reference_image_limit_is_the_models(store, model, count, accepted):
    images = tuple(InputImage(png_bytes(8 + i, 8, "red"), "image/png") for i in range(count))
    outcome = await ImagineService(store, load_catalog(), clock=FakeClock(TODAY)).submit(
        request(model=model, images=images)
    )
    if accepted:
        assert isinstance(outcome, Accepted), outcome
    else:
        assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.INVALID_REQUEST
        assert outcome.detail == "pro takes up to 14 images; you sent 15. Send fewer images."
        assert await store.counts_by_state() == {}


async def test_legacy_took_three_images_before_its_shutdown(store):
    images = tuple(InputImage(png_bytes(8 + i, 8, "red"), "image/png") for i in range(4))
    outcome = await ImagineService(store, load_catalog(), clock=FakeClock(BEFORE_SHUTDOWN)).submit(
        request(model="legacy", images=images)
    )
    assert isinstance(outcome, Refused) and outcome.detail.startswith("legacy takes up to 3 images; you sent 4.")
