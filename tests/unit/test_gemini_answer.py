"""Reading a raw generateContent body: the same answer the SDK's parsing gives, each image
decoded once from the text, and the text let go."""

from __future__ import annotations

import base64
import json
import os
import tracemalloc

from google.genai import types

from bot.providers import gemini_answer
from bot.providers.gemini_answer import read_answer

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


def body(*parts: dict, **extra) -> str:
    answer = {
        "candidates": [{"content": {"role": "model", "parts": list(parts)}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 1130, "totalTokenCount": 1137},
        "modelVersion": "gemini-3-pro-image",
        "responseId": "r-1",
        **extra,
    }
    return json.dumps(answer)


def image_part(data: bytes, encode=base64.b64encode) -> dict:
    return {"inlineData": {"mimeType": "image/png", "data": encode(data).decode()}}


def sdk_parse(text: str) -> types.GenerateContentResponse:
    return types.GenerateContentResponse._from_response(response=json.loads(text), kwargs={})


def read(text: str, headers: dict | None = None) -> types.GenerateContentResponse:
    return read_answer(types.HttpResponse(headers=headers or {}, body=text), vertexai=False)


def test_the_answer_is_the_one_the_sdk_parses_with_each_image_decoded():
    text = body(
        {"text": "drafting", "thought": True},
        image_part(b"draft", base64.b64encode),
        {"text": "Here is your koi pond."},
        image_part(PNG),
        promptFeedback={"safetyRatings": []},
    )
    answer = read(text, {"x-gemini-service-tier": "standard"})
    assert answer.model_dump(exclude={"sdk_http_response"}) == sdk_parse(text).model_dump(exclude={"sdk_http_response"})
    parts = answer.candidates[0].content.parts
    assert parts[1].inline_data.data == b"draft" and parts[3].inline_data.data == PNG
    assert answer.sdk_http_response.headers == {"x-gemini-service-tier": "standard"}


def test_the_body_is_taken_from_the_response_so_nothing_keeps_it_alive():
    http = types.HttpResponse(headers={}, body=body(image_part(PNG)))
    read_answer(http, vertexai=False)
    assert http.body is None


def test_url_safe_base64_and_images_longer_than_one_slice_decode(monkeypatch):
    monkeypatch.setattr(gemini_answer, "SLICE", 8)
    data = bytes(range(256)) * 3 + b"\xfb\xff"  # URL-safe base64 has - and _ here
    answer = read(body(image_part(data, base64.urlsafe_b64encode)))
    assert answer.candidates[0].content.parts[0].inline_data.data == data


def test_a_data_key_that_is_no_image_or_an_escaped_value_is_read_the_sdks_way():
    escaped = body(image_part(PNG)).replace("/", "\\/")
    assert read(escaped).candidates[0].content.parts[0].inline_data.data == PNG
    other = body(image_part(PNG), {"functionResponse": {"name": "f", "response": {"data": "not base64!"}}})
    answer = read(other)
    assert answer.candidates[0].content.parts[0].inline_data.data == PNG
    assert answer.candidates[0].content.parts[1].function_response.response == {"data": "not base64!"}


def test_a_blocked_prompt_without_candidates_reads_as_such():
    answer = read(json.dumps({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}))
    assert answer.candidates is None and answer.prompt_feedback.block_reason.name == "SAFETY"


def peak_bytes(read_it) -> tuple[object, int]:
    tracemalloc.start()
    try:
        answer = read_it()
        return answer, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reading_holds_one_image_beside_the_text_not_the_sdks_copies():
    png = os.urandom(3_000_000)
    text = body(image_part(png))
    answer, ours = peak_bytes(lambda: read(text))
    assert answer.candidates[0].content.parts[0].inline_data.data == png
    _, sdks = peak_bytes(lambda: sdk_parse(text))
    # The text is the caller's here: reading adds the image and a slice, not the base64 again.
    assert ours < 1.25 * len(png) and ours < sdks - len(png), (ours, sdks)


def test_a_data_value_that_is_not_base64_after_all_is_read_the_sdks_way():
    text = body({"inlineData": {"mimeType": "image/png", "data": "aGVsbG8"}})  # padding missing
    assert (
        read(text).candidates[0].content.parts[0].inline_data.data
        == sdk_parse(text).candidates[0].content.parts[0].inline_data.data
    )


def test_without_the_sdks_private_converter_the_fields_the_bot_reads_are_the_same(monkeypatch):
    from google.genai import models

    text = body({"text": "Here it is."}, image_part(PNG))
    expected = read(text)
    monkeypatch.delattr(models, "_GenerateContentResponse_from_mldev")
    answer = read(text)
    assert answer.candidates[0].content.parts[1].inline_data.data == PNG
    assert answer.usage_metadata == expected.usage_metadata and answer.model_version == expected.model_version
    assert answer.candidates[0].finish_reason == expected.candidates[0].finish_reason
