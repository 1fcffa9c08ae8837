"""The Flex and Priority lanes end to end: service -> queue -> worker -> router -> real google-genai
generateContent with service_tier -> loopback fake Gemini -> store and ledger; a shed Flex job
through the Batch runner.

Google's tiers page (ai.google.dev/gemini-api/docs/optimization): Flex "50% discount", "Minutes
(1-15 min target)", "Best-effort (Sheddable)"; Priority "75% to 100% more than standard",
"High (Non-sheddable)".
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from adapters import status
from bot.batch import BatchRunner
from bot.catalog import load_catalog
from bot.metrics import Metrics
from bot.money import pricing, to_micros
from bot.providers.errors import BadRequestError, OverloadedError
from bot.providers.gemini import GeminiProvider
from bot.providers.router import Route, RoutedProvider
from bot.service import ImagineService
from bot.types import Accepted, ImagineRequest, InputImage, JobState, Lane, RefusalReason, Refused, Usage
from bot.worker import Worker
from policies.config import PolicyBook
from tests.fakes.gemini_server import error, hang, ok
from tests.support.jobs import spec

SLOT = "w/0"


class Lanes:
    """The service, a worker (with a Batch runner beside it) and the fake, on one FakeClock."""

    def __init__(
        self, store, fake, clock, *, policies: PolicyBook | None = None, catalog=None, batch_runner: bool = True
    ):
        self.store, self.fake, self.clock = store, fake, clock
        self.catalog = catalog or load_catalog()
        self.gemini = GeminiProvider.create(api_key="k", base_url=fake.url, vertexai=False, timeout_seconds=10)
        self.metrics = Metrics()
        self.worker = Worker(
            store,
            RoutedProvider([Route("gemini", self.gemini)], self.catalog),
            self.catalog,
            clock=clock,
            retry_base=1,
            retry_cap=1,
            batch_lane=batch_runner,
            metrics=self.metrics,
        )
        self.runner = BatchRunner(store, self.gemini, self.worker, poll_interval=60, stale_after=900, clock=clock)
        self.service = ImagineService(store, self.catalog, batch_lane=True, clock=clock, policies=policies)

    async def submit(self, prompt: str = "a lighthouse at dusk", **kw) -> Accepted | Refused:
        return await self.service.submit(
            ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt=prompt, **kw)
        )

    async def run_one(self) -> None:
        job = await self.store.lease(SLOT, 60)
        assert job is not None, "no job for the workers"
        await self.worker.process(job, SLOT)

    async def ledger(self, job_id: int) -> list[tuple[str, int, str]]:
        return [(r["entry"], r["cost_micros"], r["lane"]) for r in await self.store.ledger() if r["job_id"] == job_id]

    async def deliveries(self, kind: str) -> list:
        return [d for d in await self.store.claim_deliveries(["test"], 50, 30) if d.kind == kind]


@pytest.fixture
async def lanes(store, fake, clock):
    harness = Lanes(store, fake, clock)
    yield harness
    await harness.gemini.close()


def usage_of(job) -> Usage:
    return Usage(**job.result["usage"])


async def test_a_relaxed_request_on_pro_2k_is_answered_by_the_flex_lane_at_half_price(lanes, fake):
    accepted = await lanes.submit(relax=True, size="2K")
    assert isinstance(accepted, Accepted) and accepted.lane == "flex" and not accepted.relaxed
    pro = lanes.catalog.resolve("pro")
    assert accepted.estimate_usd == pricing.estimate(pro, "2K", Lane.FLEX, prompt_chars=len("a lighthouse at dusk"))
    assert "relaxed (Flex): half price, usually within 15 minutes" in status.queued(accepted)
    # Taken by the ordinary workers (not the Batch runner), sent through generateContent at flex.
    await lanes.run_one()
    [sent] = fake.requests
    assert sent.path.endswith("gemini-3-pro-image:generateContent") and sent.service_tier == "flex"
    assert not fake.batches
    job = await lanes.store.get_job(accepted.job_id)
    assert job.state is JobState.SUCCEEDED and job.spec.lane is Lane.FLEX
    cost = Decimal(job.result["cost_usd"])
    assert cost == pricing.tokens_cost(pro, Lane.STANDARD, usage_of(job)) / 2 and cost > 0
    # The image part alone: 1,120 tokens at $120/M, half price = $0.0672, Google's $0.067.
    assert usage_of(job).image_tokens * pro.image_output_per_million / 1_000_000 / 2 == Decimal("0.0672")
    held = to_micros(accepted.estimate_usd)
    assert await lanes.ledger(job.id) == [
        ("reservation", held, "flex"),
        ("settlement", to_micros(cost), "flex"),
        ("release", held - to_micros(cost), "flex"),
    ]
    [result] = await lanes.deliveries("result")
    assert result.job_id == job.id  # answered where the request was made, not hours later
    spend = lanes.metrics.registry.get_sample_value("imagine_spend_usd_total", {"team": "T1", "lane": "flex"})
    assert spend == pytest.approx(float(cost))


@pytest.mark.parametrize("shed", [503, 429])
async def test_a_flex_job_google_sheds_moves_to_the_batch_lane_at_the_same_price_and_the_user_is_told(
    lanes, fake, clock, shed
):
    accepted = await lanes.submit(relax=True, size="2K")
    held = to_micros(accepted.estimate_usd)
    fake.script_flex(error(shed))
    await lanes.run_one()
    job = await lanes.store.get_job(accepted.job_id)
    assert (job.state, job.spec.lane, job.held_micros) == (JobState.QUEUED, Lane.BATCH, held)
    assert await lanes.store.lease(SLOT, 60) is None  # the Batch runner's now, not the workers'
    assert await lanes.ledger(job.id) == [("reservation", held, "flex")]  # nothing billed for the shed call
    told = [d for d in await lanes.deliveries("started") if "relaned" in d.payload]
    assert [d.job_id for d in told] == [job.id]
    line = status.generating("pro", "2K", 1, lane="batch", relaned=True)
    assert "moved to the Batch lane at the same half price" in line

    clock.advance(61)
    assert await lanes.runner.send() == 1
    [batch] = fake.batches.values()
    assert [r.prompt for r in batch.requests] == ["a lighthouse at dusk"]
    fake.finish_batch(batch.name, ok())
    clock.advance(61)
    assert await lanes.runner.poll() == 1
    job = await lanes.store.get_job(job.id)
    pro = lanes.catalog.resolve("pro")
    cost = pricing.settle(pro, "2K", Lane.BATCH, usage_of(job))
    assert job.state is JobState.SUCCEEDED and Decimal(job.result["cost_usd"]) == cost
    assert cost == pricing.settle(pro, "2K", Lane.FLEX, usage_of(job)) and cost <= accepted.estimate_usd
    assert await lanes.ledger(job.id) == [
        ("reservation", held, "flex"),
        ("settlement", to_micros(cost), "batch"),
        ("release", held - to_micros(cost), "batch"),
    ]


async def test_a_shed_flex_job_too_big_for_any_batch_stays_on_flex(lanes, fake):
    """Fine on Flex (Google takes 100 MB inline there), but no batch could take it inline:
    moving it would only fail it, so it is retried on Flex."""
    from tests.support.images import noise_png

    accepted = await lanes.submit("a collage", relax=True, images=(InputImage(noise_png(6_000_000), "image/png"),) * 3)
    assert isinstance(accepted, Accepted) and accepted.lane == "flex"
    fake.script_flex(error(503))
    await lanes.run_one()
    job = await lanes.store.get_job(accepted.job_id)
    assert (job.state, job.spec.lane, job.error_class) == (JobState.QUEUED, Lane.FLEX, "overloaded")


async def test_without_a_batch_runner_a_shed_flex_job_is_retried_on_flex(store, fake, clock):
    lanes = Lanes(store, fake, clock, batch_runner=False)
    try:
        accepted = await lanes.submit(relax=True)
        fake.script_flex(error(503))
        await lanes.run_one()
        job = await store.get_job(accepted.job_id)
        assert (job.state, job.spec.lane, job.error_class) == (JobState.QUEUED, Lane.FLEX, "overloaded")
    finally:
        await lanes.gemini.close()


async def test_a_flex_shed_does_not_count_against_the_route(lanes, fake):
    """Flex shedding load says nothing about Standard: the route's breaker and concurrency stay."""
    route = lanes.worker._provider.routes["gemini"]
    accepted = await lanes.submit(relax=True)
    fake.script_flex(error(429))
    await lanes.run_one()
    assert (await lanes.store.get_job(accepted.job_id)).spec.lane is Lane.BATCH
    assert (route.breaker.failures, route.concurrency.limit) == (0, route.concurrency.maximum)


async def test_priority_is_refused_unless_the_team_policy_enables_it(lanes, fake):
    refused = await lanes.submit(lane="priority")
    assert isinstance(refused, Refused) and refused.reason is RefusalReason.INVALID_REQUEST
    assert "not enabled for this team" in refused.detail and "priority = true" in refused.detail
    assert "80% more" in refused.detail and "Traceback" not in refused.detail
    assert await lanes.store.counts_by_state() == {} and not fake.requests


async def test_priority_with_the_policy_is_sent_at_priority_and_priced_at_the_multiplier(store, fake, clock):
    lanes = Lanes(store, fake, clock, policies=PolicyBook(teams={"T1": {"priority": True}}))
    try:
        accepted = await lanes.submit(lane="priority", size="2K")
        assert isinstance(accepted, Accepted) and accepted.lane == "priority"
        pro = lanes.catalog.resolve("pro")
        standard = pricing.estimate(pro, "2K", Lane.STANDARD, prompt_chars=len("a lighthouse at dusk"))
        assert accepted.estimate_usd == pricing.estimate(
            pro, "2K", Lane.PRIORITY, prompt_chars=len("a lighthouse at dusk")
        )
        assert accepted.estimate_usd == pytest.approx(standard * Decimal("1.8"), abs=Decimal("0.000002"))
        assert "Priority lane" in status.queued(accepted)
        await lanes.run_one()
        [sent] = fake.requests
        assert sent.service_tier == "priority"
        job = await store.get_job(accepted.job_id)
        cost = Decimal(job.result["cost_usd"])
        assert cost == pricing.tokens_cost(pro, Lane.PRIORITY, usage_of(job))
        assert cost == (pricing.tokens_cost(pro, Lane.STANDARD, usage_of(job)) * Decimal("1.8")).quantize(pricing.MICRO)
        assert {e[2] for e in await lanes.ledger(job.id)} == {"priority"}
    finally:
        await lanes.gemini.close()


async def test_a_priority_request_google_serves_at_standard_is_charged_at_standard(store, fake, clock):
    """Google's priority-inference page: past the Priority limit a request is served at Standard
    (x-gemini-service-tier: standard), and billed so; the ledger must not charge Priority for it."""
    lanes = Lanes(store, fake, clock, policies=PolicyBook(teams={"T1": {"priority": True}}))
    try:
        fake.priority_capacity = 0
        accepted = await lanes.submit(lane="priority", size="2K")
        await lanes.run_one()
        job = await store.get_job(accepted.job_id)
        pro = lanes.catalog.resolve("pro")
        assert job.state is JobState.SUCCEEDED and job.result["served_lane"] == "standard"
        assert Decimal(job.result["cost_usd"]) == pricing.tokens_cost(pro, Lane.STANDARD, usage_of(job))
        assert "served at Standard" in status.done({**job.result, "elapsed_s": 1.0})
    finally:
        await lanes.gemini.close()


async def test_priority_jobs_are_leased_before_standard_ones(store, fake, clock):
    lanes = Lanes(store, fake, clock, policies=PolicyBook(teams={"T1": {"priority": True}}))
    try:
        first = await lanes.submit("a standard fox")
        urgent = await lanes.submit("an urgent fox", lane="priority")
        assert (await store.lease(SLOT, 60)).id == urgent.job_id
        assert (await store.lease(SLOT, 60)).id == first.job_id
    finally:
        await lanes.gemini.close()


@pytest.fixture
def lite_priced(tmp_path):
    # Lite has no price in the shipped catalog; an operator's, so the lane is what is refused.
    config = tmp_path / "imagine.toml"
    config.write_text('[models.lite.price]\n"1K" = 0.02\n[models.lite]\nimage_output_per_million = 20.0\n')
    return load_catalog(config)


async def test_a_lane_the_model_lacks_is_refused_with_a_clear_message_and_never_sent(store, fake, clock, lite_priced):
    lanes = Lanes(store, fake, clock, catalog=lite_priced, policies=PolicyBook(teams={"T1": {"priority": True}}))
    try:
        refused = await lanes.submit(model="lite", lane="priority")
        assert isinstance(refused, Refused) and refused.reason is RefusalReason.INVALID_REQUEST
        assert refused.detail == (
            "lite has no Priority lane (--priority). Its lanes: Standard (no flag), "
            "Batch (--batch). Nothing was charged."
        )
        assert await store.counts_by_state() == {} and not fake.requests
    finally:
        await lanes.gemini.close()


async def test_a_relaxed_request_on_a_model_without_flex_goes_to_the_batch_lane_and_says_so(
    store, fake, clock, lite_priced
):
    lanes = Lanes(store, fake, clock, catalog=lite_priced)
    try:
        accepted = await lanes.submit(model="lite", relax=True)
        assert isinstance(accepted, Accepted) and accepted.lane == "batch" and accepted.relaxed
        assert "lite has no Flex lane" in accepted.lane_note and "same half price" in accepted.lane_note
        assert accepted.lane_note in status.queued(accepted)
        assert accepted.estimate_usd == pricing.estimate(
            lite_priced.resolve("lite"), "1K", Lane.FLEX, prompt_chars=len("a lighthouse at dusk")
        )
        assert await store.lease(SLOT, 60) is None  # the Batch runner's
    finally:
        await lanes.gemini.close()


async def test_flex_and_priority_need_the_developer_api(store, fake, clock):
    service = ImagineService(
        store, load_catalog(), batch_lane=False, clock=clock, policies=PolicyBook(teams={"T1": {"priority": True}})
    )
    for ask, flag in ({"relax": True}, "--relax"), ({"lane": "priority"}, "--priority"):
        refused = await service.submit(
            ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt="a fox", **ask)
        )
        assert isinstance(refused, Refused) and f"Leave out {flag}" in refused.detail
    unknown = await service.submit(
        ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt="a fox", lane="turbo")
    )
    assert isinstance(unknown, Refused) and "Unknown lane 'turbo'" in unknown.detail


async def test_a_route_without_service_tiers_never_serves_a_flex_request_at_full_price(fake):
    vertexless = GeminiProvider.create(api_key="k", base_url=fake.url, vertexai=False, timeout_seconds=10)
    vertexless.service_tiers = False  # as a Vertex AI route is
    router = RoutedProvider([Route("gemini", vertexless)], load_catalog())
    try:
        with pytest.raises(Exception, match="no configured route serves"):
            await router.generate(spec(lane=Lane.FLEX), [])
        assert not fake.requests
    finally:
        await vertexless.close()


async def test_flex_calls_get_a_longer_timeout_than_standard(fake):
    fake.latency = 1.5
    provider = GeminiProvider.create(
        api_key="k", base_url=fake.url, vertexai=False, timeout_seconds=0.5, flex_timeout_seconds=10
    )
    try:
        with pytest.raises(OverloadedError):
            await provider.generate(spec(), [])
        result = await provider.generate(spec(lane=Lane.FLEX), [])
        assert result.image.data and fake.requests[-1].service_tier == "flex"
    finally:
        await provider.close()


async def test_the_fake_refuses_a_tier_the_model_does_not_take_as_google_does(fake):
    provider = GeminiProvider.create(api_key="k", base_url=fake.url, vertexai=False, timeout_seconds=10)
    try:
        lite = spec(model_alias="lite", model_id="gemini-3.1-flash-lite-image", lane=Lane.FLEX)
        with pytest.raises(BadRequestError, match="400") as raised:
            await provider.generate(lite, [])
        assert raised.value.status_code == 400 and fake.requests[-1].service_tier == "flex"
        assert (await provider.generate(spec(lane=Lane.PRIORITY), [])).image.data
        assert fake.requests[-1].body["serviceTier"] == "priority"
        await provider.generate(spec(), [])
        assert "serviceTier" not in fake.requests[-1].body  # Standard sends none
    finally:
        await provider.close()


async def test_a_shed_flex_job_is_never_answered_with_an_earlier_image(store, fake, clock):
    # No Batch runner here (as in the CLI): the shed job is retried on Flex, never served stale,
    # though an identical earlier image exists.
    lanes = Lanes(store, fake, clock, batch_runner=False)
    try:
        first = await lanes.submit(relax=True)
        await lanes.run_one()
        assert (await store.get_job(first.job_id)).state is JobState.SUCCEEDED
        clock.advance(60)
        again = await lanes.submit(relax=True)
        assert isinstance(again, Accepted) and not again.cached
        fake.script_flex(error(503))
        await lanes.run_one()
        job = await store.get_job(again.job_id)
        assert (job.state, job.spec.lane) == (JobState.QUEUED, Lane.FLEX)
        assert not (job.result or {}).get("stale")
    finally:
        await lanes.gemini.close()


async def test_flex_calls_never_take_every_worker_slot(store, fake, clock):
    # Two slots, so one may run Flex: a second Flex job waits while a Standard one is answered.
    lanes = Lanes(store, fake, clock)
    worker = Worker(
        store,
        RoutedProvider([Route("gemini", lanes.gemini)], lanes.catalog),
        lanes.catalog,
        concurrency=2,
        poll_interval=0.05,
        batch_lane=True,
    )
    fake.script_flex(hang(), hang())
    stop = asyncio.Event()
    try:
        first = await lanes.submit("first flex", relax=True)
        second = await lanes.submit("second flex", relax=True)
        running = asyncio.create_task(worker.run(stop))
        standard = await lanes.submit("standard")
        await fake.wait_for(lambda: state_is(store, standard.job_id, JobState.SUCCEEDED))
        assert (await store.get_job(first.job_id)).state is JobState.RUNNING
        assert (await store.get_job(second.job_id)).state is JobState.QUEUED
    finally:
        stop.set()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await lanes.gemini.close()


async def state_is(store, job_id: int, wanted: JobState) -> bool:
    return (await store.get_job(job_id)).state is wanted
