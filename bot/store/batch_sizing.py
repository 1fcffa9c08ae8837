"""How many relaxed jobs go in one provider batch: Google's inline size limit, and what a request weighs."""

from __future__ import annotations

import json
from collections.abc import Iterable

# Google takes a batch's requests inline only while they stay "under 20MB" in all
# (ai.google.dev/gemini-api/docs/batch-api, checked 2026-11-30; past it the create
# call is a 400). Batches are cut at 19 MiB of `inline_request_bytes`, a margin
# for the batch's own JSON.
BATCH_INLINE_BYTES = 19 * 1024 * 1024
# The JSON around one request (contents, parts, generationConfig, keys) and around
# each of its images (inlineData, mimeType): more than the SDK writes, never less.
_REQUEST_FRAME = 2048
_IMAGE_FRAME = 256


def inline_request_bytes(image_bytes: int, images: int, prompt: str | None) -> int:
    """What one request weighs inlined in a batch, slightly over: its `images`
    (`image_bytes` in all, the image an edit changes included) base64-encoded, 4
    bytes per 3 plus padding, and its prompt as JSON escapes it."""
    encoded = 4 * -(-image_bytes // 3) + images * (4 + _IMAGE_FRAME)
    return _REQUEST_FRAME + len(json.dumps(prompt)) + encoded


def fitting(candidates: Iterable[tuple[int, int]], max_bytes: int) -> list[int]:
    """The ids of the leading (job id, request bytes) pairs that fit in `max_bytes`
    together; the first always, so a request too big even alone goes in a batch of
    its own (the sender refuses it there) and never holds up the queue."""
    taken: list[int] = []
    total = 0
    for job_id, size in candidates:
        if taken and total + size > max_bytes:
            break
        taken.append(job_id)
        total += size
    return taken
