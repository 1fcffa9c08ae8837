"""The fake Gemini's wire vocabulary: models, sizes, tiers, status names and messages, the
record of a request, a batch, Google's error bodies, and token and image arithmetic."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from tests.fakes.gemini_replies import Reply
from tests.fakes.loopback import png_b64

MODELS = {  # id -> displayName, as listed by GET /v1beta/models
    "gemini-3-pro-image": "Nano Banana Pro",
    "gemini-3.1-flash-image": "Nano Banana 2",
    "gemini-3.1-flash-lite-image": "Nano Banana 2 Lite",
    "gemini-2.5-flash-image": "Nano Banana",
}
# Google's published 1K output sizes per aspect ratio.
ASPECTS = {
    "1:1": (1024, 1024),
    "2:3": (848, 1264),
    "3:2": (1264, 848),
    "3:4": (896, 1200),
    "4:3": (1200, 896),
    "4:5": (928, 1152),
    "5:4": (1152, 928),
    "9:16": (768, 1376),
    "16:9": (1376, 768),
    "21:9": (1584, 672),
    "1:4": (512, 2048),
    "4:1": (2048, 512),
    "1:8": (384, 3072),
    "8:1": (3072, 384),
}  # no "9:21": Google has none
SIZES = {"512": 0.5, "1K": 1, "2K": 2, "4K": 4}
# The service tiers each model takes beside standard (ai.google.dev/gemini-api/docs/optimization,
# checked 2026-11-30; the Flash-Lite Image page lists no Flex or Priority tier, 2.5 Flash Image none).
TIERS = {
    "gemini-3-pro-image": {"flex", "priority"},
    "gemini-3.1-flash-image": {"flex", "priority"},
    "gemini-3.1-flash-lite-image": set(),
    "gemini-2.5-flash-image": set(),
}
KNOWN_TIERS = {"unspecified", "standard", "flex", "priority"}
STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
MESSAGES = {
    400: "Request contains an invalid argument.",
    401: "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project.",
    403: "The caller does not have permission",
    404: "Requested entity was not found.",
    429: "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. "
    "To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. ",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
# A google.rpc.Status inside a message (a batch's per-request error) carries the gRPC code,
# not the HTTP one and no status name, unlike the HTTP error envelope.
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 429: 8, 500: 13, 503: 14, 504: 4}
BATCH_STATES = (
    "BATCH_STATE_PENDING",
    "BATCH_STATE_RUNNING",
    "BATCH_STATE_SUCCEEDED",
    "BATCH_STATE_FAILED",
    "BATCH_STATE_CANCELLED",
    "BATCH_STATE_EXPIRED",
)
FINISHED = frozenset(BATCH_STATES[2:])
# The real service names its internal API version in @type, whatever version was called.
BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
BAD_KEY = "API key not valid. Please pass a valid API key."
# A batch's inlined requests must stay "under 20MB" in total (ai.google.dev/gemini-api/docs/batch-api,
# checked 2026-11-30); past it the create call is refused with Google's payload-size 400.
BATCH_INLINE_LIMIT = 20 * 1024 * 1024
IMAGE_INPUT_TOKENS = 560
_dumps = partial(json.dumps, indent=2)  # Google pretty-prints its JSON


@dataclass
class RecordedRequest:
    model: str
    path: str
    headers: dict[str, str]  # keys lower-cased
    body: dict
    prompt: str
    input_images: list[bytes] = field(default_factory=list)
    aspect_ratio: str | None = None
    image_size: str | None = None
    service_tier: str | None = None  # as sent ("flex"); None when the request names none


def _tier(value: str | None) -> str:
    """A serviceTier as the API reads it: enum names and values, any case ("FLEX", "SERVICE_TIER_FLEX")."""
    return (value or "standard").lower().removeprefix("service_tier_")


@dataclass
class FakeBatch:
    """One batch job, ``batches/<id>``; ``requests`` are in the order they were sent."""

    id: str
    model: str
    display_name: str | None
    body: dict  # the create call's JSON (request metadata included)
    requests: list[RecordedRequest]
    create_time: str
    update_time: str
    state: str = "BATCH_STATE_PENDING"
    end_time: str | None = None
    replies: list[Reply] = field(default_factory=list)  # one per request, set by finish_batch()
    responses: list[dict] = field(default_factory=list)  # the inlinedResponses they made

    @property
    def name(self) -> str:
        return f"batches/{self.id}"


def error_body(code: int, status: str | None = None, message: str | None = None, details: list | None = None) -> dict:
    err = {
        "code": code,
        "message": message or MESSAGES.get(code, "Unknown error."),
        "status": status or STATUSES.get(code, "UNKNOWN"),
    }
    if details:  # Google omits the key rather than sending an empty list
        err["details"] = details
    return {"error": err}


def bad_key_body() -> dict:
    return error_body(
        400,
        message=BAD_KEY,
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": BAD_KEY},
        ],
    )


# The free tier's quotas a generateContent call counts against, as (metric, quotaId).
_FREE_TIER_QUOTAS = (
    ("generate_content_free_tier_input_token_count", "GenerateContentInputTokensPerModelPerMinute-FreeTier"),
    ("generate_content_free_tier_requests", "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
    ("generate_content_free_tier_requests", "GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
)


def _free_tier_zero(model: str, retry_delay: str | None) -> tuple[list[dict], str]:
    """Details and message of the 429 for a model outside the project's free tier. Each
    violation's limit is 0, which proto3 JSON leaves out: there is no quotaValue at all
    (a paid quota sends it, as a string). Observed answers list Help first, then the
    QuotaFailure; the message repeats each limit and the delay in words."""
    violations = [
        {
            "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
            "quotaId": quota_id,
            "quotaDimensions": {"location": "global", "model": model},
        }
        for metric, quota_id in _FREE_TIER_QUOTAS
    ]
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": violations},
    ]
    message = MESSAGES[429] + "".join(
        f"\n* Quota exceeded for metric: {v['quotaMetric']}, limit: 0, model: {model}" for v in violations
    )
    if retry_delay:
        message += f"\nPlease retry in {retry_delay}."
    return details, message


def _b64decode(data: str) -> bytes:
    # The SDK sends the URL-safe alphabet; other clients send the standard one.
    data = data.translate(str.maketrans("+/", "-_")).rstrip("=")
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _png_b64(w: int, h: int, colour: tuple[int, int, int] = (70, 130, 180)) -> str:
    return png_b64(w, h, colour)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _family(model: str) -> str:
    return "pro" if "pro" in model else "legacy" if "2.5" in model else "flash"


def _image_tokens(model: str, size: str | None) -> int:
    if "pro" in model:
        return 2000 if size == "4K" else 1120
    if "2.5" in model:  # 2.5 Flash Image has one size, billed at 1290 tokens
        return 1290
    return {"512": 747, "2K": 1680, "4K": 2520}.get(size or "1K", 1120)
