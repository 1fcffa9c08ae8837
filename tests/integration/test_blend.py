"""A blend: several images in one request. Each input is priced in the hold, and how many the
model was sent is recorded with the job, so the gallery and its lineage can say "blend of 3
images" (an edit counts the image it edits)."""

from __future__ import annotations

import datetime
from decimal import Decimal

from bot.catalog import load_catalog
from bot.money import pricing
from bot.service import ImagineService
from bot.types import Accepted, ImagineRequest, InputImage, Lane
from tests.support.clock import FakeClock
from tests.support.gallery import render
from tests.support.images import png_bytes

TODAY = datetime.datetime(2026, 11, 30, 12, tzinfo=datetime.UTC).timestamp()


def blend(count: int, prompt: str = "the three of them at a picnic") -> ImagineRequest:
    images = tuple(InputImage(png_bytes(8 + n, 8, "red"), "image/png") for n in range(count))
    return ImagineRequest(
        prompt=prompt, team="T1", channel="C1", user="U1", platform="slack", model="pro", size="1K", images=images
    )


async def test_each_input_image_is_priced_in_the_hold_and_recorded_with_the_job(store):
    service = ImagineService(store, load_catalog(), clock=FakeClock(TODAY))
    single = await service.submit(blend(0))
    three = await service.submit(blend(3))
    assert isinstance(single, Accepted) and isinstance(three, Accepted)
    assert single.estimate_usd is not None and three.estimate_usd is not None
    # Gemini bills an input image as input tokens: 1,120 each at Pro's $2 per million.
    assert three.estimate_usd - single.estimate_usd == Decimal(3 * 1120 * 2) / 1_000_000
    pro = load_catalog().resolve("pro")
    assert three.estimate_usd == pricing.estimate(pro, "1K", Lane.STANDARD, 3, prompt_chars=len(blend(3).prompt))
    job = await store.get_job(three.job_id)
    assert job is not None and job.spec.input_images == 3
    assert (await store.get_job(single.job_id)).spec.input_images == 0
    assert len(await store.job_inputs(three.job_id)) == 3


async def test_the_gallery_says_an_image_is_a_blend(store):
    blended = await render(store, "the three of them at a picnic", 140_000, input_images=3)
    plain = await render(store, "a picnic", 134_000, color="green")
    one_reference = await render(store, "like this", 134_000, color="blue", input_images=1)
    images = {image.id: image for image in await store.gallery_images("T1", 10, 0)}
    assert images[blended].input_images == 3 and images[blended].blend_note == "blend of 3 images"
    assert images[plain].blend_note is None and images[one_reference].blend_note is None
    [step] = await store.image_thread("T1", blended)
    assert step.blend_note == "blend of 3 images"
