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
import random
import secrets
import time
from collections import deque

from aiohttp import web

from tests.fakes.gemini_answers import Answers
from tests.fakes.gemini_batch import BatchApi
from tests.fakes.gemini_replies import (
    Reply,
    Tokens,
    blocked_prompt,
    drop,
    error,
    finish,
    free_tier_zero,
    hang,
    no_image,
    ok,
    slow,
)
from tests.fakes.gemini_wire import (
    ASPECTS,
    BATCH_INLINE_LIMIT,
    BATCH_STATES,
    FINISHED,
    MODELS,
    SIZES,
    FakeBatch,
    RecordedRequest,
    _b64decode,
    _dumps,
    _now,
    _tier,
    bad_key_body,
    error_body,
)
from tests.fakes.loopback import LoopbackServer, hang_up, json_not_found

# Tests import the fake and the replies they script from here (tests.fakes.gemini_server.ok, ...).
__all__ = [
    "FakeGemini",
    "Reply",
    "Tokens",
    "blocked_prompt",
    "drop",
    "error",
    "finish",
    "free_tier_zero",
    "hang",
    "no_image",
    "ok",
    "slow",
    "ASPECTS",
    "MODELS",
    "SIZES",
    "RecordedRequest",
    "error_body",
]


class FakeGemini(Answers, BatchApi, LoopbackServer):
    # handler_cancellation + short shutdown so stop() never waits on a hang() reply.
    _runner_options = {"handler_cancellation": True, "shutdown_timeout": 0.1}

    def __init__(
        self, *, latency: float = 0.0, image_scale: float = 1.0, tail: tuple[float, float] | None = None, seed: int = 0
    ):
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
        # A quota storm: every call is refused with this reply until the monotonic time given
        # (as when something else on the Google project spends its quota); then calls succeed.
        self._storm: tuple[float, Reply] | None = None
        self.storm_refusals = 0

    def storm(self, seconds: float, reply: Reply) -> None:
        """Answer every call with `reply` (a 429) for the next `seconds`."""
        self._storm = (time.monotonic() + seconds, reply)

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
        batch.responses = [self._inlined(reply, rec) for reply, rec in zip(batch.replies, batch.requests, strict=True)]
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
        app = web.Application(
            middlewares=[
                json_not_found(  # Google's JSON, not aiohttp's text
                    lambda request: self._json(error_body(404, message="Method not found."), 404)
                )
            ],
            # Past aiohttp's 1 MB default: the size limits answered are Google's, checked per call.
            client_max_size=4 * BATCH_INLINE_LIMIT,
        )
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
            return self._json(
                {"error": self.token_error, "error_description": "Token has been expired or revoked."}, 400
            )
        return self._json(
            {
                "access_token": "ya29." + secrets.token_urlsafe(32),
                "expires_in": 3599,
                "scope": "https://www.googleapis.com/auth/cloud-platform",
                "token_type": "Bearer",
            }
        )

    @staticmethod
    def _json(body: dict, status: int = 200, headers: dict | None = None) -> web.Response:
        return web.json_response(body, status=status, headers=headers, dumps=_dumps)

    def _key_error(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if key is None:  # what Google says to a request without any credentials
            return self._json(
                error_body(
                    403,
                    message=(
                        "Method doesn't allow unregistered callers (callers without established identity)."
                        " Please use API Key or other form of API consumer identity to call this API."
                    ),
                ),
                403,
            )
        return None if key == self.api_key else self._json(bad_key_body(), 400)

    def _model_json(self, model: str) -> dict:
        return {
            "name": f"models/{model}",
            "version": "001",
            "displayName": MODELS[model],
            "description": f"{MODELS[model]} ({model})",
            "inputTokenLimit": 65536,
            "outputTokenLimit": 32768,
            "supportedGenerationMethods": ["generateContent", "batchGenerateContent"],
        }

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
            model=model,
            path=request.path,
            body=body,
            headers={k.lower(): v for k, v in request.headers.items()},
            prompt="".join(p.get("text", "") for p in (users[-1].get("parts", []) if users else [])),
            input_images=[_b64decode(p["inlineData"]["data"]) for p in parts if "inlineData" in p],
            aspect_ratio=image_config.get("aspectRatio"),
            image_size=image_config.get("imageSize"),
            service_tier=body.get("serviceTier"),
        )

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
        if self._storm is not None and time.monotonic() < self._storm[0]:
            reply, self.storm_refusals = self._storm[1], self.storm_refusals + 1
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
    parser.add_argument("--auto-finish-batches", action="store_true", help="succeed every batch on its first poll")
    try:
        asyncio.run(_serve(parser.parse_args()))
    except KeyboardInterrupt:
        pass
