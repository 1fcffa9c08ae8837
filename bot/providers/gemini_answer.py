"""Reading a generateContent answer with as few copies of its image as there can be.

The SDK's own parsing of an answer holds, at its peak, the JSON text with the image in
base64 (4/3 of the PNG), the parsed dict holding that base64 again, and the decoded
bytes: about 4x a PNG that is 33 MB for a photographic 4K image, for every job in
flight. So the provider asks the SDK for the raw body instead (GenerateContentConfig's
`should_return_http_response`), and this module lifts each base64 image out of the text
by position, parses the small rest with the SDK's own types, and decodes each image
straight from the text in slices: the text and one PNG at the peak, then the PNG alone.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pydantic
from google.genai import models, types

# An inlineData's "data" key and the opening quote of its value. Inside a JSON string every
# quote is escaped, so this matches keys only; base64 has no quote or backslash, so the value
# ends at the next quote.
_DATA_KEY = re.compile(r'"data"\s*:\s*"')
# Decoded per slice: a multiple of 4 base64 characters (3 bytes each), small beside an image.
SLICE = 256 * 1024
# pydantic's base64 (Rust) decodes about three times as fast as binascii, either alphabet.
_BASE64 = pydantic.TypeAdapter(bytes, config=pydantic.ConfigDict(val_json_bytes="base64"))


def read_answer(http: types.HttpResponse, *, vertexai: bool) -> types.GenerateContentResponse:
    """The answer in the raw response, its images decoded once. The body is taken from `http`
    (left None), so the caller's response object no longer keeps the text alive."""
    body, http.body = http.body or "", None
    spans = [(m.end(), body.index('"', m.end())) for m in _DATA_KEY.finditer(body)]
    # The answer without its images: each base64 value becomes its index in `spans`.
    pieces, at = [], 0
    for n, (start, end) in enumerate(spans):
        pieces += [body[at:start], str(n)]
        at = end
    pieces.append(body[at:])
    skeleton: dict[str, Any] = json.loads("".join(pieces)) if body else {}
    del pieces
    slots = _image_slots(skeleton, len(spans))
    if slots is None or any(body.find("\\", start, end) != -1 for start, end in spans):
        # A "data" key that is no inline image, or an escaped value (not how Google writes
        # base64): the SDK's own way, copies and all.
        return _validated(json.loads(body), http, vertexai=vertexai)
    answer = _validated(skeleton, http, vertexai=vertexai)
    try:
        for candidate, part, image in slots:
            content = (answer.candidates or [])[candidate].content
            blob = content.parts[part].inline_data if content and content.parts else None
            if blob is not None:
                blob.data = _decode(body, *spans[image])
    except pydantic.ValidationError:  # not base64 after all
        return _validated(json.loads(body), http, vertexai=vertexai)
    return answer


def _validated(doc: dict[str, Any], http: types.HttpResponse, *, vertexai: bool) -> types.GenerateContentResponse:
    """The SDK's own conversion and validation of an answer, as generate_content does them
    (google-genai 3.6)."""
    name = "_GenerateContentResponse_from_vertex" if vertexai else "_GenerateContentResponse_from_mldev"
    # Private to the SDK: should a later release drop it, pydantic's camelCase aliases read the
    # fields the bot uses all the same.
    convert = getattr(models, name, lambda doc, *_: doc)
    answer = types.GenerateContentResponse._from_response(response=convert(doc, None, None), kwargs={})
    answer.sdk_http_response = types.HttpResponse(headers=http.headers)
    return answer


def _image_slots(skeleton: dict[str, Any], count: int) -> list[tuple[int, int, int]] | None:
    """Where each lifted image goes: (candidate, part, index in spans), its placeholder taken out
    of the skeleton. None when a placeholder is anywhere else (a "data" key of something else)."""
    slots = []
    for c, candidate in enumerate(skeleton.get("candidates") or []):
        parts = ((candidate or {}).get("content") or {}).get("parts") or []
        for p, part in enumerate(parts):
            inline = part.get("inlineData") if isinstance(part, dict) else None
            if isinstance(inline, dict) and isinstance(inline.get("data"), str) and inline["data"].isdigit():
                slots.append((c, p, int(inline.pop("data"))))
    return slots if sorted(i for _, _, i in slots) == list(range(count)) else None


def _decode(text: str, start: int, end: int) -> bytes:
    """The bytes of the base64 in text[start:end], decoded slice by slice (never a copy of the
    whole base64) into a buffer sized once. Standard or URL-safe alphabet; a slice is a JSON
    string again, as it was in the answer."""
    size = (end - start) * 3 // 4 - text.count("=", max(start, end - 2), end)
    out = io.BytesIO()
    if size > 0:  # one allocation of the final size, not a growing buffer's reallocations
        out.seek(size - 1)
        out.write(b"\0")
        out.seek(0)
    for at in range(start, end, SLICE):
        out.write(_BASE64.validate_json(f'"{text[at : min(at + SLICE, end)]}"'))
    out.truncate()
    return out.getvalue()  # the buffer itself, not a copy (nothing else holds it)
