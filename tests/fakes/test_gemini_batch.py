"""The fake's Batch API speaks the real wire format: the real SDK's client.aio.batches runs on it."""

import io

import aiohttp
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from tests.fakes.gemini_server import blocked_prompt, error, ok

FLASH = "gemini-3.1-flash-image"


def client_for(fake, key="k"):
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=fake.url, api_version="v1beta"))


def inlined(prompt, aspect_ratio="16:9", image_size="2K"):
    return types.InlinedRequest(
        contents=prompt,
        config=types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=aspect_ratio, image_size=image_size),
        ),
    )


async def create(client, prompts=("a fox", "a cat", "a dog"), name="nightly", **kw):
    return await client.aio.batches.create(
        model=FLASH, src=[inlined(p, **kw) for p in prompts], config={"display_name": name}
    )


async def test_create_records_the_requests_and_answers_a_pending_job(fake):
    job = await create(client_for(fake))
    assert job.name.startswith("batches/") and job.state == types.JobState.JOB_STATE_PENDING
    assert job.display_name == "nightly" and job.model == f"models/{FLASH}"
    assert job.create_time and job.dest is None
    batch = fake.batch(job.name)
    assert fake.batches == {job.name.removeprefix("batches/"): batch}
    assert [(r.prompt, r.aspect_ratio, r.image_size, r.model) for r in batch.requests] == [
        ("a fox", "16:9", "2K", FLASH),
        ("a cat", "16:9", "2K", FLASH),
        ("a dog", "16:9", "2K", FLASH),
    ]
    assert batch.requests[0].headers["x-goog-api-key"] == "k"
    assert fake.requests == []  # batched requests are not generateContent calls
    assert fake.batch_creates == 1


async def test_finished_batch_carries_inlined_responses_in_request_order(fake):
    client = client_for(fake)
    job = await create(client)
    assert (await client.aio.batches.get(name=job.name)).state == types.JobState.JOB_STATE_PENDING
    fake.finish_batch(job.name, ok(), error(429), blocked_prompt())
    job = await client.aio.batches.get(name=job.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED and job.end_time
    first, second, third = job.dest.inlined_responses
    [png] = [p.inline_data.data for p in first.response.candidates[0].content.parts if p.inline_data]
    assert Image.open(io.BytesIO(png)).size == (344, 192)  # 1376x768 * 2 (2K) * 0.125
    usage = first.response.usage_metadata
    assert usage.candidates_tokens_details[0].token_count == 1680 and first.error is None
    assert isinstance(second.error, types.JobError) and second.response is None
    assert second.error.code == 8 and "quota" in second.error.message  # gRPC RESOURCE_EXHAUSTED
    assert third.response.prompt_feedback.block_reason == types.BlockedReason.PROHIBITED_CONTENT
    assert fake.batch_gets == 2


async def test_wire_format_of_a_finished_batch(fake):
    job = await create(client_for(fake), prompts=("a", "b"))
    fake.finish_batch(job.name, error(503))  # the second request gets ok()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake.url}/v1beta/{job.name}") as resp:
            body = await resp.json()
    meta = body["metadata"]
    assert body["done"] is True and meta["state"] == "BATCH_STATE_SUCCEEDED"
    assert meta["batchStats"] == {"requestCount": "2", "successfulRequestCount": "1", "failedRequestCount": "1"}
    assert body["response"] == {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
        **meta["output"],
    }
    first, second = meta["output"]["inlinedResponses"]["inlinedResponses"]
    assert first == {"error": {"code": 14, "message": "The model is overloaded. Please try again later."}}
    assert set(second) == {"response"}  # no echoed metadata


async def test_auto_finish_succeeds_on_first_poll(fake):
    fake.auto_finish_batches = True
    client = client_for(fake)
    job = await client.aio.batches.get(name=(await create(client, prompts=("x",))).name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    [only] = job.dest.inlined_responses
    assert only.response.candidates[0].finish_reason == types.FinishReason.STOP


async def test_expired_and_cancelled(fake):
    client = client_for(fake)
    expired, cancelled = await create(client, name="a"), await create(client, name="b")
    fake.set_batch_state(expired.name, "BATCH_STATE_EXPIRED")
    assert await client.aio.batches.cancel(name=cancelled.name) is None
    assert (await client.aio.batches.get(name=expired.name)).state == types.JobState.JOB_STATE_EXPIRED
    job = await client.aio.batches.get(name=cancelled.name)
    assert job.state == types.JobState.JOB_STATE_CANCELLED and job.end_time and job.dest is None
    await client.aio.batches.cancel(name=expired.name)  # a finished batch stays as it is
    assert fake.batch(expired.name).state == "BATCH_STATE_EXPIRED"
    with pytest.raises(ValueError):
        fake.set_batch_state(expired.name, "BATCH_STATE_SUCCEEDED")


async def test_list_finds_the_batch_by_display_name(fake):
    client = client_for(fake)
    for name in ("one", "two", "three"):
        await create(client, name=name)
    pager = await client.aio.batches.list(config={"page_size": 2})
    jobs = [job async for job in pager]
    assert [j.display_name for j in jobs] == ["one", "two", "three"]
    assert [j.name for j in jobs if j.display_name == "two"] == [fake.batch(jobs[1].name).name]


async def test_unknown_batch_is_404(fake):
    with pytest.raises(errors.ClientError) as info:
        await client_for(fake).aio.batches.get(name="batches/nope")
    assert info.value.code == 404 and info.value.status == "NOT_FOUND"


async def test_bad_api_key_is_rejected(fake):
    fake.api_key = "right"
    with pytest.raises(errors.ClientError) as info:
        await create(client_for(fake, key="wrong"))
    assert info.value.code == 400 and "API key not valid" in info.value.message
    assert fake.batches == {}


async def test_one_invalid_request_fails_the_whole_create(fake):
    client = client_for(fake)
    src = [inlined("ok"), inlined("bad", aspect_ratio="7:3")]
    with pytest.raises(errors.ClientError) as info:
        await client.aio.batches.create(model=FLASH, src=src)
    assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
    assert "aspect_ratio" in info.value.message and fake.batches == {}


async def test_empty_batch_and_unknown_model_are_rejected(fake):
    client = client_for(fake)
    with pytest.raises(errors.ClientError) as info:
        await client.aio.batches.create(model=FLASH, src=[])
    assert info.value.code == 400
    with pytest.raises(errors.ClientError) as info:
        await client.aio.batches.create(model="gemini-9-image", src=[inlined("x")])
    assert info.value.code == 404 and "batchGenerateContent" in info.value.message


async def test_scripted_create_failure(fake):
    fake.script_batch_create(error(429, retry_delay="30s"))
    client = client_for(fake)
    with pytest.raises(errors.ClientError) as info:
        await create(client)
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    assert (await create(client)).state == types.JobState.JOB_STATE_PENDING  # the script is used up
    assert fake.batch_creates == 2 and len(fake.batches) == 1
