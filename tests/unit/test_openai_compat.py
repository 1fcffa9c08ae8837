"""Reading an OpenAI-compatible gateway's answer: where its image, cost and errors are found,
and its Retry-After (the real openai SDK against the fake gateway: tests/integration)."""

from __future__ import annotations

import base64
import time
from decimal import Decimal
from email.utils import formatdate

import pytest
from openai.types.chat import ChatCompletion

from bot.catalog import GatewayInfo
from bot.providers.errors import AuthError, BlockedError, OverloadedError
from bot.providers.openai_compat import parse_completion, retry_after
from tests.fakes.openai_server import png_b64
from tests.support.images import image_size
from tests.support.jobs import spec

PRO = "google/gemini-3-pro-image-preview"
PRICE = GatewayInfo(
    "openrouter", False, {"pro": {"1K": Decimal("0.134"), "2K": Decimal("0.134"), "4K": Decimal("0.24")}}
)


def completion(
    message: dict, *, finish="stop", native="STOP", usage: dict | None = None, model=PRO, **choice
) -> ChatCompletion:
    body = {
        "id": "gen-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": finish,
                "native_finish_reason": native,
                "message": {"role": "assistant", **message},
                **choice,
            }
        ],
    }
    if usage is not None:
        body["usage"] = usage
    # construct, as the SDK does: it does not validate responses, so gateways' shapes get through.
    return ChatCompletion.construct(**body)


def data_url(w: int, h: int) -> str:
    return "data:image/png;base64," + png_b64(w, h)


def test_parse_takes_the_last_image():
    images = [
        {"type": "image_url", "image_url": {"url": data_url(4, 4)}},
        {"type": "image_url", "image_url": {"url": data_url(6, 3)}},
    ]
    result = parse_completion(completion({"content": "", "images": images}), spec(), None)
    assert image_size(result.image.data) == (6, 3)
    assert result.usage is None and result.cost_usd is None


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64,@@not-base64@@",
        "data:image/png;base64,QUJD=X",  # padding in the middle: strict decoding refuses it
        "data:image/png;base64,",
        "data:text/plain;base64,QUJD",
        "https://cdn.example/x.png",
    ],
)
def test_parse_treats_malformed_or_remote_urls_as_no_image(url):
    message = {"content": "done", "images": [{"type": "image_url", "image_url": {"url": url}}]}
    with pytest.raises(BlockedError) as info:
        parse_completion(completion(message), spec(), PRICE)
    assert info.value.reason == "NO_IMAGE"
    assert "done" in info.value.detail


def test_parse_finds_images_in_content_parts_and_keeps_other_text():
    message = {
        "content": [
            {"type": "text", "text": "Voilà ![x](https://cdn.example/a.png)"},
            {"type": "image_url", "image_url": {"url": data_url(5, 5)}},
        ]
    }
    result = parse_completion(completion(message), spec(), None)
    assert image_size(result.image.data) == (5, 5)
    assert result.text == "Voilà ![x](https://cdn.example/a.png)"


def test_parse_images_field_wins_over_content():
    message = {
        "content": f"![old]({data_url(2, 2)})",
        "images": [{"type": "image_url", "image_url": {"url": data_url(3, 3)}}],
    }
    assert image_size(parse_completion(completion(message), spec(), None).image.data) == (3, 3)


def test_parse_reads_cost_and_image_tokens_from_usage_extras():
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 1300,
        "total_tokens": 1310,
        "cost": "0.039",
        "completion_tokens_details": {"image_tokens": 1290, "reasoning_tokens": 4},
    }
    message = {"content": None, "images": [{"type": "image_url", "image_url": {"url": data_url(2, 2)}}]}
    result = parse_completion(completion(message, usage=usage), spec(), PRICE)
    assert result.cost_usd == Decimal("0.039")
    assert (result.usage.image_tokens, result.usage.thoughts_tokens, result.usage.text_tokens) == (1290, 4, 6)


def test_parse_maps_a_200_error_body():
    body = ChatCompletion.construct(error={"code": 401, "message": "User not found."})
    with pytest.raises(AuthError, match="User not found"):
        parse_completion(body, spec(), None)


def test_parse_maps_a_choice_level_error():
    body = completion({"content": ""}, finish="error", error={"code": 503, "message": "upstream overloaded"})
    with pytest.raises(OverloadedError, match="upstream overloaded"):
        parse_completion(body, spec(), None)


def test_parse_rejects_a_non_json_answer():
    # The SDK returns the raw text when a 200 is not JSON (a proxy's HTML page).
    with pytest.raises(OverloadedError, match="not JSON"):
        parse_completion("<html>502 Bad Gateway</html>", spec(), None)


def test_retry_after_reads_seconds_milliseconds_and_dates():
    assert retry_after({"retry-after": "7"}) == 7.0
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert 25 <= retry_after({"retry-after": formatdate(time.time() + 30, usegmt=True)}) <= 31
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


def test_data_url_helper_in_the_fake_round_trips():
    from tests.fakes.openai_server import decode_data_url

    assert decode_data_url("data:image/png;base64," + base64.b64encode(b"abc").decode()) == ("image/png", b"abc")
