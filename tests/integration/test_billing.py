"""Billed like Google bills: settlement from real-shaped usage, and an answer past its hold
(the price table and the hold itself: tests/unit/test_billing.py).

Google's pricing page (ai.google.dev/gemini-api/docs/pricing) prices an image model's output
twice: image tokens at the image rate, and text and thinking tokens at the model's text rate.
A real answer reports the image and the text together in candidatesTokenCount, itemises only
IMAGE, and reports thinking apart in thoughtsTokenCount.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from bot.alerts import CallWatch
from bot.catalog import load_catalog
from bot.metrics import Metrics
from bot.money import to_micros
from bot.money.pricing import settle
from bot.providers.gemini import GeminiProvider
from bot.providers.openai_compat import OpenAICompatProvider
from bot.service import ImagineService
from bot.types import Accepted, ImagineRequest, JobState, Lane
from bot.worker import Worker
from tests.fakes.gemini_server import Tokens, drop, ok
from tests.fakes.openai_server import FakeGateway
from tests.fakes.openai_server import ok as ok_gateway
from tests.support.jobs import spec


@pytest.fixture
async def provider(fake):
    prov = GeminiProvider.create(api_key="k", base_url=fake.url, vertexai=False, timeout_seconds=30)
    yield prov
    await prov.close()


async def test_a_real_shaped_pro_4k_answer_settles_as_google_bills(provider, fake):
    # The answer: 2,000 image tokens, 7 prompt tokens, 677 text and thinking tokens.
    fake.script(ok(usage=Tokens(prompt=7, text=120, thoughts=557)))
    result = await provider.generate(spec("a koi pond", size="4K"), [])
    pro = load_catalog().resolve("pro")
    # 2000 x $120/M + 7 x $2/M + 677 x $12/M
    assert settle(pro, "4K", Lane.STANDARD, result.usage) == Decimal("0.248138")
    assert settle(pro, "4K", Lane.BATCH, result.usage) == Decimal("0.124069")


async def test_text_tokens_are_the_candidates_less_the_itemised_image(provider, fake):
    fake.script(ok(usage=Tokens(prompt=10, text=103, thoughts=106)))
    usage = (await provider.generate(spec("a cat", size="1K"), [])).usage
    assert (usage.image_tokens, usage.text_tokens, usage.thoughts_tokens) == (1120, 103, 106)
    assert usage.output_tokens == 1223 and usage.total_tokens == 10 + 1223 + 106


async def alerts(store) -> list[str]:
    rows = await store.claim_deliveries(["slack"], 100, 60)
    return [r.payload["text"] for r in rows if r.kind == "alert"]


def overshoots(metrics: Metrics, route: str, model: str) -> tuple[float | None, float | None]:
    labels = {"route": route, "model": model}
    return (
        metrics.registry.get_sample_value("imagine_hold_overshoot_total", labels),
        metrics.registry.get_sample_value("imagine_hold_overshoot_usd_total", labels),
    )


async def leased_job(store, *, size: str = "4K", held: bool = True):
    """A job as a worker holds it; `held_micros` is what its stores will report (0: unknown)."""
    accepted = await ImagineService(store, load_catalog()).submit(
        ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt="a koi pond", size=size)
    )
    assert isinstance(accepted, Accepted), accepted
    job = await store.lease("w/0", 60)
    return dataclasses.replace(job, held_micros=to_micros(accepted.estimate_usd) if held else 0)


def worker_for(store, provider, metrics) -> Worker:
    return Worker(store, provider, load_catalog(), metrics=metrics, watch=CallWatch(store, ["slack"]))


async def settlements(store) -> list[int]:
    return [r["cost_micros"] for r in await store.ledger() if r["entry"] == "settlement"]


async def test_an_answer_that_thinks_past_its_hold_is_charged_counted_and_alerted(store, fake, provider):
    job = await leased_job(store)
    fake.script(ok(usage=Tokens(prompt=7, text=1000, thoughts=4000)))  # far past the allowance
    metrics = Metrics()
    await worker_for(store, provider, metrics).finish(job, "w/0", await provider.generate(job.spec, []), 1.0)
    truth = 2000 * 120 + 7 * 2 + 5000 * 12  # micro-dollars: what Google bills for it
    assert await settlements(store) == [truth]  # the truth, not the hold
    count, usd = overshoots(metrics, "gemini", "pro")
    assert count == 1 and usd == pytest.approx((truth - job.held_micros) / 1e6)
    [text] = await alerts(store)
    assert f"Job {job.id}" in text and "$0.300014" in text and f"${job.held_micros / 1e6:.6f}" in text
    assert "[models.pro] text_allowance_tokens" in text


async def test_an_unknown_hold_is_not_an_overshoot(store, fake, provider):
    job = await leased_job(store, held=False)
    fake.script(ok(usage=Tokens(prompt=7, text=1000, thoughts=4000)))
    metrics = Metrics()
    await worker_for(store, provider, metrics).finish(job, "w/0", await provider.generate(job.spec, []), 1.0)
    assert await settlements(store) == [300014]
    assert overshoots(metrics, "gemini", "pro") == (None, None) and await alerts(store) == []


async def test_an_answer_within_its_hold_raises_nothing(store, fake, provider):
    job = await leased_job(store)
    fake.script(ok(usage=Tokens(prompt=7, text=120, thoughts=557)))
    metrics = Metrics()
    await worker_for(store, provider, metrics).finish(job, "w/0", await provider.generate(job.spec, []), 1.0)
    assert await settlements(store) == [248138]
    assert overshoots(metrics, "gemini", "pro") == (None, None) and await alerts(store) == []


async def test_a_gateway_charge_above_the_hold_is_charged_counted_and_alerted(store):
    async with FakeGateway(api_key="gw") as gateway:
        gateway.script(ok_gateway(cost=0.5))
        provider = OpenAICompatProvider.create(
            name="openrouter",
            base_url=gateway.url,
            api_key="gw",
            models={"pro": "google/gemini-3-pro-image-preview"},
            timeout_seconds=10,
        )
        try:
            job = await leased_job(store, size="1K")
            metrics = Metrics()
            await worker_for(store, provider, metrics).finish(job, "w/0", await provider.generate(job.spec, []), 1.0)
        finally:
            await provider.close()
    assert await settlements(store) == [500000]
    count, usd = overshoots(metrics, "openrouter", "pro")
    assert count == 1 and usd == pytest.approx(0.5 - job.held_micros / 1e6)
    [text] = await alerts(store)
    assert (
        "via openrouter" in text and "$0.500000" in text and 'pro\'s "1K" price in [gateways.openrouter.price]' in text
    )


async def test_a_dropped_connection_is_retried_by_the_worker_not_the_sdk(store, fake, provider):
    job = await leased_job(store, held=False)
    fake.script(drop(), ok())
    await Worker(store, provider, load_catalog(), retry_base=0.01, retry_cap=0.01).process(job, "w/0")
    assert len(fake.requests) == 1  # one call reached Google
    after = await store.get_job(job.id)
    assert after.state is JobState.QUEUED and after.error_class == "overloaded"  # retryable, by us
    assert await settlements(store) == []
