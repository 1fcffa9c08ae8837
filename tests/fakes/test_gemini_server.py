"""The fake Gemini server speaks the real wire format: the real SDK runs against it."""

import io
import time

import aiohttp
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from tests.fakes.gemini_server import Tokens, blocked_prompt, error, finish, free_tier_zero, hang, no_image, ok

PRO, FLASH, LEGACY = "gemini-3-pro-image", "gemini-3.1-flash-image", "gemini-2.5-flash-image"


def client_for(fake, key="k", **http):
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=fake.url, api_version="v1beta", **http))


def answer_images(response):
    return [p.inline_data.data for p in response.candidates[0].content.parts if p.inline_data and not p.thought]


@pytest.mark.asyncio
async def test_image_has_requested_aspect_ratio_and_usage(fake):
    client = client_for(fake)
    config = types.GenerateContentConfig(
        response_modalities=["IMAGE"], image_config=types.ImageConfig(aspect_ratio="16:9", image_size="2K")
    )
    response = await client.aio.models.generate_content(model=FLASH, contents="a red fox", config=config)
    [png] = answer_images(response)
    assert Image.open(io.BytesIO(png)).size == (344, 192)  # 1376x768 * 2 * 0.125
    usage = response.usage_metadata
    # Image and text together in candidates, only IMAGE itemised, thinking apart.
    text_tokens = len(response.text) // 4
    assert usage.candidates_token_count == 1680 + text_tokens and usage.prompt_token_count == 2
    assert [(d.modality.name, d.token_count) for d in usage.candidates_tokens_details] == [("IMAGE", 1680)]
    assert usage.thoughts_token_count == 137
    assert usage.total_token_count == 2 + 1680 + text_tokens + 137
    assert response.model_version == FLASH and response.response_id
    [req] = fake.requests
    assert (req.model, req.prompt, req.aspect_ratio, req.image_size) == (FLASH, "a red fox", "16:9", "2K")
    assert req.headers["x-goog-api-key"] == "k"


@pytest.mark.asyncio
async def test_pro_sends_thought_parts_before_the_answer(fake):
    fake.script(ok(text="Here you go"))
    response = await client_for(fake).aio.models.generate_content(model=PRO, contents="a cat")
    parts = response.candidates[0].content.parts
    assert [bool(p.thought) for p in parts] == [True, True, False, False]
    assert Image.open(io.BytesIO(parts[1].inline_data.data)).size == (8, 8)
    assert Image.open(io.BytesIO(answer_images(response)[0])).size == (128, 128)
    assert parts[2].text == "Here you go" and parts[2].thought_signature
    # Signed: the first answer part and every image after it, never the thoughts.
    assert [bool(p.thought_signature) for p in parts] == [False, False, True, True]


@pytest.mark.asyncio
async def test_usage_on_the_wire_is_shaped_like_googles_and_scriptable(fake):
    fake.script(ok(usage=Tokens(prompt=7, text=120, thoughts=557)))
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{fake.url}/v1beta/models/{PRO}:generateContent",
            json={
                "contents": [{"role": "user", "parts": [{"text": "a koi pond"}]}],
                "generationConfig": {"imageConfig": {"imageSize": "4K"}},
            },
        ) as resp:
            body = await resp.json()
    assert body["usageMetadata"] == {
        "promptTokenCount": 7,
        "candidatesTokenCount": 2120,
        "totalTokenCount": 2684,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 7}],
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 2000}],
        "thoughtsTokenCount": 557,
    }
    assert fake.sent_usage == [(PRO, "4K", body["usageMetadata"])]


@pytest.mark.asyncio
async def test_legacy_answers_have_no_thinking_text_or_signature(fake):
    response = await client_for(fake).aio.models.generate_content(model=LEGACY, contents="a cat")
    [part] = response.candidates[0].content.parts
    assert part.inline_data and not part.thought_signature
    usage = response.usage_metadata
    assert usage.thoughts_token_count is None and usage.candidates_token_count == 1290


@pytest.mark.asyncio
async def test_input_image_is_recorded_and_decoded(fake):
    # Bytes with 0xfb/0xff make the URL-safe alphabet ('-', '_') show up on the wire.
    data = bytes([0xFB, 0xFF, 0xBF]) * 10 + b"png"
    contents = [types.Part.from_bytes(data=data, mime_type="image/png"), "make it blue"]
    response = await client_for(fake).aio.models.generate_content(model=FLASH, contents=contents)
    [req] = fake.requests
    assert req.input_images == [data] and req.prompt == "make it blue"
    assert "_" in req.body["contents"][0]["parts"][0]["inlineData"]["data"]
    assert response.usage_metadata.prompt_token_count == 3 + 560


@pytest.mark.asyncio
async def test_quota_error_carries_retry_info(fake):
    fake.script(error(429, retry_delay="7s", retry_after=7))
    with pytest.raises(errors.ClientError) as info:
        await client_for(fake).aio.models.generate_content(model=FLASH, contents="x")
    exc = info.value
    assert exc.code == 429 and exc.status == "RESOURCE_EXHAUSTED"
    details = exc.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in details
    assert any(d["@type"].endswith("QuotaFailure") for d in details)
    assert exc.response.headers["Retry-After"] == "7"


@pytest.mark.asyncio
async def test_free_tier_zero_429_names_free_tier_quotas_with_no_limit(fake):
    fake.script(free_tier_zero(retry_delay="25s"))
    with pytest.raises(errors.ClientError) as info:
        await client_for(fake).aio.models.generate_content(model=PRO, contents="x")
    exc = info.value
    assert exc.code == 429 and exc.status == "RESOURCE_EXHAUSTED"
    details = exc.details["error"]["details"]
    assert [d["@type"].rsplit(".", 1)[1] for d in details] == ["Help", "QuotaFailure", "RetryInfo"]
    violations = details[1]["violations"]
    assert violations and all(v["quotaId"].endswith("-FreeTier") for v in violations)
    # A limit of 0 is proto3's default, so the JSON leaves quotaValue out.
    assert all("quotaValue" not in v and v["quotaDimensions"]["model"] == PRO for v in violations)
    assert exc.message.count("limit: 0") == len(violations) and "Please retry in 25s." in exc.message


@pytest.mark.asyncio
@pytest.mark.parametrize("reason", ["MAX_TOKENS", "MALFORMED_RESPONSE", "IMAGE_OTHER", "OTHER", "NO_IMAGE"])
async def test_a_finish_without_an_image_reports_its_reason_and_usage(fake, reason):
    fake.script(finish(reason, usage=Tokens(prompt=9, text=40, thoughts=300)))
    response = await client_for(fake).aio.models.generate_content(model=PRO, contents="x")
    assert response.candidates[0].finish_reason == types.FinishReason[reason]
    assert not response.candidates[0].content
    meta = response.usage_metadata
    assert (meta.prompt_token_count, meta.candidates_token_count, meta.thoughts_token_count) == (9, 40, 300)


@pytest.mark.asyncio
async def test_server_error_then_default_ok(fake):
    fake.script(error(503))
    client = client_for(fake)
    with pytest.raises(errors.ServerError) as info:
        await client.aio.models.generate_content(model=FLASH, contents="x")
    assert info.value.code == 503 and info.value.status == "UNAVAILABLE"
    response = await client.aio.models.generate_content(model=FLASH, contents="x")
    assert answer_images(response)


@pytest.mark.asyncio
async def test_blocked_prompt_and_finish_reasons(fake):
    fake.script(blocked_prompt(), finish("IMAGE_SAFETY"), no_image())
    client = client_for(fake)
    blocked = await client.aio.models.generate_content(model=FLASH, contents="x")
    assert blocked.prompt_feedback.block_reason == types.BlockedReason.PROHIBITED_CONTENT
    assert not blocked.candidates and blocked.usage_metadata.prompt_token_count == 1
    unsafe = await client.aio.models.generate_content(model=FLASH, contents="x")
    assert unsafe.candidates[0].finish_reason == types.FinishReason.IMAGE_SAFETY
    assert unsafe.candidates[0].content is None
    refused = await client.aio.models.generate_content(model=PRO, contents="x")
    assert refused.text == "I can't draw that." and not answer_images(refused)


@pytest.mark.asyncio
async def test_wrong_api_key_is_rejected(fake):
    fake.api_key = "right"
    with pytest.raises(errors.ClientError) as info:
        await client_for(fake, key="wrong").aio.models.generate_content(model=FLASH, contents="x")
    assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
    assert info.value.message == "API key not valid. Please pass a valid API key."
    assert info.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    names = [m.name async for m in await client_for(fake, key="right").aio.models.list()]
    assert "models/gemini-3-pro-image" in names and len(names) == 4


@pytest.mark.asyncio
async def test_invalid_aspect_ratio_and_unknown_route(fake):
    config = types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="7:3"))
    with pytest.raises(errors.ClientError) as info:
        await client_for(fake).aio.models.generate_content(model=FLASH, contents="x", config=config)
    assert info.value.code == 400 and "aspect_ratio must be one of" in info.value.message
    async with aiohttp.ClientSession() as session:
        async with session.get(fake.url + "/v1beta/nope") as resp:
            assert resp.status == 404 and (await resp.json())["error"]["status"] == "NOT_FOUND"


@pytest.mark.asyncio
async def test_hang_trips_client_timeout_and_latency_applies(fake):
    fake.script(hang())
    client = client_for(fake, timeout=300)  # milliseconds
    with pytest.raises(Exception) as info:
        await client.aio.models.generate_content(model=FLASH, contents="x")
    assert "Timeout" in type(info.value).__name__
    fake.latency = 0.2
    started = time.monotonic()
    await client.aio.models.generate_content(model=FLASH, contents="x")
    assert time.monotonic() - started >= 0.2


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "model, ratio, size",
    [
        (FLASH, "9:21", "1K"),  # no Gemini model has 9:21
        ("gemini-3.1-flash-lite-image", "1:1", "2K"),  # Flash-Lite Image makes 1K only
    ],
)
async def test_what_google_refuses_the_fake_refuses(fake, model, ratio, size):
    config = types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio=ratio, image_size=size))
    with pytest.raises(errors.ClientError) as info:
        await client_for(fake).aio.models.generate_content(model=model, contents="x", config=config)
    assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
    lite_1k = types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="1:8", image_size="1K"))
    await client_for(fake).aio.models.generate_content(
        model="gemini-3.1-flash-lite-image", contents="x", config=lite_1k
    )
