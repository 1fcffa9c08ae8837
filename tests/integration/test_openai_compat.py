"""The real OpenAICompatProvider (real openai SDK) against the loopback fake gateway."""

from __future__ import annotations

import io
import time
from decimal import Decimal

import pytest
from PIL import Image

from bot.catalog import GatewayInfo
from bot.providers.errors import (
    AuthError,
    BadRequestError,
    BlockedError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    QuotaError,
)
from bot.providers.openai_compat import OpenAICompatProvider
from bot.types import GenerationResult, InputImage
from tests.fakes.openai_server import FakeGateway, drop, error, error_in_200, no_image, ok
from tests.support.images import image_size, png_bytes
from tests.support.jobs import spec
from tests.support.ports import refusing_port

KEY = "gw-key"


PRO = "google/gemini-3-pro-image-preview"


FLASH = "google/gemini-3.1-flash-image-preview"


MODELS = {"pro": PRO, "flash": FLASH}


PRICE = GatewayInfo(
    "openrouter", False, {"pro": {"1K": Decimal("0.134"), "2K": Decimal("0.134"), "4K": Decimal("0.24")}}
)


@pytest.fixture
async def fake():
    async with FakeGateway(api_key=KEY) as server:
        yield server


def make(fake, *, key=KEY, timeout=10.0, price=PRICE, models=MODELS, base_url=None):
    return OpenAICompatProvider.create(
        name="openrouter",
        base_url=base_url or fake.url,
        api_key=key,
        models=models,
        timeout_seconds=timeout,
        gateway=price,
    )


@pytest.fixture
async def provider(fake):
    prov = make(fake)
    yield prov
    await prov.close()


async def test_text_to_image_returns_the_image_with_model_usage_and_reported_cost(provider, fake):
    result = await provider.generate(spec("a red fox", aspect_ratio="16:9", size="2K"), [])
    assert isinstance(result, GenerationResult)
    assert provider.name == "openrouter"
    assert result.image.mime == "image/png"
    width, height = image_size(result.image.data)
    assert (width, height) == (344, 192)  # 1376x768 (16:9 at 1K) * 2 (2K) * 0.125 (the fake's scale)
    assert abs(width / height - 16 / 9) < 0.02
    assert result.model_version == PRO
    assert result.response_id and result.response_id.startswith("gen-")
    assert result.cost_usd == Decimal("0.0021") and isinstance(result.cost_usd, Decimal)
    assert result.usage is not None
    assert result.usage.image_tokens == 1290
    assert result.usage.output_tokens == 1290
    assert result.usage.prompt_tokens > 0
    assert result.usage.total_tokens == result.usage.prompt_tokens + 1290
    assert result.text is None


async def test_model_version_is_what_the_gateway_names(provider, fake):
    fake.script(ok(model="google/gemini-3-pro-image-preview-20251120"))
    result = await provider.generate(spec(), [])
    assert result.model_version == "google/gemini-3-pro-image-preview-20251120"


async def test_cost_falls_back_to_the_gateway_price_when_none_is_reported(fake):
    fake.script(ok(cost=None), ok(cost=None), ok(cost=0))
    priced, unpriced = make(fake), make(fake, price=None)
    try:
        assert (await priced.generate(spec(size="4K"), [])).cost_usd == Decimal("0.24")
        assert (await unpriced.generate(spec(), [])).cost_usd is None
        # A reported zero (a free model, a promotion) is a cost, not a missing one.
        assert (await priced.generate(spec(), [])).cost_usd == Decimal("0")
    finally:
        await priced.close()
        await unpriced.close()


async def test_request_carries_model_modalities_image_config_and_prompt(provider, fake):
    await provider.generate(spec("a koi pond", model_alias="flash", aspect_ratio="3:2", size="2K"), [])
    await provider.generate(spec("a heron", aspect_ratio="1:1", send_image_size=False), [])
    first, second = fake.requests
    assert first.model == FLASH and second.model == PRO
    assert first.modalities == ["image", "text"]
    assert first.image_config == {"aspect_ratio": "3:2", "image_size": "2K"}
    assert second.image_config == {"aspect_ratio": "1:1"}  # no image_size for models that take none
    assert first.prompt == "a koi pond"
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.messages[0]["role"] == "user"
    assert first.headers["x-stainless-retry-count"] == "0"


async def test_input_images_arrive_byte_identical_before_the_prompt(provider, fake):
    png = png_bytes(8, 8, "red")
    buf = io.BytesIO()
    Image.new("RGB", (6, 4), "blue").save(buf, "JPEG")
    jpeg = buf.getvalue()
    await provider.generate(spec("merge these"), [InputImage(png, "image/png"), InputImage(jpeg, "image/jpeg")])
    [req] = fake.requests
    assert req.input_images == [png, jpeg]
    assert req.input_mimes == ["image/png", "image/jpeg"]
    kinds = [part["type"] for part in req.messages[0]["content"]]
    assert kinds == ["image_url", "image_url", "text"]


@pytest.mark.parametrize("where", ["data_url", "markdown"])
async def test_images_in_message_content_are_found(provider, fake, where):
    fake.script(ok(in_content=where, text="Here you go."))
    result = await provider.generate(spec(aspect_ratio="9:16"), [])
    width, height = image_size(result.image.data)
    assert abs(width / height - 9 / 16) < 0.02
    assert result.text == "Here you go."  # the base64 is cut out of the text
    assert "base64" not in (result.text or "")


async def test_an_http_image_url_in_content_is_not_fetched(provider, fake):
    fake.script(no_image(f"Here is your image: ![fox]({fake.file_url('fox.png')})"))
    with pytest.raises(BlockedError) as info:
        await provider.generate(spec(), [])
    assert info.value.reason == "NO_IMAGE"
    assert fake.fetched == []


async def test_no_image_is_blocked_with_the_models_text_and_usage(provider, fake):
    fake.script(no_image("I can't draw that,\nsorry."))
    with pytest.raises(BlockedError) as info:
        await provider.generate(spec(), [])
    exc = info.value
    assert exc.reason == "NO_IMAGE"
    assert "I can't draw that, sorry." in exc.detail
    assert "\n" not in exc.detail
    assert exc.usage is not None and exc.usage.image_tokens == 0 and exc.usage.prompt_tokens > 0
    assert exc.request_id == fake.requests[-1].request_id


@pytest.mark.parametrize(
    "finish, native, reason",
    [
        ("content_filter", "IMAGE_SAFETY", "CONTENT_FILTER"),
        ("stop", "PROHIBITED_CONTENT", "PROHIBITED_CONTENT"),
        ("length", "MAX_TOKENS", "NO_IMAGE"),
    ],
)
async def test_filtered_finish_reasons_name_the_block(provider, fake, finish, native, reason):
    fake.script(no_image(None, finish_reason=finish, native_finish_reason=native))
    with pytest.raises(BlockedError) as info:
        await provider.generate(spec(), [])
    assert info.value.reason == reason
    assert finish in info.value.detail


async def test_an_alias_the_route_does_not_serve_is_a_bad_request(provider, fake):
    with pytest.raises(BadRequestError, match="does not serve model 'legacy'"):
        await provider.generate(spec(model_alias="legacy"), [])
    assert fake.requests == []


@pytest.mark.parametrize(
    "reply, cls, status",
    [
        (error(400, message="Invalid aspect_ratio"), BadRequestError, 400),
        (error(402), PermissionDeniedError, 402),
        (error(403, message="Key lacks access to this model"), PermissionDeniedError, 403),
        (error(404), BadRequestError, 404),
        (error(408), OverloadedError, 408),
        (error(429), QuotaError, 429),
        (error(500), OverloadedError, 500),
        (error(502), OverloadedError, 502),
        (error(503), OverloadedError, 503),
        (error_in_200(502), OverloadedError, 502),
        (error_in_200(429), QuotaError, 429),
        (error_in_200(400, message="Provider rejected the request"), BadRequestError, 400),
    ],
)
async def test_errors_map_to_the_taxonomy_with_status_and_request_id(provider, fake, reply, cls, status):
    fake.script(reply)
    with pytest.raises(ProviderError) as info:
        await provider.generate(spec(), [])
    exc = info.value
    assert type(exc) is cls
    assert exc.status_code == status
    assert exc.request_id == fake.requests[-1].request_id
    assert "\n" not in exc.detail and len(exc.detail) <= 500


async def test_402_says_credits_are_out(provider, fake):
    fake.script(error(402))
    with pytest.raises(PermissionDeniedError, match="insufficient credits"):
        await provider.generate(spec(), [])


async def test_429_carries_retry_after(provider, fake):
    fake.script(error(429, retry_after=7), error(429))
    with pytest.raises(QuotaError) as info:
        await provider.generate(spec(), [])
    assert info.value.retry_after == 7.0
    with pytest.raises(QuotaError) as info:
        await provider.generate(spec(), [])
    assert info.value.retry_after is None


async def test_503_carries_retry_after_too(provider, fake):
    fake.script(error(503, retry_after=2.5))
    with pytest.raises(OverloadedError) as info:
        await provider.generate(spec(), [])
    assert info.value.retry_after == 2.5


async def test_a_dropped_connection_reaches_the_gateway_once(provider, fake):
    fake.script(drop(), ok())
    with pytest.raises(OverloadedError) as info:
        await provider.generate(spec(), [])
    assert len(fake.requests) == 1 and info.value.retryable


@pytest.mark.parametrize("code", [429, 500, 502, 503])
async def test_a_retryable_status_reaches_the_gateway_once(provider, fake, code):
    fake.script(error(code), ok())
    with pytest.raises(ProviderError) as info:
        await provider.generate(spec(), [])
    assert len(fake.requests) == 1 and info.value.retryable


async def test_a_200_error_body_names_the_upstream(provider, fake):
    fake.script(error_in_200(502, metadata={"provider_name": "Google", "raw": "UNAVAILABLE: overloaded"}))
    with pytest.raises(OverloadedError) as info:
        await provider.generate(spec(), [])
    assert "Google" in info.value.detail and "UNAVAILABLE: overloaded" in info.value.detail


async def test_moderation_403_is_a_block_not_a_permission_problem(provider, fake):
    fake.script(
        error(
            403,
            metadata={"reasons": ["violence"], "flagged_input": "a gory...", "provider_name": None, "model_slug": PRO},
        )
    )
    with pytest.raises(BlockedError) as info:
        await provider.generate(spec(), [])
    assert info.value.reason == "MODERATION" and info.value.status_code == 403


async def test_a_wrong_key_is_an_auth_error_that_never_shows_the_key(fake):
    secret = "sk-or-v1-this-is-secret-0123456789"
    prov = make(fake, key=secret)
    try:
        with pytest.raises(AuthError) as info:
            await prov.generate(spec(), [])
        with pytest.raises(AuthError) as listed:
            await prov.list_models()
    finally:
        await prov.close()
    for exc in (info.value, listed.value):
        assert exc.status_code == 401
        assert secret not in exc.detail and secret not in str(exc)
        assert "[redacted]" in exc.detail  # the fake echoes the key it rejected


async def test_timeout_is_overloaded(fake):
    fake.latency = 2.0
    prov = make(fake, timeout=0.2)
    started = time.monotonic()
    try:
        with pytest.raises(OverloadedError, match="timed out"):
            await prov.generate(spec(), [])
    finally:
        await prov.close()
    assert time.monotonic() - started < 1.5  # no SDK retries


async def test_unreachable_gateway_is_overloaded(fake):
    with refusing_port() as port:
        prov = make(fake, base_url=f"http://127.0.0.1:{port}/v1")
        try:
            with pytest.raises(OverloadedError, match="cannot reach openrouter"):
                await prov.generate(spec(), [])
        finally:
            await prov.close()


async def test_list_models(provider):
    assert PRO in await provider.list_models()


async def test_openai_environment_does_not_leak_to_the_gateway(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_ORG_ID", "org-openai")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-openai")
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "Authorization: Bearer sk-openai-key")
    prov = make(fake)
    try:
        await prov.generate(spec(), [])
    finally:
        await prov.close()
    headers = fake.requests[-1].headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert "openai-organization" not in headers and "openai-project" not in headers


async def test_a_blocked_answer_keeps_the_cost_the_gateway_reported():
    from tests.fakes.openai_server import FakeGateway, no_image

    async with FakeGateway() as gateway:
        gateway.script(no_image("I can't draw that.", finish_reason="content_filter"))
        provider = OpenAICompatProvider.create(
            name="openrouter",
            base_url=gateway.url,
            api_key="gw-key",
            models={"pro": "google/gemini-3-pro-image-preview"},
            timeout_seconds=10,
        )
        with pytest.raises(BlockedError) as caught:
            await provider.generate(spec(), [])
        await provider.close()
    assert caught.value.reason == "CONTENT_FILTER"
    assert caught.value.cost_usd is not None and caught.value.cost_usd >= 0


async def test_the_smallest_size_goes_out_as_openrouters_half_k(fake):
    from bot.catalog import load_catalog

    provider = make(fake, price=load_catalog().gateways["openrouter"])
    try:
        await provider.generate(spec("a wren", model_alias="flash", model_id="gemini-3.1-flash-image", size="512"), [])
    finally:
        await provider.close()
    [sent] = fake.requests
    assert sent.model == FLASH and sent.image_config["image_size"] == "0.5K"


async def test_the_fake_refuses_512_as_openrouter_does(fake):
    import aiohttp

    body = {
        "model": FLASH,
        "modalities": ["image", "text"],
        "image_config": {"image_size": "512"},
        "messages": [{"role": "user", "content": "a wren"}],
    }
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{fake.url}/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
        ) as resp:
            status, answer = resp.status, await resp.json()
    assert status == 400
    assert answer["error"]["code"] == 400 and "image_size" in answer["error"]["message"]


async def test_a_flash_request_through_the_gateway_is_held_and_charged_at_flashs_gateway_price(fake, store, clock):
    from bot.bootstrap import build_provider
    from bot.catalog import load_catalog
    from bot.service import ImagineService
    from bot.settings import Settings
    from bot.types import Accepted, ImagineRequest
    from bot.worker import Worker

    catalog = load_catalog()
    routed = build_provider(Settings(_env_file=None, openai_compat_base_url=fake.url, openai_compat_api_key=KEY))
    service = ImagineService(store, catalog, gateway_routes=("openrouter",), clock=clock)
    accepted = await service.submit(
        ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt="a wren", model="flash", size="1K")
    )
    assert isinstance(accepted, Accepted), accepted
    assert accepted.estimate_usd < Decimal("0.134")  # not held at Pro's gateway price
    fake.script(ok(cost=None))  # the gateway reports no cost: its price table settles it
    try:
        job = await store.lease("w/0", 60)
        await Worker(store, routed, catalog, clock=clock).process(job, "w/0")
    finally:
        await routed.close()
    assert fake.requests[0].model == FLASH
    settled = [r["cost_micros"] for r in await store.ledger() if r["entry"] == "settlement"]
    assert settled == [67000]  # Flash's 1K price, not Pro's $0.134


async def test_a_failed_flash_call_on_a_gateway_that_bills_failures_is_charged_flashs_price(
    fake, store, clock, tmp_path
):
    from bot.catalog import load_catalog
    from bot.providers.router import Route, RoutedProvider
    from bot.service import ImagineService
    from bot.types import ImagineRequest
    from bot.worker import Worker

    config = tmp_path / "gw.toml"
    config.write_text("[gateways.openrouter]\nbills_failed_calls = true\n")
    catalog = load_catalog(config)
    gateway = catalog.gateways["openrouter"]
    provider = make(fake, price=gateway, models=gateway.models)
    routed = RoutedProvider([Route("openrouter", provider, serves=frozenset(gateway.models))], catalog)
    service = ImagineService(store, catalog, gateway_routes=("openrouter",), clock=clock)
    await service.submit(
        ImagineRequest(team="T1", channel="C1", user="U1", platform="test", prompt="a wren", model="flash", size="2K")
    )
    fake.script(error(400, message="Provider returned error"))
    try:
        await Worker(store, routed, catalog, clock=clock).process(await store.lease("w/0", 60), "w/0")
    finally:
        await routed.close()
    settled = [r["cost_micros"] for r in await store.ledger() if r["entry"] == "settlement"]
    assert settled == [101000]  # Flash's 2K gateway price, not Pro's $0.134
