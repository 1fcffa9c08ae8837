"""The relaxed lane end to end: service -> queue -> BatchRunner -> real google-genai
Batch API calls -> loopback fake Gemini -> worker outcome path -> store and ledger."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from bot.batch import BatchRunner, display_name
from bot.catalog import load_catalog
from bot.money import pricing, to_micros
from bot.money.admission import Admission, Charge
from bot.money.quotas import QuotaLimits
from bot.providers.base import BatchItem
from bot.providers.errors import OverloadedError
from bot.providers.gemini import GeminiProvider
from bot.service import ImagineService
from bot.store.ports import final_delivery_key
from bot.types import (
    Accepted,
    CheckedImage,
    EditRequest,
    ImagineRequest,
    InputImage,
    JobState,
    Lane,
    NewDelivery,
    NewJob,
    RefusalReason,
    Refused,
    Usage,
)
from bot.worker import Worker
from policies.config import PolicyBook
from tests.fakes.gemini_server import blocked_prompt, error, ok
from tests.support.images import noise_png
from tests.support.jobs import spec

STALE = 900.0
ADMISSION = Admission(100_000, "test-prices", QuotaLimits(None, None, None))


class Lane_:
    """A store, the service with the Batch lane on, and a BatchRunner, all on one FakeClock."""

    def __init__(self, store, fake, clock):
        self.store, self.fake, self.clock = store, fake, clock
        self.catalog = load_catalog()
        self.provider = GeminiProvider.create(api_key="k", base_url=fake.url, vertexai=False, timeout_seconds=10)
        self.worker = Worker(store, self.provider, self.catalog, retry_base=1, retry_cap=1, clock=clock)
        self.runner = BatchRunner(store, self.provider, self.worker, poll_interval=60, stale_after=STALE, clock=clock)
        self.service = ImagineService(store, self.catalog, batch_lane=True, clock=clock)

    async def relax(self, prompt: str, **kw) -> Accepted:
        outcome = await self.service.submit(
            ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt=prompt, lane="batch", **kw)
        )
        assert isinstance(outcome, Accepted), outcome
        return outcome

    async def state(self, job_id: int) -> JobState:
        return (await self.store.get_job(job_id)).state

    async def entries(self, job_id: int) -> list[tuple[str, int, str]]:
        return [(r["entry"], r["cost_micros"], r["status"]) for r in await self.store.ledger() if r["job_id"] == job_id]

    async def poll_later(self, seconds: float = 61) -> int:
        self.clock.advance(seconds)
        return await self.runner.poll()


@pytest.fixture
async def lane(store, fake, clock):  # on every store kind
    harness = Lane_(store, fake, clock)
    yield harness
    await harness.provider.close()


async def test_relaxed_jobs_are_held_at_the_batch_price_and_skipped_by_interactive_workers(lane):
    accepted = await lane.relax("a lighthouse at dusk", size="2K")
    assert accepted.relaxed
    standard = pricing.image_price(lane.catalog.resolve("pro"), "2K", Lane.STANDARD)
    assert accepted.estimate_usd < standard  # half the image price, plus the prompt's tokens
    assert await lane.store.lease("interactive", 30) is None
    assert await lane.state(accepted.job_id) is JobState.QUEUED


async def test_a_batch_is_sent_polled_and_each_request_settled_on_its_own(lane, fake):
    jobs = [await lane.relax(p) for p in ("a fox", "a cat", "a dog")]
    assert await lane.runner.send() == 1
    [batch] = fake.batches.values()
    assert [r.prompt for r in batch.requests] == ["a fox", "a cat", "a dog"]
    assert batch.display_name.startswith("imagine-bot-")
    assert [await lane.state(j.job_id) for j in jobs] == [JobState.RUNNING] * 3
    assert await lane.runner.send() == 0  # nothing is sent twice

    assert await lane.poll_later() == 0  # still pending at Google
    fake.finish_batch(batch.name, ok(), error(429), blocked_prompt())
    assert await lane.poll_later() == 3

    fox, cat, dog = [await lane.store.get_job(j.job_id) for j in jobs]
    assert fox.state is JobState.SUCCEEDED and fox.result["route"] == "gemini-batch"
    # Settled from the reported usage at the batch rate: half of what the same call costs interactively.
    usage = Usage(**fox.result["usage"])
    pro = lane.catalog.resolve("pro")
    cost = pricing.settle(pro, "1K", Lane.BATCH, usage)
    assert cost == pricing.settle(pro, "1K", Lane.STANDARD, usage) / 2 and cost > 0
    assert Decimal(fox.result["cost_usd"]) == cost
    settled = [e for e in await lane.entries(fox.id) if e[0] == "settlement"]
    assert settled == [("settlement", to_micros(cost), "succeeded")]
    # A per-request 429 goes back to the relaxed queue for the next batch, uncharged.
    assert cat.state is JobState.QUEUED and cat.error_class == "quota" and cat.spec.lane is Lane.BATCH
    assert not [e for e in await lane.entries(cat.id) if e[0] == "settlement"]
    assert dog.state is JobState.BLOCKED
    # The next batch carries only the retried job.
    lane.clock.advance(5)
    assert await lane.runner.send() == 1
    assert [r.prompt for r in list(fake.batches.values())[1].requests] == ["a cat"]


async def test_an_expired_batch_releases_every_hold_and_tells_each_requester(lane, fake):
    jobs = [await lane.relax(p) for p in ("a fox", "a cat")]
    await lane.runner.send()
    [batch] = fake.batches.values()
    fake.set_batch_state(batch.name, "BATCH_STATE_EXPIRED")
    assert await lane.poll_later() == 2
    for accepted in jobs:
        job = await lane.store.get_job(accepted.job_id)
        assert job.state is JobState.FAILED and job.error_class == "batch_not_done"
        entries = await lane.entries(job.id)
        assert [e[0] for e in entries] == ["reservation", "release"]
        assert entries[1][1] == entries[0][1]  # all of the hold comes back
    statuses = await lane.store.budget_statuses("T1", "C1", "U1")
    assert all(s.reserved_micros == 0 for s in statuses)
    finals = [d for d in await lane.store.claim_deliveries(["test"], 50, 30) if d.kind == "failure"]
    assert sorted(d.job_id for d in finals) == sorted(j.job_id for j in jobs)


async def test_a_refused_create_requeues_the_jobs_uncharged(lane, fake):
    accepted = await lane.relax("a fox")
    fake.script_batch_create(error(429))  # a clear no
    assert await lane.runner.send() == 0
    job = await lane.store.get_job(accepted.job_id)
    assert job.state is JobState.QUEUED and job.error_class == "quota"
    assert [e[0] for e in await lane.entries(job.id)] == ["reservation"]
    lane.clock.advance(5)
    assert await lane.runner.send() == 1  # the retry goes out in a new batch


async def test_a_create_whose_answer_was_lost_is_looked_up_not_sent_again(lane, fake):
    accepted = await lane.relax("a fox")
    real = lane.provider.submit_batch

    async def created_then_connection_lost(*args, **kw):
        await real(*args, **kw)  # Google created it, but the answer never arrived
        raise OverloadedError("network error or timeout creating a Gemini batch: TimeoutError")

    lane.provider.submit_batch = created_then_connection_lost
    assert await lane.runner.send() == 0
    lane.provider.submit_batch = real
    lane.clock.advance(300)
    assert await lane.runner.send() == 0  # the job still waits on the unclear batch
    assert await lane.poll_later(STALE) == 0  # found at Google by its name, and adopted
    [remote] = fake.batches.values()
    fake.finish_batch(remote.name, ok())
    assert await lane.poll_later() == 1
    settled = [e for e in await lane.entries(accepted.job_id) if e[0] == "settlement"]
    assert len(settled) == 1 and fake.batch_creates == 1


async def test_an_unclear_create_that_made_nothing_is_requeued_after_the_lookup(lane, fake):
    accepted = await lane.relax("a fox")
    fake.script_batch_create(error(503))
    assert await lane.runner.send() == 0
    assert await lane.state(accepted.job_id) is JobState.RUNNING  # not given back on a guess
    assert await lane.poll_later(STALE + 1) == 1  # nothing at Google by that name
    assert await lane.state(accepted.job_id) is JobState.QUEUED
    lane.clock.advance(5)
    assert await lane.runner.send() == 1 and len(fake.batches) == 1


async def test_a_sender_outlived_by_recovery_cancels_what_it_created(lane, fake):
    accepted = await lane.relax("a fox")
    real = lane.provider.submit_batch

    async def slow(*args, **kw):
        assert await lane.poll_later(STALE + 1) == 1  # meanwhile recovery gives the job back
        return await real(*args, **kw)

    lane.provider.submit_batch = slow
    assert await lane.runner.send() == 0
    [remote] = fake.batches.values()
    assert remote.state == "BATCH_STATE_CANCELLED"
    assert await lane.state(accepted.job_id) is JobState.QUEUED


async def test_a_batch_out_too_long_is_cancelled_and_its_holds_released(lane, fake):
    accepted = await lane.relax("a fox")
    assert await lane.runner.send() == 1
    assert await lane.poll_later(71 * 3600) == 0  # still pending at Google: keep waiting
    assert await lane.poll_later(2 * 3600) == 1
    [remote] = fake.batches.values()
    assert remote.state == "BATCH_STATE_CANCELLED"
    job = await lane.store.get_job(accepted.job_id)
    assert job.state is JobState.FAILED and job.error_class == "batch_not_done"
    assert [e[0] for e in await lane.entries(job.id)] == ["reservation", "release"]


async def test_relaxed_requests_are_held_at_the_batch_rate_even_with_a_gateway_and_fallbacks(store, clock):
    policies = PolicyBook(None, {"T1": {"fallback": {"pro": ["flash", "openrouter:pro"]}}})
    catalog = load_catalog()
    service = ImagineService(
        store, catalog, batch_lane=True, clock=clock, policies=policies, gateway_routes=("openrouter",)
    )
    outcome = await service.submit(
        ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt="a fox", size="1K", lane="batch")
    )
    assert outcome.estimate_usd < pricing.image_price(catalog.resolve("pro"), "1K", Lane.STANDARD)
    assert (await store.get_job(outcome.job_id)).spec.fallbacks == ()


async def test_a_batch_created_just_before_its_sender_died_is_adopted_not_sent_again(lane, fake):
    accepted = await lane.relax("a fox")
    # The sender's first steps, then it dies before recording the batch's name.
    batch = await lane.store.open_batch(10)
    await lane.store.batch_sending(batch.id, [j.id for j in batch.jobs])
    await lane.provider.submit_batch(batch.model_id, [BatchItem(j.spec, []) for j in batch.jobs], display_name(batch))
    assert await lane.poll_later(60) == 0  # not stale yet: nothing happens
    assert await lane.poll_later(STALE) == 0  # adopted by its display name
    assert fake.batch_creates == 1
    [remote] = fake.batches.values()
    fake.finish_batch(remote.name, ok())
    assert await lane.poll_later() == 1
    assert await lane.state(accepted.job_id) is JobState.SUCCEEDED
    assert [e[0] for e in await lane.entries(accepted.job_id)] == ["reservation", "settlement", "release"]


async def test_a_batch_whose_sender_died_before_sending_goes_back_to_the_queue(lane, fake):
    accepted = await lane.relax("a fox")
    batch = await lane.store.open_batch(10)
    await lane.store.batch_sending(batch.id, [j.id for j in batch.jobs])
    assert await lane.poll_later(STALE + 1) == 1
    assert await lane.state(accepted.job_id) is JobState.QUEUED
    assert fake.batch_creates == 0
    lane.clock.advance(5)
    assert await lane.runner.send() == 1 and fake.batch_creates == 1


async def test_one_batch_per_model_and_a_second_poller_finishes_nothing_twice(lane, fake):
    pro = await lane.relax("a fox")
    flash = await lane.relax("a cat", model="flash")
    assert await lane.runner.send() == 2
    assert sorted(b.model for b in fake.batches.values()) == ["gemini-3-pro-image", "gemini-3.1-flash-image"]
    for b in fake.batches.values():
        fake.finish_batch(b.name, ok())
    # Two pollers (processes) at once: each batch is polled by one of them.
    other = BatchRunner(lane.store, lane.provider, lane.worker, poll_interval=60, clock=lane.clock)
    lane.clock.advance(61)
    assert await lane.runner.poll() + await other.poll() == 2
    for accepted in (pro, flash):
        settlements = [e for e in await lane.entries(accepted.job_id) if e[0] == "settlement"]
        assert len(settlements) == 1
    assert fake.batch_gets == 2


async def test_relaxed_jobs_whose_lane_has_gone_are_cancelled_released_and_told_at_start_up(tmp_path, fake):
    # Queued while the Batch lane was on; the bot then restarts on a gateway alone.
    from bot import bootstrap
    from bot.settings import Settings

    database_url = f"sqlite:///{tmp_path / 'imagine.db'}"
    with_lane = Settings(_env_file=None, database_url=database_url, gemini_api_key="k", gemini_base_url=fake.url)
    runtime = await bootstrap.build(with_lane, notifiers=[])
    relaxed = await runtime.service.submit(
        ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt="a koi pond", lane="batch")
    )
    await runtime.close()
    assert isinstance(relaxed, Accepted)

    gateway_only = Settings(
        _env_file=None,
        database_url=database_url,
        openai_compat_base_url="http://127.0.0.1:9/v1",
        openai_compat_api_key="k",
    )
    runtime = await bootstrap.build(gateway_only, notifiers=[])
    try:
        runtime.add_worker()
        await runtime.cancel_stranded_relaxed()
        job = await runtime.store.get_job(relaxed.job_id)
        assert (job.state, job.error_class) == (JobState.CANCELLED, "lane_unavailable")
        entries = [(r["entry"], r["cost_micros"]) for r in await runtime.store.ledger()]
        held = to_micros(relaxed.estimate_usd)
        assert entries == [("reservation", held), ("release", held)]  # nothing was charged, as the user is told
        [told] = await runtime.store.claim_deliveries(["test"], 10, 30)
        assert (told.kind, told.payload["error_class"]) == ("failure", "lane_unavailable")
        # And a new --relax is refused at once on this configuration.
        again = await runtime.service.submit(
            ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt="again", lane="batch")
        )
        assert getattr(again, "reason", None) is not None and "--batch" in again.detail
    finally:
        await runtime.close()


# --- batches Google can take: under the inline size limit, one bad request alone -----------------


@pytest.fixture(scope="module")
def six_mb() -> bytes:
    return noise_png(6_000_000)


async def test_big_relaxed_requests_go_out_in_batches_google_can_take(lane, fake, six_mb):
    # Three edits with a 6 MB photo each: 24 MB once base64-encoded, past Google's 20 MB inline limit.
    jobs = [await lane.relax(p, images=[InputImage(six_mb, "image/png")]) for p in ("a fox", "a cat", "a dog")]
    assert await lane.runner.send() == 2
    sizes = sorted(len(b.requests) for b in fake.batches.values())
    assert sizes == [1, 2] and fake.batch_creates == 2  # none refused
    assert [await lane.state(j.job_id) for j in jobs] == [JobState.RUNNING] * 3


async def test_a_request_google_refuses_fails_alone_and_the_rest_of_its_batch_goes_out(lane, fake):
    fox = await lane.relax("a fox")
    # A request Google refuses (queued before its aspect ratio was dropped, say): it fails the whole create.
    bad_spec = spec("a seal", lane=Lane.BATCH, aspect_ratio="7:3")
    bad = (
        await lane.store.submit(
            NewJob(team="T1", channel="C1", user="U1", platform="test", kind="imagine", spec=bad_spec, max_attempts=3),
            [],
            ADMISSION,
        )
    ).job_id
    cat = await lane.relax("a cat")
    assert await lane.runner.send() == 2
    sent = sorted(r.prompt for b in fake.batches.values() for r in b.requests)
    assert sent == ["a cat", "a fox"]
    job = await lane.store.get_job(bad)
    assert job.state is JobState.FAILED and job.error_class == "bad_request"
    assert [e[0] for e in await lane.entries(bad)] == ["reservation", "release"]  # nothing billed
    for remote in list(fake.batches.values()):
        fake.finish_batch(remote.name, ok())
    assert await lane.poll_later() == 2
    for accepted in (fox, cat):
        assert await lane.state(accepted.job_id) is JobState.SUCCEEDED
        assert [e[0] for e in await lane.entries(accepted.job_id)] == ["reservation", "settlement", "release"]


async def test_a_relaxed_request_too_big_for_any_batch_is_refused_at_submit(lane, six_mb):
    outcome = await lane.service.submit(
        ImagineRequest(
            team="T1",
            channel="C1",
            user="U1",
            platform="test",
            prompt="a collage",
            lane="batch",
            images=[InputImage(six_mb, "image/png")] * 3,
        )
    )
    assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.INVALID_REQUEST
    assert "too big for the Batch lane" in outcome.detail and "without --batch" in outcome.detail
    # Without --relax it is a request like any other.
    again = await lane.service.submit(
        ImagineRequest(
            team="T1",
            channel="C1",
            user="U1",
            platform="test",
            prompt="a collage",
            images=[InputImage(six_mb, "image/png")] * 3,
        )
    )
    assert isinstance(again, Accepted)


async def test_a_queued_job_too_big_for_any_batch_fails_alone_and_holds_up_nothing(lane, fake, six_mb):
    # Queued before submit refused such requests: 18 MB of photos, 24 MB once encoded.
    photo = CheckedImage(six_mb, "image/png", 1414, 1414, "a" * 64)
    big = (
        await lane.store.submit(
            NewJob(
                team="T1",
                channel="C1",
                user="U1",
                platform="test",
                kind="imagine",
                spec=spec("a collage", lane=Lane.BATCH),
                max_attempts=3,
            ),
            [photo] * 3,
            ADMISSION,
        )
    ).job_id
    small = await lane.relax("a fox")
    assert await lane.runner.send() == 1 and fake.batch_creates == 1  # never sent to be refused
    job = await lane.store.get_job(big)
    assert (job.state, job.error_class) == (JobState.FAILED, "too_big_for_batch")
    assert [e[0] for e in await lane.entries(big)] == ["reservation", "release"]
    assert await lane.state(small.job_id) is JobState.RUNNING


async def test_the_image_an_edit_changes_counts_toward_the_relaxed_size_limit(lane, six_mb):
    made = await lane.service.submit(
        ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt="a fox")
    )
    job = await lane.store.lease("w", 60)
    photo = CheckedImage(six_mb, "image/png", 1414, 1414, "b" * 64)
    image_id = await lane.store.complete(
        job.id,
        "w",
        job.attempt,
        photo,
        {},
        NewDelivery(final_delivery_key(job.id), "result", {}),
        Charge(1, None, "succeeded"),
    )
    assert image_id is not None and made.job_id == job.id
    attachments = [InputImage(six_mb, "image/png")] * 2
    edit = EditRequest(
        team="T1",
        channel="C1",
        user="U1",
        platform="test",
        parent_image_id=image_id,
        instruction="make it blue",
        images=attachments,
    )
    assert isinstance(
        await lane.service.edit(dataclasses.replace(edit, images=attachments[:1], lane="batch")), Accepted
    )  # 12 MB encodes to 16 MB: it fits
    refused = await lane.service.edit(dataclasses.replace(edit, lane="batch"))
    assert isinstance(refused, Refused) and "too big for the Batch lane" in refused.detail
