"""A loopback fake of the Gemini REST API (generativelanguage.googleapis.com).

It answers with the JSON the real service sends, so the unmodified google-genai
SDK can be pointed at it through ``HttpOptions(base_url=fake.url)``. Replies are
scripted per call (``fake.script(ok(), error(429, retry_delay="7s"), drop(), ...)``);
every generateContent request is recorded in ``fake.requests``.

Answers are shaped like real ones: Pro sends its thinking (``thought: true`` parts)
before a text part and the image; the 3.x models sign the first answer part and every
image after it (``thoughtSignature``). ``usageMetadata`` counts the image and the text
in ``candidatesTokenCount`` but itemises only IMAGE in ``candidatesTokensDetails``, and
reports thinking apart in ``thoughtsTokenCount``. A test sets the counts with
``ok(usage=Tokens(prompt=7, text=120, thoughts=557))``; ``fake.sent_usage`` keeps every
usageMetadata sent, so a test can bill it independently.

Batch API (inlined requests only, at most ``BATCH_INLINE_LIMIT`` bytes per create call, and
one invalid request refuses the whole create): a batch created through ``:batchGenerateContent`` is
kept in ``fake.batches`` and stays PENDING until the test moves it on with
``fake.finish_batch(name, ok(), error(429), ...)`` or ``fake.set_batch_state(name, state)``,
or ``fake.auto_finish_batches = True`` succeeds it on its first poll.

Failures as Google sends them: ``free_tier_zero()`` is the 429 a project without billing
gets for a model with no free tier (Pro Image); ``finish(reason, usage=...)`` is an answer
that stopped without an image, billed for the tokens it reports. ``POST /token`` is Google's
OAuth token endpoint, for Vertex AI clients whose credentials refresh there
(``fake.token_error = "invalid_grant"`` refuses the refresh as Google does).

Service tiers (generateContent's ``serviceTier``: flex, standard, priority): each request's tier
is recorded (``rec.service_tier``) and echoed in the ``x-gemini-service-tier`` response header, as
Google does; a tier the model does not offer (``TIERS``) or an unknown one is refused with a 400
INVALID_ARGUMENT. ``fake.script_flex(error(503), ...)`` scripts answers for flex requests only
(Flex is sheddable: a 429 or 503 when it has no capacity), ahead of ``fake.script``'s. Past
``fake.priority_capacity`` priority requests the rest are served (and billed) at standard, and the
header says so (ai.google.dev/gemini-api/docs/priority-inference: "graceful downgrade").

Latency: ``latency`` seconds before every answer; ``slow(seconds)`` scripts one slow
answer; ``tail=(0.05, 10)`` makes a seeded 5% of calls take 10x ``latency`` (a slow
tail, for hedging). A call whose client hangs up before the answer (a cancelled
hedge) is counted in ``fake.cancelled``.

Standalone: ``python -m tests.fakes.gemini_server --port 8089 [--latency 2]``.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import secrets
import string
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial

from aiohttp import web

from tests.fakes.loopback import LoopbackServer, hang_up, json_not_found, png_b64

MODELS = {  # id -> displayName, as listed by GET /v1beta/models
    "gemini-3-pro-image": "Nano Banana Pro",
    "gemini-3.1-flash-image": "Nano Banana 2",
    "gemini-3.1-flash-lite-image": "Nano Banana 2 Lite",
    "gemini-2.5-flash-image": "Nano Banana",
}
# Google's published 1K output sizes per aspect ratio.
ASPECTS = {"1:1": (1024, 1024), "2:3": (848, 1264), "3:2": (1264, 848), "3:4": (896, 1200),
           "4:3": (1200, 896), "4:5": (928, 1152), "5:4": (1152, 928), "9:16": (768, 1376),
           "16:9": (1376, 768), "21:9": (1584, 672), "1:4": (512, 2048), "4:1": (2048, 512),
           "1:8": (384, 3072), "8:1": (3072, 384)}  # no "9:21": Google has none
SIZES = {"512": 0.5, "1K": 1, "2K": 2, "4K": 4}
# The service tiers each model takes beside standard (ai.google.dev/gemini-api/docs/optimization,
# checked 2026-11-30; the Flash-Lite Image page lists no Flex or Priority tier, 2.5 Flash Image none).
TIERS = {"gemini-3-pro-image": {"flex", "priority"}, "gemini-3.1-flash-image": {"flex", "priority"},
         "gemini-3.1-flash-lite-image": set(), "gemini-2.5-flash-image": set()}
KNOWN_TIERS = {"unspecified", "standard", "flex", "priority"}
STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
            404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
            503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
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
BATCH_STATES = ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING", "BATCH_STATE_SUCCEEDED",
                "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED")
FINISHED = frozenset(BATCH_STATES[2:])
# The real service names its internal API version in @type, whatever version was called.
BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
BAD_KEY = "API key not valid. Please pass a valid API key."
# A batch's inlined requests must stay "under 20MB" in total (ai.google.dev/gemini-api/docs/batch-api,
# checked 2026-11-30); past it the create call is refused with Google's payload-size 400.
BATCH_INLINE_LIMIT = 20 * 1024 * 1024
IMAGE_INPUT_TOKENS = 560
_dumps = partial(json.dumps, indent=2)  # Google pretty-prints its JSON


@dataclass(frozen=True)
class Tokens:
    """Scripted usageMetadata counts; None leaves a count to the fake's real-shaped default."""
    prompt: int | None = None
    image: int | None = None  # per answer image
    text: int | None = None  # the answer's text part(s)
    thoughts: int | None = None


# The words a real answer puts beside its image, and the thinking it reports, per model
# family (2.5 Flash Image does not think). Observed answers: Pro 1K 103 text + 106 thinking,
# Pro 4K 677 text and thinking together, Flash 212 text + 137 thinking.
_ANSWER_TEXT = "Here is the image you asked for, composed as described."
_DEFAULT_THOUGHTS = {"pro": 240, "flash": 137, "legacy": 0}
_KEEP = object()  # ok()'s default text: what the model family usually says


@dataclass(frozen=True)
class Reply:
    """One scripted answer; the body is built per request (it echoes the model and sizes)."""
    kind: str  # ok | error | blocked | finish | hang | drop
    text: str | None = None
    images: int = 1
    model_version: str | None = None
    reason: str | None = None
    code: int = 200
    status: str | None = None
    message: str | None = None
    retry_delay: str | None = None
    retry_after: int | None = None
    usage: Tokens = Tokens()
    default_text: bool = False  # ok() without text=: the family's usual words
    free_tier: bool = False  # a 429 against the free tier's quota of 0
    delay: float = 0.0  # seconds before answering (slow())


def ok(*, text: str | None | object = _KEEP, model_version: str | None = None, images: int = 1,
       usage: Tokens = Tokens()) -> Reply:
    """A success. Without ``text`` the answer has the model family's usual text part
    (Pro and Flash say a sentence, 2.5 Flash Image nothing); ``text=None`` sends none."""
    if text is _KEEP:
        return Reply("ok", model_version=model_version, images=images, usage=usage, default_text=True)
    return Reply("ok", text=text, model_version=model_version, images=images, usage=usage)  # type: ignore[arg-type]


def error(code: int, *, status: str | None = None, message: str | None = None,
          retry_delay: str | None = None, retry_after: int | None = None) -> Reply:
    return Reply("error", code=code, status=status, message=message,
                 retry_delay=retry_delay, retry_after=retry_after)


def free_tier_zero(*, retry_delay: str = "25s") -> Reply:
    """The 429 for a model the project's free tier does not include (billing not enabled)."""
    return Reply("error", code=429, retry_delay=retry_delay, free_tier=True)


def blocked_prompt(reason: str = "PROHIBITED_CONTENT", *, usage: Tokens = Tokens()) -> Reply:
    return Reply("blocked", reason=reason, usage=usage)


def finish(reason: str, *, text: str | None = None, usage: Tokens = Tokens()) -> Reply:
    return Reply("finish", reason=reason, text=text, usage=usage)


def no_image(text: str = "I can't draw that.", *, usage: Tokens = Tokens()) -> Reply:
    return Reply("finish", reason="STOP", text=text, usage=usage)


def hang() -> Reply:
    return Reply("hang")


def slow(seconds: float, reply: Reply | None = None) -> Reply:
    """`reply` (a success by default), after `seconds` more than the fake's latency."""
    return replace(reply or ok(), delay=seconds)


def drop() -> Reply:
    """Close the connection without answering, after the request was read (and would be billed)."""
    return Reply("drop")


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


def error_body(code: int, status: str | None = None, message: str | None = None,
               details: list | None = None) -> dict:
    err = {"code": code, "message": message or MESSAGES.get(code, "Unknown error."),
           "status": status or STATUSES.get(code, "UNKNOWN")}
    if details:  # Google omits the key rather than sending an empty list
        err["details"] = details
    return {"error": err}


def bad_key_body() -> dict:
    return error_body(400, message=BAD_KEY, details=[
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
         "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
         "message": BAD_KEY}])


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
    violations = [{"quotaMetric": f"generativelanguage.googleapis.com/{metric}", "quotaId": quota_id,
                   "quotaDimensions": {"location": "global", "model": model}}
                  for metric, quota_id in _FREE_TIER_QUOTAS]
    details = [{"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                   "description": "Learn more about Gemini API quotas",
                   "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
               {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": violations}]
    message = MESSAGES[429] + "".join(f"\n* Quota exceeded for metric: {v['quotaMetric']}, limit: 0, model: {model}"
                                      for v in violations)
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


class FakeGemini(LoopbackServer):
    # handler_cancellation + short shutdown so stop() never waits on a hang() reply.
    _runner_options = {"handler_cancellation": True, "shutdown_timeout": 0.1}

    def __init__(self, *, latency: float = 0.0, image_scale: float = 1.0,
                 tail: tuple[float, float] | None = None, seed: int = 0):
        self.latency = latency
        # (share of calls, latency multiple): a seeded slow tail.
        self.tail = tail
        self._rng = random.Random(seed)
        self.cancelled = 0  # calls whose client hung up before the answer
        self.image_scale = image_scale
        self.api_key: str | None = None
        self.requests: list[RecordedRequest] = []
        self.sent_usage: list[tuple[str, str | None, dict]] = []  # (model, imageSize, usageMetadata) sent
        self.url = ""
        self._replies: deque[Reply] = deque()
        self.batches: dict[str, FakeBatch] = {}  # id -> batch
        self.batch_creates = 0  # batchGenerateContent calls, rejected ones included
        self.batch_gets = 0  # polls (GET batches/<id>)
        self.auto_finish_batches = False  # succeed a batch with ok() replies on its first poll
        self._batch_create_replies: deque[Reply] = deque()
        self.token_requests = 0  # POST /token (OAuth refreshes)
        self.token_error: str | None = None  # e.g. "invalid_grant": refuse every refresh
        self._flex_replies: deque[Reply] = deque()
        # Priority requests served at priority before the rest are served at standard, as Google
        # does past a project's Priority limit ("x-gemini-service-tier: standard"); None: no limit.
        self.priority_capacity: int | None = None

    def script(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    def script_flex(self, *replies: Reply) -> None:
        """Answers for the next flex requests only (error(503) or error(429): Flex shedding the load)."""
        self._flex_replies.extend(replies)

    def script_batch_create(self, *replies: Reply) -> None:
        """Answers for the next valid batch creates: error() fails the call, hang() stalls it,
        anything else lets it create the batch (as does an empty script)."""
        self._batch_create_replies.extend(replies)

    def batch(self, name: str) -> FakeBatch:
        """The batch named "batches/<id>" or "<id>"."""
        return self.batches[name.removeprefix("batches/")]

    def finish_batch(self, name: str, *replies: Reply) -> FakeBatch:
        """Succeed the batch: request i is answered by replies[i], ok() past the given ones.
        error() replies become per-request errors; the others are generateContent answers."""
        batch = self.batch(name)
        if len(replies) > len(batch.requests):
            raise ValueError(f"{len(replies)} replies for {len(batch.requests)} requests")
        batch.replies = [*replies, *[ok()] * (len(batch.requests) - len(replies))]
        batch.responses = [self._inlined(reply, rec) for reply, rec in zip(batch.replies, batch.requests)]
        self._move(batch, "BATCH_STATE_SUCCEEDED")
        return batch

    def set_batch_state(self, name: str, state: str) -> FakeBatch:
        """Move the batch to any state but SUCCEEDED (which needs answers: finish_batch())."""
        if state not in BATCH_STATES or state == "BATCH_STATE_SUCCEEDED":
            raise ValueError(f"{state!r}: use one of {BATCH_STATES}, finish_batch() to succeed")
        batch = self.batch(name)
        self._move(batch, state)
        return batch

    @staticmethod
    def _move(batch: FakeBatch, state: str) -> None:
        batch.state, batch.update_time = state, _now()
        batch.end_time = batch.update_time if state in FINISHED else None

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[json_not_found(  # Google's JSON, not aiohttp's text
            lambda request: self._json(error_body(404, message="Method not found."), 404))],
            # Past aiohttp's 1 MB default: the size limits answered are Google's, checked per call.
            client_max_size=4 * BATCH_INLINE_LIMIT)
        app.router.add_get("/{version}/models", self._list_models)
        app.router.add_post("/{version}/models/{call}", self._model_call)
        app.router.add_get("/{version}/batches", self._list_batches)
        app.router.add_get("/{version}/batches/{id}", self._get_batch)
        app.router.add_post("/{version}/batches/{call}", self._batch_call)
        app.router.add_post("/token", self._token)
        return app

    async def _token(self, request: web.Request) -> web.Response:
        """oauth2.googleapis.com/token: a refresh grant, answered or refused as Google does."""
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "refresh_token" or not form.get("refresh_token"):
            return self._json({"error": "unsupported_grant_type", "error_description": "Invalid grant_type: "}, 400)
        if self.token_error is not None:
            return self._json({"error": self.token_error,
                               "error_description": "Token has been expired or revoked."}, 400)
        return self._json({"access_token": "ya29." + secrets.token_urlsafe(32), "expires_in": 3599,
                           "scope": "https://www.googleapis.com/auth/cloud-platform", "token_type": "Bearer"})

    @staticmethod
    def _json(body: dict, status: int = 200, headers: dict | None = None) -> web.Response:
        return web.json_response(body, status=status, headers=headers, dumps=_dumps)

    def _key_error(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if key is None:  # what Google says to a request without any credentials
            return self._json(error_body(403, message=(
                "Method doesn't allow unregistered callers (callers without established identity)."
                " Please use API Key or other form of API consumer identity to call this API.")), 403)
        return None if key == self.api_key else self._json(bad_key_body(), 400)

    def _model_json(self, model: str) -> dict:
        return {"name": f"models/{model}", "version": "001", "displayName": MODELS[model],
                "description": f"{MODELS[model]} ({model})", "inputTokenLimit": 65536,
                "outputTokenLimit": 32768,
                "supportedGenerationMethods": ["generateContent", "batchGenerateContent"]}

    async def _list_models(self, request: web.Request) -> web.Response:
        return self._key_error(request) or self._json({"models": [self._model_json(m) for m in MODELS]})

    async def _model_call(self, request: web.Request) -> web.Response:
        model, _, method = request.match_info["call"].partition(":")
        if method == "generateContent":
            return await self._generate(request, model)
        if method == "batchGenerateContent":
            return await self._create_batch(request, model)
        raise web.HTTPNotFound()

    @staticmethod
    def _record(request: web.Request, model: str, body: dict) -> RecordedRequest:
        """A GenerateContentRequest's JSON as a RecordedRequest; raises on a bad shape or base64."""
        contents = body.get("contents") or []
        users = [c for c in contents if c.get("role", "user") == "user"]
        parts = [p for c in contents for p in c.get("parts", [])]
        image_config = (body.get("generationConfig") or {}).get("imageConfig") or {}
        return RecordedRequest(
            model=model, path=request.path, body=body,
            headers={k.lower(): v for k, v in request.headers.items()},
            prompt="".join(p.get("text", "") for p in (users[-1].get("parts", []) if users else [])),
            input_images=[_b64decode(p["inlineData"]["data"]) for p in parts if "inlineData" in p],
            aspect_ratio=image_config.get("aspectRatio"), image_size=image_config.get("imageSize"),
            service_tier=body.get("serviceTier"))

    @classmethod
    def _bad_json(cls) -> web.Response:
        return cls._json(error_body(400, message="Invalid JSON payload received."), 400)

    async def _generate(self, request: web.Request, model: str) -> web.Response:
        try:
            rec = self._record(request, model, await request.json())
        except (ValueError, AttributeError, KeyError, TypeError):  # bad JSON, shape or base64
            return self._bad_json()
        self.requests.append(rec)
        try:
            return await self._answer_call(request, rec, model)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    def _latency(self) -> float:
        if self.tail is not None and self._rng.random() < self.tail[0]:
            return self.latency * self.tail[1]
        return self.latency

    async def _answer_call(self, request: web.Request, rec: RecordedRequest, model: str) -> web.Response:
        if latency := self._latency():
            await asyncio.sleep(latency)
        if (resp := self._key_error(request) or self._invalid(rec)) is not None:
            return resp
        tier = _tier(rec.service_tier)
        flex = tier == "flex" and self._flex_replies
        reply = self._flex_replies.popleft() if flex else self._replies.popleft() if self._replies else ok()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.kind == "hang":
            await asyncio.sleep(3600)
            reply = ok()
        if reply.kind == "drop":
            hang_up(request)
        if reply.kind == "error":
            return self._error(reply, model)
        served = "standard" if tier == "unspecified" else tier
        if served == "priority" and self.priority_capacity is not None:
            served = "priority" if self.priority_capacity > 0 else "standard"
            self.priority_capacity = max(0, self.priority_capacity - 1)
        return self._json(self._answer(reply, rec), headers={"x-gemini-service-tier": served})

    async def _create_batch(self, request: web.Request, model: str) -> web.Response:
        self.batch_creates += 1
        raw = await request.read()
        if len(raw) > BATCH_INLINE_LIMIT:  # Google's front end measures the body before reading it
            return self._json(error_body(400, message=(
                f"Request payload size exceeds the limit: {BATCH_INLINE_LIMIT} bytes.")), 400)
        try:
            body = json.loads(raw)
            spec = body.get("batch") or {}
            items = ((spec.get("inputConfig") or {}).get("requests") or {}).get("requests") or []
            recs = [self._record(request, model, item["request"]) for item in items]
        except (ValueError, AttributeError, KeyError, TypeError):
            return self._bad_json()
        if (resp := self._key_error(request)) is not None:
            return resp
        if model not in MODELS:
            return self._json(error_body(404, message=(
                f"models/{model} is not found for API version {request.match_info['version']}, or is"
                " not supported for batchGenerateContent. Call ListModels to see the list of"
                " available models and their supported methods.")), 404)
        if not recs:
            return self._json(error_body(400), 400)
        for rec in recs:  # one invalid request fails the whole batch, with generateContent's message
            if (resp := self._invalid(rec)) is not None:
                return resp
        reply = self._batch_create_replies.popleft() if self._batch_create_replies else ok()
        if reply.kind == "hang":
            await asyncio.sleep(3600)
        if reply.kind == "error":
            return self._error(reply, model)
        now = _now()
        job = FakeBatch(id="".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(36)),
                        model=model, display_name=spec.get("displayName"), body=body, requests=recs,
                        create_time=now, update_time=now)
        self.batches[job.id] = job
        return self._json(self._operation(job))

    def _find_batch(self, request: web.Request, batch_id: str) -> FakeBatch | web.Response:
        """The batch, or the error response (bad key, unknown id) to send instead."""
        if (resp := self._key_error(request)) is not None:
            return resp
        if batch_id not in self.batches:
            return self._json(error_body(404), 404)
        return self.batches[batch_id]

    async def _get_batch(self, request: web.Request) -> web.Response:
        self.batch_gets += 1
        batch = self._find_batch(request, request.match_info["id"])
        if isinstance(batch, web.Response):
            return batch
        if self.auto_finish_batches and batch.state not in FINISHED:
            self.finish_batch(batch.id)
        return self._json(self._operation(batch))

    async def _batch_call(self, request: web.Request) -> web.Response:
        batch_id, _, method = request.match_info["call"].partition(":")
        if method != "cancel":
            raise web.HTTPNotFound()
        batch = self._find_batch(request, batch_id)
        if isinstance(batch, web.Response):
            return batch
        if batch.state not in FINISHED:
            self._move(batch, "BATCH_STATE_CANCELLED")
        return self._json({})  # google.protobuf.Empty

    async def _list_batches(self, request: web.Request) -> web.Response:
        if (resp := self._key_error(request)) is not None:
            return resp
        try:  # the page token is the offset of the page's first batch
            size = int(request.query.get("pageSize") or 0) or 50
            start = int(request.query.get("pageToken") or 0)
        except ValueError:
            return self._json(error_body(400), 400)
        jobs = list(self.batches.values())
        body = {"operations": [self._operation(b) for b in jobs[start:start + size]]}
        if start + size < len(jobs):
            body["nextPageToken"] = str(start + size)
        return self._json(body)

    def _operation(self, batch: FakeBatch) -> dict:
        """The long-running Operation a batch is reported as (create, get and list)."""
        n, failed = len(batch.requests), sum("error" in r for r in batch.responses)
        stats = {"requestCount": str(n)}  # int64 is a JSON string; zero counts are left out
        if batch.state == "BATCH_STATE_SUCCEEDED":
            stats |= {k: str(v) for k, v in (("successfulRequestCount", n - failed),
                                             ("failedRequestCount", failed)) if v}
        elif batch.state not in FINISHED:
            stats["pendingRequestCount"] = str(n)
        metadata = {"@type": BATCH_TYPE + "GenerateContentBatch", "model": f"models/{batch.model}",
                    **({"displayName": batch.display_name} if batch.display_name is not None else {}),
                    "createTime": batch.create_time, "updateTime": batch.update_time,
                    **({"endTime": batch.end_time} if batch.end_time else {}),
                    "batchStats": stats, "state": batch.state, "name": batch.name}
        operation = {"name": batch.name, "metadata": metadata}
        if batch.state in FINISHED:
            operation["done"] = True
        if batch.state == "BATCH_STATE_SUCCEEDED":
            inlined = {"inlinedResponses": {"inlinedResponses": batch.responses}}
            metadata["output"] = inlined
            operation["response"] = {"@type": BATCH_TYPE + "GenerateContentBatchOutput", **inlined}
        return operation

    def _inlined(self, reply: Reply, rec: RecordedRequest) -> dict:
        """One request's entry in a batch's inlinedResponses (the service echoes no metadata)."""
        if reply.kind in ("hang", "drop"):
            raise ValueError(f"{reply.kind}() has no meaning inside a batch")
        if reply.kind == "error":
            return {"error": {"code": GRPC_CODES.get(reply.code, 2),  # 2: UNKNOWN
                              "message": reply.message or MESSAGES.get(reply.code, "Unknown error.")}}
        return {"response": self._answer(reply, rec)}

    def _invalid(self, rec: RecordedRequest) -> web.Response | None:
        """Reject what the real API rejects, with its messages (they carry no details)."""
        if not rec.body.get("contents"):
            msg = "* GenerateContentRequest.contents: contents is not specified\n"
        elif rec.aspect_ratio is not None and rec.aspect_ratio not in ASPECTS:
            allowed = [f"'{a}'" for a in sorted(ASPECTS)]
            msg = ("* GenerateContentRequest.generation_config.image_config.aspect_ratio: aspect_ratio"
                   f" must be one of {', '.join(allowed[:-1])}, or {allowed[-1]}.\n")
        elif rec.image_size is not None and rec.image_size not in SIZES:
            msg = ("* GenerateContentRequest.generation_config.image_config.image_size: image_size"
                   " must be one of '512', '1K', '2K', or '4K'.\n")
        elif rec.image_size is not None and ("2.5" in rec.model
                                              or "flash-lite" in rec.model and rec.image_size != "1K"):
            # 2.5 Flash Image takes no imageSize; Flash-Lite Image takes 1K only.
            msg = "Image size is not supported for this model."
        elif _tier(rec.service_tier) not in KNOWN_TIERS:
            msg = (f"Invalid value at 'service_tier' (type.googleapis.com/google.ai.generativelanguage.v1beta."
                   f"ServiceTier), \"{rec.service_tier}\"")
        elif _tier(rec.service_tier) not in {"standard", "unspecified", *TIERS.get(rec.model, ())}:
            msg = f"Service tier {_tier(rec.service_tier)} is not supported for model {rec.model}."
        else:
            return None
        return self._json(error_body(400, message=msg), 400)

    def _error(self, reply: Reply, model: str) -> web.Response:
        details, message = [], reply.message
        if reply.free_tier:
            details, message = _free_tier_zero(model, reply.retry_delay)
        elif reply.code == 429:  # Google's quota errors name the exhausted quota and link the docs
            details += [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                    "quotaDimensions": {"location": "global", "model": model}, "quotaValue": "20"}]},
                {"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}]
            if message is None and reply.retry_delay:
                message = MESSAGES[429] + f"\nPlease retry in {reply.retry_delay}."
        if reply.retry_delay:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                            "retryDelay": reply.retry_delay})
        headers = {"Retry-After": str(reply.retry_after)} if reply.retry_after is not None else None
        return self._json(error_body(reply.code, reply.status, message, details), reply.code, headers)

    def _answer(self, reply: Reply, rec: RecordedRequest) -> dict:
        family = _family(rec.model)
        text = (_ANSWER_TEXT if family != "legacy" else None) if reply.default_text else reply.text
        parts: list[dict] = []
        if reply.kind == "ok" and family == "pro":
            # Pro "thinks" first: a draft text and a draft image (deliberately 8x8) come
            # before the answer; clients must skip parts with thought=true.
            parts += [{"text": "**Composing the image**\n\nPlanning layout and colours.", "thought": True},
                      {"inlineData": {"mimeType": "image/png", "data": _png_b64(8, 8, (255, 0, 255))},
                       "thought": True}]
        answer_from = len(parts)
        if text is not None:
            parts.append({"text": text})
        images = reply.images if reply.kind == "ok" else 0
        if images:
            w, h = ASPECTS[rec.aspect_ratio or "1:1"]
            scale = SIZES[rec.image_size or "1K"] * self.image_scale
            data = _png_b64(max(1, round(w * scale)), max(1, round(h * scale)))
            parts += [{"inlineData": {"mimeType": "image/png", "data": data}} for _ in range(images)]
        if family != "legacy":
            # The 3.x models sign the first answer part and every image after it.
            for i, part in enumerate(parts[answer_from:], answer_from):
                if i == answer_from or "inlineData" in part:
                    parts[i] = {**part, "thoughtSignature": base64.b64encode(secrets.token_bytes(32)).decode()}
        usage = self._usage(reply, rec, images, text)
        self.sent_usage.append((rec.model, rec.image_size, usage))
        tail = {"usageMetadata": usage, "modelVersion": reply.model_version or rec.model,
                "responseId": secrets.token_urlsafe(16)}
        if reply.kind == "blocked":
            return {"promptFeedback": {"blockReason": reply.reason}, **tail}
        candidate = {"content": {"parts": parts, "role": "model"}} if parts else {}
        candidate.update(finishReason="STOP" if reply.kind == "ok" else reply.reason, index=0)
        return {"candidates": [candidate], **tail}

    @staticmethod
    def _usage(reply: Reply, rec: RecordedRequest, images: int, text: str | None) -> dict:
        """usageMetadata as Google sends it for image models: candidatesTokenCount is image plus
        text, only IMAGE is itemised, thinking is apart, and zero counts are left out (proto3 JSON)."""
        scripted = reply.usage
        image_input = IMAGE_INPUT_TOKENS * len(rec.input_images)
        prompt = scripted.prompt if scripted.prompt is not None else _tokens(rec.prompt) + image_input
        prompt_details = [{"modality": "TEXT", "tokenCount": max(0, prompt - image_input)}]
        if rec.input_images:
            prompt_details.append({"modality": "IMAGE", "tokenCount": image_input})
        image = images * (scripted.image if scripted.image is not None
                          else _image_tokens(rec.model, rec.image_size))
        text_tokens = scripted.text if scripted.text is not None else (_tokens(text) if text else 0)
        default_thoughts = _DEFAULT_THOUGHTS[_family(rec.model)] if reply.kind == "ok" else 0
        thoughts = scripted.thoughts if scripted.thoughts is not None else default_thoughts
        out = image + text_tokens
        # Google's key order, as a real answer shows it.
        usage = {"promptTokenCount": prompt, **({"candidatesTokenCount": out} if out else {}),
                 "totalTokenCount": prompt + out + thoughts, "promptTokensDetails": prompt_details}
        if image:
            usage["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": image}]
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return usage


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeGemini(latency=args.latency, image_scale=args.image_scale)
    fake.api_key = args.api_key
    fake.auto_finish_batches = args.auto_finish_batches
    await fake.serve_forever(args.port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Serve a fake Gemini API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--image-scale", type=float, default=1.0)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--auto-finish-batches", action="store_true",
                        help="succeed every batch on its first poll")
    try:
        asyncio.run(_serve(parser.parse_args()))
    except KeyboardInterrupt:
        pass
