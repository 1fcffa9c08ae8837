"""The real GeminiProvider (real google-genai SDK) against the loopback fake Gemini API."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.providers.errors import (
    AuthError,
    BadRequestError,
    BillingNotEnabled,
    BlockedError,
    CredentialsError,
    NoImageError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    QuotaError,
)
from bot.providers.gemini import GeminiProvider
from bot.types import GenerationResult, InputImage
from tests.fakes.gemini_server import Tokens, blocked_prompt, drop, error, finish, free_tier_zero, hang, no_image, ok
from tests.support.images import image_size, png_bytes
from tests.support.jobs import spec

PRO = "gemini-3-pro-image"


LEGACY = "gemini-2.5-flash-image"


KEY = "test-key-123"


@pytest.fixture
async def provider(fake):
    prov = GeminiProvider.create(api_key=KEY, base_url=fake.url, vertexai=False, timeout_seconds=30)
    yield prov
    await prov.close()


async def test_text_to_image_returns_final_non_thought_image(provider, fake):
    result = await provider.generate(spec("a red fox", aspect_ratio="16:9", size="2K"), [])
    assert isinstance(result, GenerationResult)
    assert result.image.mime == "image/png"
    width, height = image_size(result.image.data)
    # Pro sends an 8x8 "thought" draft first; it must not be what we return.
    assert (width, height) != (8, 8)
    assert (width, height) == (344, 192)  # 1376x768 (16:9 at 1K) * 2 (2K) * 0.125
    assert abs(width / height - 16 / 9) < 0.02


async def test_text_to_image_carries_model_version_response_id_and_usage(provider, fake):
    fake.script(ok(model_version="gemini-3-pro-image-001", usage=Tokens(text=30, thoughts=200)))
    result = await provider.generate(spec("a red fox", size="2K"), [])
    assert result.model_version == "gemini-3-pro-image-001"
    assert result.response_id and isinstance(result.response_id, str)
    usage = result.usage
    assert usage is not None
    assert usage.prompt_tokens == 2  # len("a red fox") // 4
    assert (usage.image_tokens, usage.text_tokens, usage.thoughts_tokens) == (1120, 30, 200)
    assert usage.output_tokens == 1150
    assert usage.total_tokens == 1352


async def test_model_version_falls_back_to_the_model_id(provider, fake):
    result = await provider.generate(spec("a red fox", size="1K"), [])
    assert result.model_version == PRO  # the fake echoes the requested model


@pytest.mark.parametrize("size, tokens", [("1K", 1120), ("2K", 1120), ("4K", 2000)])
async def test_pro_image_tokens_per_size(provider, fake, size, tokens):
    result = await provider.generate(spec("a cat", size=size), [])
    assert result.usage.image_tokens == tokens
    assert result.usage.output_tokens == tokens + result.usage.text_tokens


async def test_answer_text_is_kept_but_thought_text_is_not(provider, fake):
    fake.script(ok(text="Here is your fox"))
    result = await provider.generate(spec("a red fox"), [])
    assert result.text == "Here is your fox"  # not the "**Composing the image**" thought


async def test_request_on_the_wire(provider, fake):
    await provider.generate(spec("a koi pond", aspect_ratio="4:3", size="2K"), [])
    [req] = fake.requests
    assert req.path == "/v1beta/models/gemini-3-pro-image:generateContent"
    assert req.model == PRO
    assert req.headers["x-goog-api-key"] == KEY
    assert req.aspect_ratio == "4:3"
    assert req.image_size == "2K"
    generation_config = req.body["generationConfig"]
    assert generation_config["imageConfig"] == {"aspectRatio": "4:3", "imageSize": "2K"}
    assert "IMAGE" in generation_config["responseModalities"]
    assert req.prompt == "a koi pond"
    assert req.input_images == []


async def test_legacy_model_sends_no_image_size(provider, fake):
    legacy = spec("a koi pond", model_alias="legacy", model_id=LEGACY, size="1K", send_image_size=False)
    result = await provider.generate(legacy, [])
    [req] = fake.requests
    assert req.path == f"/v1beta/models/{LEGACY}:generateContent"
    assert req.image_size is None
    assert "imageSize" not in req.body["generationConfig"]["imageConfig"]
    assert req.aspect_ratio == "1:1"
    assert result.usage.image_tokens == 1290
    assert image_size(result.image.data) == (128, 128)


async def test_edit_sends_input_images_byte_identical(provider, fake):
    first, second = png_bytes(16, 16, "red"), png_bytes(8, 12, "blue")
    inputs = [InputImage(first, "image/png"), InputImage(second, "image/png")]
    result = await provider.generate(spec("make it look like winter"), inputs)
    req = fake.requests[-1]
    assert req.input_images == [first, second]
    assert req.prompt == "make it look like winter"
    parts = req.body["contents"][0]["parts"]
    # Proto JSON accepts either spelling; this SDK version sends snake_case inside inlineData.
    mimes = [p["inlineData"].get("mimeType", p["inlineData"].get("mime_type")) for p in parts if "inlineData" in p]
    assert mimes == ["image/png"] * 2
    assert parts[-1]["text"] == "make it look like winter"  # text after the images
    # The fake bills 560 input tokens per image on top of the prompt text.
    assert result.usage.prompt_tokens == len("make it look like winter") // 4 + 2 * 560


ERROR_CASES = [
    pytest.param(error(401), AuthError, 401, id="401-auth"),
    pytest.param(error(403), PermissionDeniedError, 403, id="403-permission"),
    pytest.param(error(400), BadRequestError, 400, id="400-bad-request"),
    pytest.param(error(503), OverloadedError, 503, id="503-overloaded"),
    pytest.param(error(500), OverloadedError, 500, id="500-overloaded"),
    pytest.param(error(504), OverloadedError, 504, id="504-overloaded"),
]


@pytest.mark.parametrize("reply, cls, code", ERROR_CASES)
async def test_http_errors_map_to_taxonomy(provider, fake, reply, cls, code):
    fake.script(reply)
    with pytest.raises(ProviderError) as info:
        await provider.generate(spec(), [])
    exc = info.value
    assert type(exc) is cls
    assert exc.status_code == code
    assert exc.retryable is (cls is OverloadedError)
    assert str(code) in str(exc) and exc.detail


async def test_wrong_api_key_is_auth_error(fake):
    fake.api_key = "the-right-key"
    prov = GeminiProvider.create(api_key="a-wrong-key", base_url=fake.url, vertexai=False, timeout_seconds=30)
    try:
        with pytest.raises(AuthError) as info:
            await prov.generate(spec(), [])
    finally:
        await prov.close()
    assert info.value.status_code == 400  # Google says 400 API_KEY_INVALID, not 401
    assert not info.value.retryable
    assert "API key not valid" in info.value.detail


async def test_quota_error_with_retry_info(provider, fake):
    fake.script(error(429, retry_delay="7s"))
    with pytest.raises(QuotaError) as info:
        await provider.generate(spec(), [])
    exc = info.value
    assert exc.retry_after == 7.0
    assert exc.retryable
    assert exc.status_code == 429


async def test_quota_error_with_only_retry_after_header(provider, fake):
    fake.script(error(429, retry_after=3))
    with pytest.raises(QuotaError) as info:
        await provider.generate(spec(), [])
    assert info.value.retry_after == 3.0
    assert info.value.retryable and info.value.status_code == 429


async def test_overloaded_without_hint_has_no_retry_after(provider, fake):
    fake.script(error(503))
    with pytest.raises(OverloadedError) as info:
        await provider.generate(spec(), [])
    assert info.value.retry_after is None


async def test_a_free_tier_zero_429_is_billing_not_enabled_and_never_retried(provider, fake):
    fake.script(free_tier_zero(retry_delay="25s"))
    with pytest.raises(ProviderError) as info:
        await provider.generate(spec(), [])
    exc = info.value
    assert type(exc) is BillingNotEnabled and exc.kind == "billing"
    assert not exc.retryable and exc.status_code == 429
    assert "enable billing on the google cloud project" in exc.operator_fix.lower()
    assert "admin must enable billing" in exc.user_message
    assert "limit: 0" in exc.detail and "limit" not in exc.user_message


async def test_a_dropped_connection_is_one_request_and_a_retryable_error(provider, fake):
    # google-genai re-sends after ServerDisconnected unless retry_options are set: Google
    # may render and bill both calls while the ledger sees one.
    fake.script(drop(), ok())
    with pytest.raises(OverloadedError) as info:
        await provider.generate(spec(), [])
    assert len(fake.requests) == 1 and info.value.retryable
    assert "ServerDisconnected" in info.value.detail


@pytest.mark.parametrize("code", [429, 500, 503, 504])
async def test_a_retryable_status_is_one_request(provider, fake, code):
    fake.script(error(code), ok())
    with pytest.raises(ProviderError) as info:
        await provider.generate(spec(), [])
    assert len(fake.requests) == 1 and info.value.retryable


async def test_errors_mapped_from_the_wire_keep_user_message_clean(provider, fake):
    fake.script(error(429, retry_delay="7s"))
    with pytest.raises(QuotaError) as info:
        await provider.generate(spec(), [])
    # The raw detail is for operators; the user sentence never contains it.
    assert "RESOURCE_EXHAUSTED" in info.value.detail
    assert "RESOURCE_EXHAUSTED" not in info.value.user_message
    assert "{" not in info.value.user_message


async def test_blocked_prompt(provider, fake):
    fake.script(blocked_prompt("PROHIBITED_CONTENT"))
    with pytest.raises(BlockedError) as info:
        await provider.generate(spec("something bad"), [])
    exc = info.value
    assert exc.reason == "PROHIBITED_CONTENT"
    assert exc.usage is not None and exc.usage.prompt_tokens == len("something bad") // 4
    assert exc.usage.image_tokens == 0
    assert not exc.retryable


async def test_image_safety_finish_reason(provider, fake):
    fake.script(finish("IMAGE_SAFETY"))
    with pytest.raises(BlockedError) as info:
        await provider.generate(spec(), [])
    assert info.value.reason == "IMAGE_SAFETY"
    assert "IMAGE_SAFETY" in info.value.detail
    assert not info.value.retryable


async def test_no_image_with_text(provider, fake):
    # STOP with only text: the model chatted instead of drawing; one more try usually draws.
    fake.script(no_image("Here is a koi pond."))
    with pytest.raises(NoImageError) as info:
        await provider.generate(spec(), [])
    exc = info.value
    assert exc.reason == "NO_IMAGE"
    assert "Here is a koi pond." in exc.detail
    assert exc.retryable and exc.attempts_cap == 2
    assert exc.usage is not None


@pytest.mark.parametrize("reason", ["MAX_TOKENS", "MALFORMED_RESPONSE", "IMAGE_OTHER", "OTHER", "NO_IMAGE"])
async def test_a_non_policy_finish_is_a_retryable_no_image_answer_with_its_usage(provider, fake, reason):
    fake.script(finish(reason, usage=Tokens(prompt=9, text=40, thoughts=300)))
    with pytest.raises(ProviderError) as info:
        await provider.generate(spec(), [])
    exc = info.value
    assert type(exc) is NoImageError, exc
    assert exc.reason == reason and reason in exc.detail
    assert exc.retryable and exc.attempts_cap == 2
    assert (exc.usage.prompt_tokens, exc.usage.text_tokens, exc.usage.thoughts_tokens) == (9, 40, 300)
    assert "content policy" not in exc.user_message


@pytest.mark.parametrize(
    "reason",
    [
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "RECITATION",
        "IMAGE_RECITATION",
        "BLOCKLIST",
        "SPII",
    ],
)
async def test_a_policy_finish_stays_blocked(provider, fake, reason):
    fake.script(finish(reason))
    with pytest.raises(BlockedError) as info:
        await provider.generate(spec(), [])
    assert info.value.reason == reason and not info.value.retryable


async def vertex_failure(fake, credentials=None, *, call: str = "generate") -> ProviderError:
    """The error a Vertex AI call raises, with these credentials (None: google-auth's defaults)."""
    from google import genai
    from google.genai import types

    client = genai.Client(
        vertexai=True,
        project="p",
        location="global",
        credentials=credentials,
        http_options=types.HttpOptions(base_url=fake.url),
    )
    prov = GeminiProvider(client, timeout_seconds=10)
    try:
        with pytest.raises(ProviderError) as info:
            await (prov.generate(spec(), []) if call == "generate" else prov.list_models())
    finally:
        await prov.close()
    return info.value


def user_credentials(token_uri: str):
    from google.oauth2.credentials import Credentials

    return Credentials(
        token=None, refresh_token="1//refresh", client_id="id", client_secret="secret", token_uri=token_uri
    )


async def test_missing_google_credentials_are_a_credentials_error(fake, monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    exc = await vertex_failure(fake)
    assert type(exc) is CredentialsError and not exc.retryable
    assert "missing.json" in exc.detail
    assert fake.requests == []


async def test_a_refused_token_refresh_is_a_credentials_error(fake):
    fake.token_error = "invalid_grant"
    exc = await vertex_failure(fake, user_credentials(f"{fake.url}/token"))
    assert type(exc) is CredentialsError and not exc.retryable
    assert "invalid_grant" in exc.detail
    assert fake.token_requests == 1 and fake.requests == []


async def test_doctor_listing_models_with_refused_credentials_gets_the_fix(fake):
    fake.token_error = "invalid_grant"
    exc = await vertex_failure(fake, user_credentials(f"{fake.url}/token"), call="list_models")
    assert type(exc) is CredentialsError and "GOOGLE_APPLICATION_CREDENTIALS" in exc.operator_fix


async def test_an_unreachable_token_service_is_transient(fake, unused_tcp_port):
    exc = await vertex_failure(fake, user_credentials(f"http://127.0.0.1:{unused_tcp_port}/token"))
    assert type(exc) is OverloadedError and exc.retryable
    assert "TransportError" in exc.detail


async def test_hung_request_becomes_overloaded_error(fake):
    fake.script(hang())
    prov = GeminiProvider.create(api_key=KEY, base_url=fake.url, vertexai=False, timeout_seconds=1)
    started = time.monotonic()
    try:
        with pytest.raises(OverloadedError) as info:
            # Outer guard so a regression fails the test instead of hanging the suite.
            await asyncio.wait_for(prov.generate(spec(), []), timeout=9)
    finally:
        await prov.close()
    elapsed = time.monotonic() - started
    assert elapsed < 7.5  # the SDK's 1 s timeout, or at worst our own 1 + 5 s guard
    assert info.value.retryable
    assert len(fake.requests) == 1


async def test_whole_call_guard_catches_a_hang_the_sdk_does_not(fake):
    """With no SDK timeout at all, the provider's own wait_for(timeout + 5) still ends the call."""
    from google import genai
    from google.genai import types

    fake.script(hang())
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=fake.url, api_version="v1beta"))
    prov = GeminiProvider(client, timeout_seconds=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(OverloadedError):
            await asyncio.wait_for(prov.generate(spec(), []), timeout=9)
    finally:
        await prov.close()
    assert 5.0 <= time.monotonic() - started < 7.5
