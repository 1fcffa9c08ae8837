"""A loopback fake of an OpenAI-compatible gateway (OpenRouter style) for image models.

It answers ``POST /v1/chat/completions`` with the chat.completion JSON such a
gateway sends for image output (``choices[0].message.images[i].image_url.url``
data URLs, ``usage.cost``, ``completion_tokens_details.image_tokens``,
``native_finish_reason``), so the unmodified ``openai`` SDK can be pointed at it
through ``AsyncOpenAI(base_url=fake.url)``. Replies are scripted per call
(``fake.script(ok(), error(429, retry_after=7), drop(), ...)``); every chat request is
recorded in ``fake.requests``.

It refuses what OpenRouter refuses with its 400 ``{"error": {"code", "message"}}``: an
unknown model, an aspect ratio or an ``image_config.image_size`` it does not take (its
sizes are "0.5K", "1K", "2K" and "4K": Google's "512" is refused).

Unlike OpenAI, the fake's 401 message echoes the wrong key unmasked (as some
proxies do), so tests can check that no key leaks into our error details.

Standalone: ``python -m tests.fakes.openai_server --port 8090 [--latency 2] [--api-key K]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes import loopback
from tests.fakes.gemini_server import ASPECTS

# OpenRouter's image_config.image_size values and their scale from 1K: the smallest is
# "0.5K" (Google's own API calls it "512", which OpenRouter refuses).
SIZES = {"0.5K": 0.5, "1K": 1, "2K": 2, "4K": 4}

# What GET /v1/models lists; chat requests for other models get OpenRouter's 400.
MODELS = ("google/gemini-3-pro-image-preview", "google/gemini-3.1-flash-image-preview", "google/gemini-2.5-flash-image")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
}
MESSAGES = {
    400: "Invalid request.",
    401: "No auth credentials found",
    402: "Insufficient credits. This account never purchased credits. Make sure your key is on the "
    "correct account or org, and if so, purchase more at https://openrouter.ai/settings/credits",
    403: "Your chosen model requires moderation and your input was flagged",
    404: "Not found.",
    408: "Request timed out.",
    429: "Rate limit exceeded: too many requests. Please slow down.",
    500: "Internal Server Error",
    502: "Provider returned error",
    503: "No allowed providers are available for the selected model.",
}
IMAGE_INPUT_TOKENS = 258
_DATA_URL = re.compile(r"data:([^;,]+)(?:;[^;,]*)*;base64,(.*)", re.S)


@dataclass(frozen=True)
class Reply:
    """One scripted answer; the body is built per request (it echoes the model and aspect ratio)."""

    kind: str  # ok | error | error_in_200 | no_image | hang | drop
    images: int = 1
    cost: float | None = None
    model: str | None = None
    in_content: str | None = None  # None | "data_url" | "markdown"
    text: str | None = None
    finish_reason: str | None = "stop"
    native_finish_reason: str | None = None
    status: int = 200
    message: str | None = None
    retry_after: float | None = None
    metadata: dict | None = None


def ok(
    *,
    images: int = 1,
    cost: float | None = 0.0021,
    model: str | None = None,
    in_content: str | None = None,
    text: str | None = None,
) -> Reply:
    """A success. ``in_content`` ("data_url" or "markdown") puts the image(s) in
    ``message.content`` instead of ``message.images``; ``cost=None`` reports no cost."""
    if in_content not in (None, "data_url", "markdown"):
        raise ValueError(f"in_content must be None, 'data_url' or 'markdown', not {in_content!r}")
    return Reply("ok", images=images, cost=cost, model=model, in_content=in_content, text=text)


def error(
    status: int, *, message: str | None = None, retry_after: float | None = None, metadata: dict | None = None
) -> Reply:
    """An HTTP error with an OpenAI-style body {"error": {"message", "type", "code"}}."""
    return Reply("error", status=status, message=message, retry_after=retry_after, metadata=metadata)


def no_image(
    text: str | None = "I can't",
    *,
    finish_reason: str | None = "stop",
    native_finish_reason: str | None = None,
    cost: float | None = 0.0003,
) -> Reply:
    """A 200 whose message carries only text (``text`` is the whole ``message.content``)."""
    return Reply(
        "no_image",
        images=0,
        text=text,
        finish_reason=finish_reason,
        native_finish_reason=native_finish_reason,
        cost=cost,
    )


def error_in_200(code: int = 502, *, message: str | None = None, metadata: dict | None = None) -> Reply:
    """OpenRouter's upstream failure: HTTP 200 with {"error": {"code", "message", "metadata"}}."""
    return Reply("error_in_200", status=code, message=message, metadata=metadata)


def hang() -> Reply:
    return Reply("hang")


def drop() -> Reply:
    """Close the connection without answering, after the request was read."""
    return Reply("drop")


@dataclass
class RecordedRequest:
    model: str
    path: str
    headers: dict[str, str]  # keys lower-cased
    body: dict
    messages: list
    prompt: str
    modalities: list | None = None
    image_config: dict | None = None
    input_images: list[bytes] = field(default_factory=list)
    input_mimes: list[str] = field(default_factory=list)
    request_id: str = ""  # the x-request-id the fake answered with


def error_body(status: int, message: str | None = None, metadata: dict | None = None) -> dict:
    err: dict = {
        "message": message or MESSAGES.get(status, "Unknown error."),
        "type": ERROR_TYPES.get(status, "api_error"),
        "param": None,
        "code": status,
    }
    if metadata:
        err["metadata"] = metadata
    return {"error": err}


def decode_data_url(url: str) -> tuple[str, bytes]:
    """(mime, bytes) of a base64 data URL; ValueError when it is not one."""
    match = _DATA_URL.fullmatch(url or "")
    if not match:
        raise ValueError("not a base64 data URL")
    return match.group(1), base64.b64decode(match.group(2), validate=True)


def png_b64(w: int, h: int, colour: tuple[int, int, int] = (205, 92, 92)) -> str:
    return loopback.png_b64(w, h, colour)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


class FakeGateway(loopback.LoopbackServer):
    # handler_cancellation + short shutdown so stop() never waits on a hang() reply.
    _runner_options = {"handler_cancellation": True, "shutdown_timeout": 0.1}

    def __init__(
        self,
        api_key: str | None = "gw-key",
        latency: float = 0.0,
        *,
        image_scale: float = 0.125,
        models: tuple[str, ...] = MODELS,
    ):
        self.api_key = api_key  # None: any key (or none) is accepted
        self.latency = latency
        self.image_scale = image_scale  # 1:1 at 1K is 128x128 by default: small and fast
        self.models = models
        self.requests: list[RecordedRequest] = []
        self.fetched: list[str] = []  # GETs of /files/*: proves nobody fetched an http image URL
        self.url = ""  # the base URL for the SDK, ending in /v1
        self.root = ""
        self._replies: deque[Reply] = deque()

    def script(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    def file_url(self, name: str = "image.png") -> str:
        """An http URL on this fake that serves a PNG and records every fetch in ``fetched``."""
        return f"{self.root}/files/{name}"

    def _app(self) -> web.Application:
        app = web.Application(
            middlewares=[
                loopback.json_not_found(  # JSON, as the gateways send
                    lambda request: self._json(error_body(404, f"Route {request.method}:{request.path} not found"), 404)
                )
            ]
        )
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/files/{name}", self._file)
        return app

    def _set_urls(self, root: str) -> None:
        self.root = root
        self.url = root + "/v1"

    @staticmethod
    def _json(
        body: dict, status: int = 200, headers: dict | None = None, request_id: str | None = None
    ) -> web.Response:
        headers = {"x-request-id": request_id or "req_" + secrets.token_hex(12), **(headers or {})}
        return web.json_response(body, status=status, headers=headers)

    def _key_error(self, request: web.Request, request_id: str | None = None) -> web.Response | None:
        if self.api_key is None:
            return None
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return self._json(
                error_body(
                    401,
                    "You didn't provide an API key. You need to provide your API "
                    "key in an Authorization header using Bearer auth.",
                ),
                401,
                request_id=request_id,
            )
        key = auth[7:].strip()
        if key != self.api_key:  # deliberately unmasked: see the module docstring
            return self._json(error_body(401, f"Incorrect API key provided: {key}."), 401, request_id=request_id)
        return None

    async def _list_models(self, request: web.Request) -> web.Response:
        return self._key_error(request) or self._json(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 1_760_000_000, "owned_by": m.split("/")[0]}
                    for m in self.models
                ],
            }
        )

    async def _file(self, request: web.Request) -> web.Response:
        self.fetched.append(request.path)
        return web.Response(body=base64.b64decode(png_b64(16, 16)), content_type="image/png")

    async def _chat(self, request: web.Request) -> web.Response:
        request_id = "req_" + secrets.token_hex(12)
        try:
            body = await request.json()
            messages = body["messages"]
            parts = [
                p
                for m in messages
                if m.get("role") == "user"
                for p in (m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}])
            ]
            decoded = [decode_data_url(p["image_url"]["url"]) for p in parts if p.get("type") == "image_url"]
            rec = RecordedRequest(
                model=body["model"],
                path=request.path,
                body=body,
                messages=messages,
                headers={k.lower(): v for k, v in request.headers.items()},
                prompt="".join(p.get("text", "") for p in parts if p.get("type") == "text"),
                modalities=body.get("modalities"),
                image_config=body.get("image_config"),
                input_images=[data for _, data in decoded],
                input_mimes=[mime for mime, _ in decoded],
                request_id=request_id,
            )
        except (ValueError, AttributeError, KeyError, TypeError):  # bad JSON, shape or base64
            return self._json(error_body(400, "Invalid request body."), 400, request_id=request_id)
        self.requests.append(rec)
        if self.latency:
            await asyncio.sleep(self.latency)
        if (resp := self._key_error(request, request_id) or self._invalid(rec, request_id)) is not None:
            return resp
        reply = self._replies.popleft() if self._replies else ok()
        if reply.kind == "hang":
            await asyncio.sleep(3600)
            reply = ok()
        if reply.kind == "drop":
            loopback.hang_up(request)
        if reply.kind == "error":
            headers = {"Retry-After": f"{reply.retry_after:g}"} if reply.retry_after is not None else None
            return self._json(
                error_body(reply.status, reply.message, reply.metadata), reply.status, headers, request_id
            )
        if reply.kind == "error_in_200":
            metadata = reply.metadata or {"raw": "upstream said no", "provider_name": "Google"}
            return self._json(
                {
                    "error": {
                        "message": reply.message or MESSAGES.get(reply.status, "Error"),
                        "code": reply.status,
                        "metadata": metadata,
                    },
                    "user_id": "user_fake",
                },
                request_id=request_id,
            )
        return self._json(self._answer(reply, rec), request_id=request_id)

    def _invalid(self, rec: RecordedRequest, request_id: str) -> web.Response | None:
        """Reject what a gateway rejects, with OpenRouter's messages."""
        config = rec.image_config or {}
        if rec.model not in self.models:
            msg = f"{rec.model} is not a valid model ID"
        elif not rec.messages:
            msg = 'Input required: specify "prompt" or "messages"'
        elif config.get("aspect_ratio") is not None and config["aspect_ratio"] not in ASPECTS:
            msg = f"Invalid aspect_ratio: {config['aspect_ratio']}"
        elif config.get("image_size") is not None and config["image_size"] not in SIZES:
            msg = f"Invalid image_size: {config['image_size']}. Expected one of: {', '.join(SIZES)}"
        else:
            return None
        return self._json(error_body(400, msg), 400, request_id=request_id)

    def _answer(self, reply: Reply, rec: RecordedRequest) -> dict:
        config = rec.image_config or {}
        w, h = ASPECTS[config.get("aspect_ratio") or "1:1"]
        scale = SIZES[config.get("image_size") or "1K"] * self.image_scale
        url = "data:image/png;base64," + png_b64(max(1, round(w * scale)), max(1, round(h * scale)))
        n = reply.images if reply.kind == "ok" else 0
        image_tokens = 1290 * n
        message: dict = {"role": "assistant", "content": reply.text or "", "refusal": None, "reasoning": None}
        if n and reply.in_content == "data_url":
            message["content"] = "\n".join([*([reply.text] if reply.text else []), *[url] * n])
        elif n and reply.in_content == "markdown":
            images = [f"![image {i + 1}]({url})" for i in range(n)]
            message["content"] = "\n\n".join([reply.text or "Here is your image:", *images])
        elif n:
            message["images"] = [{"type": "image_url", "image_url": {"url": url}, "index": i} for i in range(n)]
        if reply.kind == "ok":
            finish, native = "stop", "STOP"
        else:
            finish, native = reply.finish_reason, reply.native_finish_reason or (reply.finish_reason or "").upper()
        prompt_tokens = _tokens(rec.prompt) + IMAGE_INPUT_TOKENS * len(rec.input_images)
        text_tokens = _tokens(reply.text) if reply.text else 0
        completion_tokens = image_tokens + text_tokens
        usage: dict = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": image_tokens},
        }
        if reply.cost is not None:
            usage |= {"cost": reply.cost, "is_byok": False}
        return {
            "id": f"gen-{int(time.time())}-{secrets.token_urlsafe(12)}",
            "provider": "Google",
            "model": reply.model or rec.model,
            "object": "chat.completion",
            "created": int(time.time()),
            "choices": [
                {
                    "logprobs": None,
                    "finish_reason": finish,
                    "native_finish_reason": native,
                    "index": 0,
                    "message": message,
                }
            ],
            "usage": usage,
        }


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeGateway(api_key=args.api_key, latency=args.latency, image_scale=args.image_scale)
    await fake.serve_forever(args.port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI-compatible image gateway on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--image-scale", type=float, default=0.125)
    parser.add_argument("--api-key", default="gw-key", help="the key to accept ('' accepts any)")
    args = parser.parse_args()
    args.api_key = args.api_key or None
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
