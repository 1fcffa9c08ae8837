"""Gemini image models through the official google-genai async client."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import google.auth.credentials
from google import genai
from google.auth import exceptions as auth_errors
from google.genai import errors as genai_errors
from google.genai import types
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from bot.providers.base import BatchItem, BatchStatus
from bot.providers.errors import (
    BadRequestError,
    BlockedError,
    InputTooLarge,
    NoImageError,
    OverloadedError,
    ProviderError,
)
from bot.providers.gemini_answer import read_answer
from bot.providers.gemini_errors import describe, map_api_error, map_auth_error

# Still importable from here, where it lived before gemini_errors.py.
from bot.providers.gemini_errors import retry_delay as retry_delay
from bot.types import GenerationResult, GenerationSpec, InputImage, Lane, Usage

# Google's REST docs and the image models live on v1beta; the SDK defaults to v1.
API_VERSION = "v1beta"
# The async client runs on aiohttp when it is installed (it is a dependency).
_NETWORK_ERRORS = (TimeoutError, ConnectionError, aiohttp.ClientError)
# Finish and block reasons that are refusals on policy grounds: asking again gets the same
# answer. Any other reason without an image (MAX_TOKENS, MALFORMED_RESPONSE, IMAGE_OTHER,
# OTHER, NO_IMAGE, text only...) is worth one more try. From google.genai.types.FinishReason
# (google-genai 3.6.1); MODEL_ARMOR is Vertex's prompt and answer screening.
POLICY_REASONS = frozenset(
    {
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "RECITATION",
        "IMAGE_RECITATION",
        "BLOCKLIST",
        "SPII",
        "MODEL_ARMOR",
    }
)
T = TypeVar("T")
# Gemini 3.x image models are served only from Vertex's global endpoint; a region answers 404.
VERTEX_DEFAULT_LOCATION = "global"
# Vertex's limit per inline image ("7 MB" on its image-understanding page; its other file
# limits there are MiB, e.g. 30 MB = 31457280 bytes).
VERTEX_INLINE_IMAGE_BYTES = 7 * 1024 * 1024
_CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# Flex answers "Minutes (1-15 min target)" (ai.google.dev/gemini-api/docs/optimization): its
# calls wait that long and a minute more before they count as lost.
FLEX_TIMEOUT = 16 * 60.0
_SERVICE_TIERS = {Lane.FLEX: types.ServiceTier.FLEX, Lane.PRIORITY: types.ServiceTier.PRIORITY}


def vertex_serves(model_id: str, location: str) -> bool:
    """Whether Vertex AI serves the model at the location: the Gemini 3.x image models are
    served only at `global` (elsewhere a call gets 404 NOT_FOUND), older models regionally too."""
    return location == VERTEX_DEFAULT_LOCATION or not model_id.startswith("gemini-3")


class GeminiProvider:
    name = "gemini"

    def __init__(
        self,
        client: genai.Client,
        *,
        timeout_seconds: float,
        inline_image_limit: int | None = None,
        flex_timeout_seconds: float = FLEX_TIMEOUT,
        service_tiers: bool = True,
    ) -> None:
        self._client = client
        self._timeout = timeout_seconds
        # A Flex answer may take its whole 1-15 minute target; Standard's timeout would cut it off.
        self._flex_timeout = max(flex_timeout_seconds, timeout_seconds)
        # Whether this route takes generateContent's service_tier (the Flex and Priority lanes).
        self.service_tiers = service_tiers
        # The largest image the route takes inline, in bytes (None: only the request's own cap).
        self._inline_image_limit = inline_image_limit

    @classmethod
    def create(
        cls,
        *,
        api_key: str | None,
        base_url: str | None,
        vertexai: bool,
        timeout_seconds: float,
        flex_timeout_seconds: float = FLEX_TIMEOUT,
        project: str | None = None,
        location: str = VERTEX_DEFAULT_LOCATION,
        credentials_file: str | os.PathLike[str] | None = None,
    ) -> GeminiProvider:
        """A Developer API client (api_key), or a Vertex AI one (project, location, and OAuth
        credentials from credentials_file or Application Default Credentials).

        Everything is passed explicitly: the SDK would otherwise read GOOGLE_* and GEMINI_API_KEY
        from os.environ, which a `.env` file never reaches, and an api_key on Vertex would
        silently switch it to Vertex's API-key ("express") mode.
        """
        http_options = types.HttpOptions(
            base_url=base_url,
            # Vertex has its own versioning (the SDK uses v1beta1); the Developer API is pinned.
            api_version=None if vertexai else API_VERSION,
            timeout=int(timeout_seconds * 1000),  # the SDK takes milliseconds
            # One attempt: without retry_options the SDK silently re-sends after a dropped
            # connection (ServerDisconnected, ClientOSError), and Google may bill both calls
            # while the ledger sees one. The worker's own retry policy is the only one.
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        if not vertexai:
            client = genai.Client(api_key=api_key, vertexai=False, http_options=http_options)
            return cls(client, timeout_seconds=timeout_seconds, flex_timeout_seconds=flex_timeout_seconds)
        if api_key is not None:
            raise ValueError("an API key is not sent to Vertex AI: it would switch the SDK to express mode")
        if not project:
            raise ValueError("Vertex AI needs a project")
        client = genai.Client(
            vertexai=True,
            project=project,
            location=location,
            credentials=_load_credentials(credentials_file),
            http_options=http_options,
        )
        # Vertex sells Flex and Priority as PayGo options of its own, not this request field.
        return cls(
            client, timeout_seconds=timeout_seconds, inline_image_limit=VERTEX_INLINE_IMAGE_BYTES, service_tiers=False
        )

    async def generate(self, spec: GenerationSpec, inputs: Sequence[InputImage]) -> GenerationResult:
        self._check_inline_sizes(inputs)
        contents, config = _request(spec, inputs)
        timeout = self._timeout
        if spec.lane in _SERVICE_TIERS:
            if not self.service_tiers:
                raise BadRequestError(f"this route does not take the {spec.lane.value} service tier")
            config.service_tier = _SERVICE_TIERS[spec.lane]
        if spec.lane is Lane.FLEX:
            # Per request: the client's other HTTP options (base URL, one attempt) still apply.
            timeout = self._flex_timeout
            config.http_options = types.HttpOptions(timeout=int(timeout * 1000))
        # The SDK's own timeout covers one HTTP exchange; this one covers
        # the whole call, so a hung connection cannot hold a worker forever.
        # The raw body, not the SDK's parsed answer: read_answer decodes each image once, and
        # nothing else keeps the JSON text or the base64 alive beside the bytes.
        config.should_return_http_response = True
        raw = await self._call(
            self._client.aio.models.generate_content(model=spec.model_id, contents=contents, config=config),
            "network error or timeout talking to Gemini",
            timeout=timeout,
        )
        del contents  # the request's parts (the inputs' bytes stay the caller's)
        if raw.sdk_http_response is None:
            raise OverloadedError("Gemini answered without a response body")
        response = read_answer(raw.sdk_http_response, vertexai=self._client.vertexai)
        del raw
        result = parse_response(response, spec.model_id)
        served = served_lane(response) if spec.lane in _SERVICE_TIERS else None
        return dataclasses.replace(result, served_lane=served) if served not in (None, spec.lane) else result

    def _check_inline_sizes(self, inputs: Sequence[InputImage]) -> None:
        """Refuse before sending what the route would refuse: the call would fail the same way
        on every retry, and a refused call tells the user less than this does."""
        limit = self._inline_image_limit
        too_big = [len(img.data) for img in inputs if limit is not None and len(img.data) > limit]
        if too_big:
            raise InputTooLarge(
                f"an input image is {max(too_big)} bytes; Vertex AI takes at most {limit} bytes per inline image"
            )

    async def _call(self, call: Awaitable[T], network_failure: str, *, timeout: float | None = None) -> T:
        """One API call, its errors mapped onto the provider taxonomy."""
        try:
            return await asyncio.wait_for(call, timeout=(timeout or self._timeout) + 5)
        except genai_errors.APIError as exc:
            raise map_api_error(exc) from exc
        except auth_errors.GoogleAuthError as exc:
            # On Vertex AI the SDK loads and refreshes credentials inside the call and lets
            # google-auth's errors through as they are.
            raise map_auth_error(exc) from exc
        except _NETWORK_ERRORS as exc:
            raise OverloadedError(f"{network_failure}: {describe(exc)}") from exc

    # -- Batch API (the relaxed lane) ----------------------------------------

    async def submit_batch(self, model_id: str, items: Sequence[BatchItem], display_name: str) -> str:
        requests = []
        for item in items:
            contents, config = _request(item.spec, item.inputs)
            requests.append(types.InlinedRequest(contents=contents, config=config))
        batch = await self._call(
            self._client.aio.batches.create(
                model=model_id, src=requests, config=types.CreateBatchJobConfig(display_name=display_name)
            ),
            "network error or timeout creating a Gemini batch",
        )
        if not batch.name:
            raise OverloadedError("Gemini accepted the batch but did not name it")
        return batch.name

    async def find_batch(self, display_name: str) -> str | None:
        async def find() -> str | None:
            async for batch in await self._client.aio.batches.list():
                if batch.display_name == display_name:
                    return batch.name
            return None

        return await self._call(find(), "network error or timeout listing Gemini batches")

    async def cancel_batch(self, name: str) -> None:
        await self._call(
            self._client.aio.batches.cancel(name=name), "network error or timeout cancelling a Gemini batch"
        )

    async def batch_status(self, name: str, model_id: str, requests: int) -> BatchStatus:
        batch = await self._call(
            self._client.aio.batches.get(name=name), "network error or timeout polling a Gemini batch"
        )
        state = _BATCH_STATES.get(_enum_name(batch.state), "pending")
        if state != "succeeded":
            return BatchStatus(state)
        responses = (batch.dest.inlined_responses if batch.dest else None) or []
        if len(responses) != requests:
            raise OverloadedError(f"batch {name} answered {len(responses)} of {requests} requests")
        return BatchStatus(state, tuple(_batch_answer(r, model_id) for r in responses))

    async def list_models(self) -> list[str]:
        async def names() -> list[str]:
            # The SDK types every field optional; a listed model always has its name.
            return [m.name async for m in await self._client.aio.models.list() if m.name]

        return await self._call(names(), "cannot reach Gemini")

    async def close(self) -> None:
        await self._client.aio.aclose()


def _load_credentials(path: str | os.PathLike[str] | None) -> google.auth.credentials.Credentials | None:
    """The credentials in the file, or None to let the SDK find Application Default Credentials.
    Loaded here because GOOGLE_APPLICATION_CREDENTIALS set in `.env` never reaches google-auth.
    Each type has its own loader (google-auth deprecates the generic one: it trusts any type)."""
    if path is None:
        return None
    info = json.loads(Path(path).read_text(encoding="utf-8"))
    kind = info.get("type") if isinstance(info, dict) else None
    if kind == "service_account":
        return service_account.Credentials.from_service_account_info(info, scopes=[_CLOUD_PLATFORM_SCOPE])
    if kind == "authorized_user":
        return user_credentials.Credentials.from_authorized_user_info(info, scopes=[_CLOUD_PLATFORM_SCOPE])
    if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS") == os.fspath(path):
        return None  # other types (workload identity...) are Application Default Credentials' to read
    raise ValueError(
        f"credentials of type {kind!r} are read by Application Default Credentials: export "
        "GOOGLE_APPLICATION_CREDENTIALS in the environment instead of setting it in .env"
    )


def _request(
    spec: GenerationSpec, inputs: Sequence[InputImage]
) -> tuple[list[types.Content], types.GenerateContentConfig]:
    parts = [types.Part.from_bytes(data=img.data, mime_type=img.mime) for img in inputs]
    parts.append(types.Part.from_text(text=spec.prompt))
    config = types.GenerateContentConfig(
        # TEXT too: when the model declines it says why in text.
        response_modalities=["TEXT", "IMAGE"],
        # No tools are declared; this also keeps the SDK from logging "AFC is enabled" per call.
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        image_config=types.ImageConfig(
            aspect_ratio=spec.aspect_ratio,
            image_size=spec.size if spec.send_image_size else None,
        ),
    )
    return [types.Content(role="user", parts=parts)], config


_BATCH_STATES = {
    "JOB_STATE_PENDING": "pending",
    "JOB_STATE_QUEUED": "pending",
    "JOB_STATE_RUNNING": "running",
    "JOB_STATE_SUCCEEDED": "succeeded",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_CANCELLED": "cancelled",
    "JOB_STATE_EXPIRED": "expired",
}


_GRPC_TO_HTTP = {3: 400, 16: 401, 7: 403, 5: 404, 8: 429, 13: 500, 14: 503, 4: 504, 2: 500}


def _batch_answer(answer: types.InlinedResponse, model_id: str) -> GenerationResult | ProviderError:
    """One request's outcome inside a finished batch: its image, or why it has none."""
    if answer.error is not None:
        # A google.rpc.Status: its code is gRPC's (8 = RESOURCE_EXHAUSTED), not HTTP's.
        code = _GRPC_TO_HTTP.get(answer.error.code or 2, 500)
        body = {"error": {"code": code, "message": answer.error.message or ""}}
        return map_api_error(genai_errors.APIError(code, body))
    if answer.response is None:
        return OverloadedError("the batch has no answer for this request")
    try:
        return parse_response(answer.response, model_id)
    except ProviderError as exc:
        return exc


def parse_response(response: types.GenerateContentResponse, model_id: str) -> GenerationResult:
    usage = usage_from(response.usage_metadata)
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        reason = _enum_name(feedback.block_reason)
        raise BlockedError(
            f"prompt blocked: {reason} {feedback.block_reason_message or ''}".strip(), reason=reason, usage=usage
        )
    if not response.candidates:
        raise NoImageError("the model returned no candidates", reason="NO_IMAGE", usage=usage)
    candidate = response.candidates[0]
    parts = (candidate.content.parts if candidate.content else None) or []
    answer = [p for p in parts if not p.thought]  # thought parts are drafts, not the answer
    images = [
        InputImage(data=p.inline_data.data, mime=p.inline_data.mime_type or "image/png")
        for p in answer
        if p.inline_data and p.inline_data.data and (p.inline_data.mime_type or "").startswith("image/")
    ]
    text = " ".join(p.text.strip() for p in answer if p.text and p.text.strip()) or None
    if not images:
        finish = _enum_name(candidate.finish_reason) if candidate.finish_reason else "STOP"
        reason = "NO_IMAGE" if finish == "STOP" else finish
        detail = f"no image in the response (finish_reason={finish})" + (f": {text}" if text else "")
        refusal = BlockedError if finish in POLICY_REASONS else NoImageError
        raise refusal(detail[:1000], reason=reason, usage=usage)
    return GenerationResult(
        image=images[-1],
        model_version=response.model_version or model_id,
        usage=usage,
        text=text,
        response_id=response.response_id,
    )


def served_lane(response: types.GenerateContentResponse) -> Lane | None:
    """The tier Google served a call at, from its x-gemini-service-tier header (None: not said).
    Priority past the project's limit is served, and billed, at Standard (priority-inference page)."""
    headers = getattr(response.sdk_http_response, "headers", None) or {}
    value = next((v for k, v in headers.items() if k.lower() == "x-gemini-service-tier"), None)
    try:
        return Lane(str(value).lower()) if value else None
    except ValueError:
        return None


def usage_from(meta: types.GenerateContentResponseUsageMetadata | None) -> Usage | None:
    """The counts Google bills by. For image models candidatesTokenCount holds the image and
    the text together but only IMAGE is itemised, so the text is what is left; thinking is
    reported apart (thoughtsTokenCount)."""
    if meta is None:
        return None
    image = sum(
        d.token_count or 0
        for d in (meta.candidates_tokens_details or [])
        if d.modality is not None and _enum_name(d.modality) == "IMAGE"
    )
    output = meta.candidates_token_count or 0
    return Usage(
        prompt_tokens=meta.prompt_token_count or 0,
        output_tokens=output,
        image_tokens=image,
        text_tokens=max(0, output - image),
        thoughts_tokens=meta.thoughts_token_count or 0,
        total_tokens=meta.total_token_count or 0,
    )


def _enum_name(value: Any) -> str:
    return getattr(value, "name", None) or str(value)
