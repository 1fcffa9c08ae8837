"""Gemini on Vertex AI: the real GeminiProvider (real google-genai SDK) against the loopback fake Vertex."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time

import aiohttp
import pytest

from bot import bootstrap
from bot.doctor import doctor
from bot.providers.errors import BadRequestError, ProviderError, user_message_for
from bot.providers.gemini import GeminiProvider
from bot.settings import Settings
from bot.types import InputImage
from tests.fakes.gemini_server import ok
from tests.fakes.vertex_server import INLINE_IMAGE_LIMIT, PROJECT, TOKEN, FakeVertex, write_credentials_file
from tests.support.images import png_bytes
from tests.support.jobs import spec

PRO_PATH = f"/v1beta1/projects/{PROJECT}/locations/global/publishers/google/models/gemini-3-pro-image:generateContent"


@pytest.fixture(autouse=True)
def no_exported_config(monkeypatch):
    """A developer's exported Gemini or Google settings must not leak into these tests."""
    for name in list(os.environ):
        if name.upper().startswith(("GEMINI_", "GOOGLE_", "IMAGINE_", "OPENAI_COMPAT_")):
            monkeypatch.delenv(name)


@pytest.fixture
async def fake():
    async with FakeVertex(image_scale=0.125) as server:
        yield server


@pytest.fixture
def credentials(tmp_path):
    return write_credentials_file(tmp_path / "adc.json")


def vertex_settings(tmp_path, fake, credentials, **lines: str) -> Settings:
    """Settings read from a `.env` file only, as an operator writes it."""
    values = {
        "GOOGLE_GENAI_USE_VERTEXAI": "true",
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "GEMINI_BASE_URL": fake.url,
        "GOOGLE_APPLICATION_CREDENTIALS": str(credentials),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'imagine.db'}",
        **lines,
    }
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items() if v is not None))
    return Settings(_env_file=env_file)


def vertex_provider(fake, credentials, *, location: str = "global") -> GeminiProvider:
    return GeminiProvider.create(
        api_key=None,
        base_url=fake.url,
        vertexai=True,
        timeout_seconds=30,
        project=PROJECT,
        location=location,
        credentials_file=credentials,
    )


# --- settings reach the SDK -----------------------------------------------------------------------


async def test_project_and_location_from_a_dotenv_file_reach_the_request_path(tmp_path, fake, credentials):
    settings = vertex_settings(tmp_path, fake, credentials)
    router = bootstrap.build_provider(settings)
    try:
        result = await router.routes["gemini"].provider.generate(spec("a red fox"), [])
    finally:
        await router.close()
    assert result.image.data
    [req] = fake.requests
    assert req.path == PRO_PATH  # the location was not set: it defaults to global
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert "x-goog-api-key" not in req.headers


async def test_an_exported_google_api_key_is_not_sent_to_vertex(tmp_path, fake, credentials, monkeypatch):
    # The SDK reads GOOGLE_API_KEY itself; sent with Vertex on, it would mean express mode.
    monkeypatch.setenv("GOOGLE_API_KEY", "an-exported-key")
    router = bootstrap.build_provider(vertex_settings(tmp_path, fake, credentials))
    try:
        await router.routes["gemini"].provider.generate(spec("a red fox"), [])
    finally:
        await router.close()
    [req] = fake.requests
    assert "x-goog-api-key" not in req.headers and req.path == PRO_PATH


def test_the_location_defaults_to_global_and_a_blank_one_is_global_too(tmp_path):
    assert Settings(_env_file=None).google_cloud_location == "global"
    (tmp_path / ".env").write_text("GOOGLE_CLOUD_LOCATION=\n")
    assert Settings(_env_file=tmp_path / ".env").google_cloud_location == "global"


def test_an_api_key_with_vertex_on_is_a_config_error_naming_both(tmp_path, fake, credentials):
    settings = vertex_settings(tmp_path, fake, credentials, GEMINI_API_KEY="a-leftover-key")
    with pytest.raises(bootstrap.ConfigError) as raised:
        bootstrap.build_provider(settings)
    message = str(raised.value)
    assert "GEMINI_API_KEY" in message and "GOOGLE_GENAI_USE_VERTEXAI" in message
    assert "a-leftover-key" not in message


def test_vertex_without_a_project_is_a_config_error(tmp_path, fake, credentials):
    settings = vertex_settings(tmp_path, fake, credentials, GOOGLE_CLOUD_PROJECT=None)
    with pytest.raises(bootstrap.ConfigError, match="GOOGLE_CLOUD_PROJECT"):
        bootstrap.build_provider(settings)


def test_an_unreadable_credentials_file_is_a_config_error(tmp_path, fake):
    bad = tmp_path / "adc.json"
    bad.write_text("{not json")
    settings = vertex_settings(tmp_path, fake, bad)
    with pytest.raises(bootstrap.ConfigError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        bootstrap.build_provider(settings)


# --- calls ------------------------------------------------------------------------------------------


async def test_an_edit_through_vertex_sends_the_image_and_bills_the_usage(fake, credentials):
    provider = vertex_provider(fake, credentials)
    try:
        result = await provider.generate(spec("make it blue"), [InputImage(png_bytes(), "image/png")])
    finally:
        await provider.close()
    [req] = fake.requests
    assert req.input_images == [png_bytes()]
    assert result.usage is not None and result.usage.image_tokens == 1120


async def test_an_inline_image_over_7_mb_is_refused_before_the_call(fake, credentials):
    provider = vertex_provider(fake, credentials)
    big = InputImage(b"\x89PNG" + bytes(INLINE_IMAGE_LIMIT), "image/png")
    try:
        with pytest.raises(BadRequestError) as raised:
            await provider.generate(spec("make it blue"), [big])
    finally:
        await provider.close()
    assert fake.calls == []  # nothing was sent, so nothing can be billed
    assert not raised.value.retryable
    message = user_message_for(raised.value.kind)
    assert "7 MB" in message and "image" in message


# --- the fake refuses what Vertex refuses ----------------------------------------------------------


async def test_a_3x_image_model_outside_global_is_a_404_not_found(fake, credentials):
    fake.script(ok())
    provider = vertex_provider(fake, credentials, location="us-central1")
    try:
        with pytest.raises(ProviderError) as raised:
            await provider.generate(spec("a red fox"), [])
    finally:
        await provider.close()
    assert raised.value.status_code == 404
    assert "NOT_FOUND" in raised.value.detail and "locations/us-central1" in raised.value.detail
    assert fake.requests == []


async def test_the_fake_refuses_an_api_key_on_a_project_path(fake):
    async with aiohttp.ClientSession() as session:
        async with session.post(
            fake.url + PRO_PATH, json={"contents": [{"parts": [{"text": "x"}]}]}, headers={"x-goog-api-key": "some-key"}
        ) as resp:
            body = await resp.json()
    assert resp.status == 401 and body["error"]["status"] == "UNAUTHENTICATED"
    assert body["error"]["message"].startswith("API keys are not supported by this API")


async def test_the_fake_refuses_an_inline_image_over_7_mb(fake):
    import base64

    big = base64.b64encode(bytes(INLINE_IMAGE_LIMIT + 1)).decode()
    body = {
        "contents": [
            {"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": big}}, {"text": "edit"}]}
        ]
    }
    async with aiohttp.ClientSession() as session:
        async with session.post(fake.url + PRO_PATH, json=body, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            answer = await resp.json()
    assert resp.status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    assert str(INLINE_IMAGE_LIMIT) in answer["error"]["message"]


# --- doctor -----------------------------------------------------------------------------------------


async def run_doctor(settings: Settings) -> tuple[bool, str]:
    lines: list[str] = []
    runtime = await bootstrap.build(settings, notifiers=[], provider=bootstrap.build_provider(settings))
    try:
        healthy = await doctor(runtime, settings, out=lines.append)
    finally:
        await runtime.close()
    return healthy, "\n".join(lines)


async def test_doctor_on_vertex_lists_the_models_as_available_and_checks_the_location(tmp_path, fake, credentials):
    healthy, report = await run_doctor(vertex_settings(tmp_path, fake, credentials))
    assert healthy, report
    assert f"Vertex AI project {PROJECT}, location global" in report
    assert "pro     -> gemini-3-pro-image (available)" in report
    assert "flash   -> gemini-3.1-flash-image (available)" in report
    assert "not listed" not in report
    assert ("GET", "/v1beta1/publishers/google/models") in [(m, p) for m, p, _ in fake.calls]


async def test_doctor_on_vertex_says_a_regional_location_cannot_serve_3x_models(tmp_path, fake, credentials):
    healthy, report = await run_doctor(
        vertex_settings(tmp_path, fake, credentials, GOOGLE_CLOUD_LOCATION="europe-west4")
    )
    assert not healthy
    assert "europe-west4" in report and "GOOGLE_CLOUD_LOCATION=global" in report


async def test_doctor_warns_of_a_model_retired_or_retiring_within_30_days(tmp_path, fake, credentials):
    settings = vertex_settings(tmp_path, fake, credentials)
    runtime = await bootstrap.build(settings, notifiers=[], provider=bootstrap.build_provider(settings))
    try:
        lines: list[str] = []
        shutdown = runtime.catalog.models["legacy"].shutdown
        await doctor(runtime, settings, out=lines.append, clock=lambda: _noon(shutdown) - 20 * 86400)
        assert [line for line in lines if line.startswith("models ")] and "legacy" in "\n".join(lines)
        lines.clear()
        await doctor(runtime, settings, out=lines.append, clock=lambda: _noon(shutdown) - 40 * 86400)
        assert not [line for line in lines if line.startswith("models ")]
    finally:
        await runtime.close()


def _noon(day: date) -> float:
    return datetime.combine(day, time(12), UTC).timestamp()
