"""The worker pipeline end to end in one process: service -> queue -> worker ->
real google-genai client -> loopback fake Gemini -> store -> outbox -> notifier."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from decimal import Decimal

from PIL import Image

from bot.alerts import CallWatch
from bot.money.admission import Admission
from bot.money.quotas import QuotaLimits
from bot.service import Caller, ImagineService
from bot.types import Accepted, EditRequest, InputImage, JobState
from tests.fakes.gemini_server import Tokens, error, finish, free_tier_zero, ok
from tests.support.jobs import new_job, spec
from tests.support.pipeline import Pipeline, started_then


async def test_a_job_is_rendered_stored_settled_and_delivered_once(sqlite_store, fake):
    async with Pipeline(sqlite_store, fake) as p:
        accepted = await p.imagine("a koi pond at dawn", aspect_ratio="16:9", size="4K")
        assert accepted.position == 1 and accepted.estimate_usd >= Decimal("0.24")
        await p.notifier.wait_final(accepted.job_id)
    job = await sqlite_store.get_job(accepted.job_id)
    assert job.state is JobState.SUCCEEDED and job.attempt == 1
    image = await sqlite_store.get_image(job.result_image_id)
    with Image.open(io.BytesIO(image.data)) as img:
        assert abs(img.width / img.height - 16 / 9) < 0.02
    assert (image.width, image.height) == img.size
    # 2,000 image tokens at $120/M, the prompt's input tokens at $2/M, the answer's text
    # and thinking at $12/M.
    usage = job.result["usage"]
    assert usage["image_tokens"] == 2000 and usage["thoughts_tokens"] > 0
    text_and_thinking = usage["output_tokens"] - 2000 + usage["thoughts_tokens"]
    expected = (Decimal(2000) * 120 + Decimal(usage["prompt_tokens"]) * 2 + Decimal(text_and_thinking) * 12) / 1_000_000
    assert Decimal(job.result["cost_usd"]) == expected.quantize(Decimal("0.000001"))
    assert started_then(p.notifier.kinds(job.id), "result")
    assert fake.requests[0].prompt == "a koi pond at dawn"
    # The ledger: held the estimate, charged the usage, released the difference.
    ledger = [(r["entry"], r["cost_micros"], r["image_tokens"]) for r in await sqlite_store.ledger()]
    charged = int(Decimal(job.result["cost_usd"]) * 1_000_000)
    held = int(accepted.estimate_usd * 1_000_000)
    assert ledger == [("reservation", held, None), ("settlement", charged, 2000), ("release", held - charged, None)]


async def test_overloaded_then_success_retries_and_delivers_one_result(sqlite_store, fake):
    fake.script(error(503), ok())
    async with Pipeline(sqlite_store, fake) as p:
        accepted = await p.imagine()
        await p.notifier.wait_final(accepted.job_id)
    job = await sqlite_store.get_job(accepted.job_id)
    assert job.state is JobState.SUCCEEDED and job.attempt == 2
    assert len(fake.requests) == 2
    # One result; the second "started" is dropped when the job finished before the dispatcher got to it.
    assert p.notifier.kinds(job.id) in (["started", "started", "result"], ["started", "result"])


async def test_persistent_overload_dead_letters_after_max_attempts_and_tells_the_user(sqlite_store, fake):
    fake.script(error(503), error(503), error(503), ok())
    async with Pipeline(sqlite_store, fake, max_attempts=3) as p:
        accepted = await p.imagine()
        await p.notifier.wait_final(accepted.job_id)
    job = await sqlite_store.get_job(accepted.job_id)
    assert job.state is JobState.DEAD and job.error_class == "overloaded" and job.attempt == 3
    assert len(fake.requests) == 3
    [(kind, _, payload)] = [s for s in p.notifier.seen if s[0] != "started"]
    assert kind == "failure" and payload["state"] == "dead" and payload["error_class"] == "overloaded"


async def test_blocked_answer_is_final_and_settled_from_reported_usage(sqlite_store, fake):
    fake.script(finish("IMAGE_SAFETY"))
    async with Pipeline(sqlite_store, fake) as p:
        accepted = await p.imagine("something the filter dislikes")
        await p.notifier.wait_final(accepted.job_id)
    job = await sqlite_store.get_job(accepted.job_id)
    assert job.state is JobState.BLOCKED and job.error_class == "blocked"
    assert job.result["block_reason"] == "IMAGE_SAFETY"
    assert Decimal(job.result["cost_usd"]) == (Decimal(job.result["usage"]["prompt_tokens"]) * 2 / 1_000_000).quantize(
        Decimal("0.000001")
    )
    assert len(fake.requests) == 1  # never retried
    settlement = [r for r in await sqlite_store.ledger() if r["entry"] == "settlement"]
    assert [(r["status"], r["cost_micros"]) for r in settlement] == [
        ("blocked", int(Decimal(job.result["cost_usd"]) * 1_000_000))
    ]


def pro_tokens_micros(usage: dict) -> int:
    """What Google bills Pro for an answer's tokens, in micro-dollars:
    input $2/M, text and thinking $12/M, image $120/M."""
    image = sum(d["tokenCount"] for d in usage.get("candidatesTokensDetails", []) if d["modality"] == "IMAGE")
    text = usage.get("candidatesTokenCount", 0) - image + usage.get("thoughtsTokenCount", 0)
    return usage["promptTokenCount"] * 2 + text * 12 + image * 120


def balance(ledger) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in ledger:
        out[row["entry"]] = out.get(row["entry"], 0) + row["cost_micros"]
    return out


async def test_a_no_image_answer_is_retried_once_and_every_billed_attempt_is_settled(sqlite_store, fake):
    fake.script(
        finish("MAX_TOKENS", usage=Tokens(prompt=9, text=40, thoughts=300)),
        finish("IMAGE_OTHER", usage=Tokens(prompt=9, thoughts=120)),
        ok(),
    )
    async with Pipeline(sqlite_store, fake, max_attempts=5) as p:
        accepted = await p.imagine()
        await p.notifier.wait_final(accepted.job_id)
    job = await sqlite_store.get_job(accepted.job_id)
    assert job.state is JobState.FAILED and job.error_class == "no_image" and job.attempt == 2
    assert len(fake.requests) == 2  # one retry, whatever max_attempts allows
    assert job.result["finish_reason"] == "IMAGE_OTHER"
    billed = [pro_tokens_micros(usage) for _, _, usage in fake.sent_usage]
    assert billed == [9 * 2 + 340 * 12, 9 * 2 + 120 * 12]
    ledger = await sqlite_store.ledger()
    assert [(r["entry"], r["status"], r["cost_micros"]) for r in ledger if r["entry"] == "settlement"] == [
        ("settlement", "failed", billed[0]),
        ("settlement", "failed", billed[1]),
    ]
    totals = balance(ledger)
    assert totals["reservation"] == totals["settlement"] + totals["release"]
    [(kind, _, payload)] = [x for x in p.notifier.seen if x[0] != "started"]
    assert kind == "failure" and payload["error_class"] == "no_image"


async def test_a_no_image_answer_then_an_image_charges_both_calls(sqlite_store, fake):
    fake.script(finish("MALFORMED_RESPONSE", usage=Tokens(prompt=9, text=40)), ok())
    async with Pipeline(sqlite_store, fake, max_attempts=3) as p:
        accepted = await p.imagine()
        await p.notifier.wait_final(accepted.job_id)
    job = await sqlite_store.get_job(accepted.job_id)
    assert job.state is JobState.SUCCEEDED and job.attempt == 2 and len(fake.requests) == 2
    billed = [pro_tokens_micros(usage) for _, _, usage in fake.sent_usage]
    ledger = await sqlite_store.ledger()
    assert [(r["status"], r["cost_micros"]) for r in ledger if r["entry"] == "settlement"] == [
        ("failed", billed[0]),
        ("succeeded", billed[1]),
    ]
    assert billed[1] == int(Decimal(job.result["cost_usd"]) * 1_000_000)
    totals = balance(ledger)
    assert totals["reservation"] == totals["settlement"] + totals["release"]


async def test_billing_not_enabled_fails_at_once_and_costs_nothing(sqlite_store, fake):
    fake.script(free_tier_zero(), ok())
    async with Pipeline(sqlite_store, fake, max_attempts=3) as p:
        accepted = await p.imagine()
        await p.notifier.wait_final(accepted.job_id)
    job = await sqlite_store.get_job(accepted.job_id)
    assert job.state is JobState.FAILED and job.error_class == "billing" and len(fake.requests) == 1
    held = int(accepted.estimate_usd * 1_000_000)
    assert [(r["entry"], r["cost_micros"]) for r in await sqlite_store.ledger()] == [
        ("reservation", held),
        ("release", held),
    ]


async def test_auth_error_is_not_retried(sqlite_store, fake):
    fake.script(error(401))
    async with Pipeline(sqlite_store, fake) as p:
        accepted = await p.imagine()
        await p.notifier.wait_final(accepted.job_id)
    job = await sqlite_store.get_job(accepted.job_id)
    assert job.state is JobState.FAILED and job.error_class == "auth" and len(fake.requests) == 1
    # Not billed: the whole hold comes back.
    entries = [(r["entry"], r["cost_micros"]) for r in await sqlite_store.ledger()]
    assert entries == [
        ("reservation", int(accepted.estimate_usd * 1_000_000)),
        ("release", int(accepted.estimate_usd * 1_000_000)),
    ]


async def test_edit_sends_the_parent_image_and_links_the_new_one(sqlite_store, fake):
    async with Pipeline(sqlite_store, fake) as p:
        first = await p.imagine("a koi pond", aspect_ratio="3:2", model="flash")
        await p.notifier.wait_final(first.job_id)
        parent_id = (await sqlite_store.get_job(first.job_id)).result_image_id
        parent = await sqlite_store.get_image(parent_id)
        edit = await p.service.edit(
            EditRequest(
                team="T1",
                channel="C1",
                user="U2",
                platform="test",
                parent_image_id=parent_id,
                instruction="make it night",
            )
        )
        assert isinstance(edit, Accepted) and edit.model == "flash" and edit.aspect_ratio == "3:2"
        await p.notifier.wait_final(edit.job_id)
    job = await sqlite_store.get_job(edit.job_id)
    child = await sqlite_store.get_image(job.result_image_id)
    assert child.parent_image_id == parent_id
    assert fake.requests[-1].input_images == [parent.data]
    assert fake.requests[-1].prompt == "make it night"
    assert fake.requests[-1].model == "gemini-3.1-flash-image"


async def test_concurrent_jobs_all_finish_exactly_once(sqlite_store, fake):
    fake.latency = 0.05
    async with Pipeline(sqlite_store, fake, concurrency=4) as p:
        accepted = [await p.imagine(f"prompt {i}", team=f"T{i % 3}") for i in range(12)]
        for a in accepted:
            await p.notifier.wait_final(a.job_id)
    for a in accepted:
        assert started_then(p.notifier.kinds(a.job_id), "result")  # one result each
    assert len(fake.requests) == 12
    assert sorted(r.prompt for r in fake.requests) == sorted(f"prompt {i}" for i in range(12))


async def test_input_attachment_reaches_the_model(sqlite_store, fake):
    from tests.support.images import png_bytes

    data = png_bytes(10, 20, "blue")
    async with Pipeline(sqlite_store, fake) as p:
        accepted = await p.imagine("use this as reference", images=(InputImage(data, "image/png"),))
        await p.notifier.wait_final(accepted.job_id)
    assert fake.requests[0].input_images == [data]


async def test_a_job_without_attachments_never_reads_its_inputs(sqlite_store, fake, monkeypatch):
    from tests.support.images import png_bytes

    read = []
    job_inputs = sqlite_store.job_inputs

    async def counted(job_id):
        read.append(job_id)
        return await job_inputs(job_id)

    monkeypatch.setattr(sqlite_store, "job_inputs", counted)
    async with Pipeline(sqlite_store, fake) as p:
        plain = await p.imagine("a fox")
        await p.notifier.wait_final(plain.job_id)
        attached = await p.imagine("this fox", images=(InputImage(png_bytes(10, 20, "blue"), "image/png"),))
        await p.notifier.wait_final(attached.job_id)
    assert plain.job_id not in read and attached.job_id in read


async def test_every_call_is_logged_as_one_line_and_a_failure_keeps_a_repro_record(sqlite_store, fake, caplog):
    import json as _json
    import logging

    caplog.set_level(logging.INFO, logger="bot.calls")
    fake.script(error(403), ok())
    async with Pipeline(sqlite_store, fake) as p:
        failed = await p.imagine("a secret project codename")
        await p.notifier.wait_final(failed.job_id)
        worked = await p.imagine("a koi pond")
        await p.notifier.wait_final(worked.job_id)
    lines = [_json.loads(r.getMessage()) for r in caplog.records if r.name == "bot.calls"]
    assert [(line["job"], line["status"], line["http_status"]) for line in lines] == [
        (failed.job_id, "permission", 403),
        (worked.job_id, "ok", None),
    ]
    assert lines[1]["image_tokens"] == 1120 and lines[1]["cost_usd"] and lines[1]["route"] == "gemini"
    assert all("secret" not in r.getMessage() for r in caplog.records)
    repro = (await sqlite_store.get_job(failed.job_id)).result["repro"]
    assert repro == {
        "model_id": "gemini-3-pro-image",
        "route": "gemini",
        "size": "2K",
        "aspect_ratio": "1:1",
        "status_code": 403,
        "request_id": None,
        "prompt_sha256": lines[0]["prompt_sha256"],
        "error_class": "permission",
    }


async def test_an_identical_request_is_answered_from_the_cache_at_no_cost(sqlite_store, fake):
    async with Pipeline(sqlite_store, fake) as p:
        p.service._cache_ttl = 3600
        first = await p.imagine("a koi pond", aspect_ratio="3:2")
        await p.notifier.wait_final(first.job_id)
        again = await p.imagine("a koi pond", aspect_ratio="3:2")
        assert again.cached and again.estimate_usd == 0
        await p.notifier.wait_final(again.job_id)
        other = await p.imagine("a koi pond", aspect_ratio="16:9")  # a different request
        await p.notifier.wait_final(other.job_id)
        reroll = await p.service.rerun(first.job_id, Caller("T1", "U1"), platform="test", channel="C1")
        assert isinstance(reroll, Accepted) and not reroll.cached
        await p.service.attach_delivery(reroll.job_id, {})  # what the adapter does once its status is up
        await p.notifier.wait_final(reroll.job_id)
    assert len(fake.requests) == 3  # first, other, reroll: the repeat never reached Gemini
    cached_job = await sqlite_store.get_job(again.job_id)
    first_job = await sqlite_store.get_job(first.job_id)
    assert cached_job.result_image_id == first_job.result_image_id and cached_job.result["cached"]
    assert [k for k, jid, _ in p.notifier.seen if jid == again.job_id] == ["result"]
    assert not [r for r in await sqlite_store.ledger() if r["job_id"] == again.job_id]  # nothing held or charged


async def test_no_retry_is_scheduled_past_the_job_deadline(sqlite_store, fake):
    fake.script(error(429, retry_delay="30s"), ok())
    async with Pipeline(sqlite_store, fake, max_attempts=5) as p:
        p.worker._deadline = 10  # the server asks for 30 s; the job must answer within 10
        accepted = await p.imagine()
        await p.notifier.wait_final(accepted.job_id)
    job = await sqlite_store.get_job(accepted.job_id)
    assert job.state is JobState.DEAD and job.error_class == "quota" and len(fake.requests) == 1


async def test_a_briefly_unavailable_store_does_not_lose_a_paid_image(sqlite_store, fake, monkeypatch):
    from bot.store.ports import StoreUnavailable

    real_complete, failures = sqlite_store.complete, []

    async def flaky_complete(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise StoreUnavailable("sqlite: database is locked")
        return await real_complete(*args, **kwargs)

    monkeypatch.setattr(sqlite_store, "complete", flaky_complete)
    async with Pipeline(sqlite_store, fake) as p:
        accepted = await p.imagine()
        await p.notifier.wait_final(accepted.job_id)
    job = await sqlite_store.get_job(accepted.job_id)
    assert failures and job.state is JobState.SUCCEEDED and job.attempt == 1 and len(fake.requests) == 1


async def test_a_call_that_cannot_be_priced_fails_once_releases_its_hold_and_is_alerted(sqlite_store, fake):
    # A job for unpriced Lite (queued before its price was removed, say): the
    # call runs, pricing fails, and the job must end at once, not run again.
    job = dataclasses.replace(
        new_job(platform="test"), spec=spec(model_alias="lite", model_id="gemini-3.1-flash-lite-image")
    )
    submitted = await sqlite_store.submit(job, [], Admission(200_000, "test", QuotaLimits(None, None, None)))
    watch = CallWatch(sqlite_store, ["test"])
    async with Pipeline(sqlite_store, fake, watch=watch) as p:
        p.worker.wake()
        await p.notifier.wait_final(submitted.job_id)
    finished = await sqlite_store.get_job(submitted.job_id)
    assert (finished.state, finished.error_class, finished.attempt) == (JobState.FAILED, "unpriced", 1)
    assert len(fake.requests) == 1
    ledger = [(r["entry"], r["cost_micros"]) for r in await sqlite_store.ledger()]
    assert ledger == [("reservation", 200_000), ("release", 200_000)]
    assert started_then(p.notifier.kinds(submitted.job_id), "failure")
    # The operator alert was queued once (a second raise of its key is refused).
    assert not await sqlite_store.raise_alert(f"unpriced:{submitted.job_id}", ["test"], "again")


async def test_an_edit_of_an_image_made_by_a_retired_model_is_made_with_its_replacement(sqlite_store, fake):
    from tests.support.clock import FakeClock

    clock = FakeClock(1_788_000_000.0)  # 2026-08-29: legacy still runs
    async with Pipeline(sqlite_store, fake) as p:
        p.service = ImagineService(sqlite_store, p.catalog, on_submit=p.worker.wake, clock=clock)
        first = await p.imagine("a koi pond", aspect_ratio="3:2", model="legacy")
        await p.notifier.wait_final(first.job_id)
        assert fake.requests[-1].model == "gemini-2.5-flash-image" and first.retired_note is None
        parent_id = (await sqlite_store.get_job(first.job_id)).result_image_id
        clock.advance(100 * 86400)  # 2026-12-07: legacy was shut down on 2026-10-02
        edit = await p.service.edit(
            EditRequest(
                team="T1",
                channel="C1",
                user="U2",
                platform="test",
                parent_image_id=parent_id,
                instruction="make it night",
            )
        )
        assert isinstance(edit, Accepted) and (edit.model, edit.size, edit.aspect_ratio) == ("flash", "1K", "3:2")
        assert edit.retired_note == "legacy was retired on 2026-10-02; made with flash."
        await p.notifier.wait_final(edit.job_id)
    assert (await sqlite_store.get_job(edit.job_id)).state is JobState.SUCCEEDED
    assert (fake.requests[-1].model, fake.requests[-1].image_size) == ("gemini-3.1-flash-image", "1K")


async def test_a_job_submitted_while_a_slot_is_leasing_starts_without_waiting_for_the_poll(sqlite_store, fake):
    """The wake-up of a submit that lands while the slot's lease call is in flight (the lease
    found nothing, the job came just after) must not be lost when the slot then goes idle: it
    would wait a whole poll interval (a second by default; here a minute, so a lost wake-up
    cannot pass for a slow machine)."""
    submitted: list[Accepted] = []
    landed = asyncio.Event()
    real_lease_many = sqlite_store.lease_many

    async with Pipeline(sqlite_store, fake, concurrency=1, poll_interval=60) as p:

        async def lease_then_a_submit_lands(*args, **kwargs):
            jobs = await real_lease_many(*args, **kwargs)
            if not submitted:  # the first lease: empty, and a job arrives before the slot idles
                submitted.append(await p.imagine())
                landed.set()
            return jobs

        # Set before the worker's slot first runs (no await since the pipeline started).
        sqlite_store.lease_many = lease_then_a_submit_lands
        await asyncio.wait_for(landed.wait(), 20)
        await asyncio.wait_for(p.notifier.wait_final(submitted[0].job_id), 20)
