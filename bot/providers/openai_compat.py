"""Image models through an OpenAI-compatible gateway (OpenRouter style), with the openai SDK.

One chat completion per image: ``modalities: ["image", "text"]`` and an
``image_config`` go in ``extra_body``; the image comes back as a data URL in
``choices[0].message.images`` (a field the SDK does not declare, so it sits in
``message.model_extra`` as plain dicts), or, on some gateways, inside
``message.content``. ``usage.cost`` is the gateway's charge when it reports one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import openai
from openai.types.chat import ChatCompletionContentPartParam

from bot.catalog import GatewayInfo
from bot.money import reported_usd
from bot.providers.errors import (
    AuthError,
    BadRequestError,
    BlockedError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    QuotaError,
)
from bot.types import GenerationResult, GenerationSpec, InputImage, Usage

# A whole data URL (message.images[i].image_url.url): strict, nothing around it.
_DATA_URL = re.compile(r"data:(image/[A-Za-z0-9.+-]+)(?:;[A-Za-z0-9=._-]+)*;base64,([A-Za-z0-9+/]+={0,2})")
# Data URLs inside free text, optionally as a markdown image: ![alt](data:image/png;base64,...).
_DATA_URL_IN_TEXT = re.compile(
    r"!\[[^\]\n]*\]\(\s*(?P<md>data:image/[A-Za-z0-9.+-]+(?:;[A-Za-z0-9=._-]+)*;base64,[A-Za-z0-9+/]+={0,2})\s*\)"
    r"|(?P<bare>data:image/[A-Za-z0-9.+-]+(?:;[A-Za-z0-9=._-]+)*;base64,[A-Za-z0-9+/]+={0,2})"
)
# finish reasons (OpenAI's normalised one, or the upstream's native one) that mean "filtered".
_FILTERED = re.compile(r"CONTENT_FILTER|SAFETY|PROHIBITED|BLOCKLIST|SPII|RECITATION|MODERATION|GUARDRAIL")
_NETWORK_ERRORS = (TimeoutError, ConnectionError)
_MAX_DETAIL = 500


class OpenAICompatProvider:
    def __init__(
        self,
        *,
        name: str,
        client: openai.AsyncOpenAI,
        models: dict[str, str],
        timeout_seconds: float,
        gateway: GatewayInfo | None = None,
    ) -> None:
        self.name = name
        self._client = client
        self._models = dict(models)
        self._timeout = timeout_seconds
        # The catalog's data for this gateway: its size names and per-model prices.
        self._gateway = gateway

    @classmethod
    def create(
        cls,
        *,
        name: str,
        base_url: str,
        api_key: str,
        models: dict[str, str],
        timeout_seconds: float,
        gateway: GatewayInfo | None = None,
    ) -> OpenAICompatProvider:
        client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            max_retries=0,  # the worker retries, with the server's Retry-After
            timeout=timeout_seconds,
            # An explicit Authorization header: otherwise an Authorization line in
            # OPENAI_CUSTOM_HEADERS (meant for OpenAI) wins and goes to the gateway.
            default_headers={"Authorization": f"Bearer {api_key}"},
        )
        # The SDK fills these from OPENAI_ORG_ID / OPENAI_PROJECT_ID and sends them as
        # headers; they belong to OpenAI, not to this gateway.
        client.organization = None
        client.project = None
        return cls(name=name, client=client, models=models, timeout_seconds=timeout_seconds, gateway=gateway)

    def gateway_model(self, alias: str) -> str:
        """The gateway's name for one of our model aliases, or BadRequestError."""
        try:
            return self._models[alias]
        except KeyError:
            served = ", ".join(sorted(self._models)) or "none"
            raise BadRequestError(f"route {self.name} does not serve model '{alias}' (it serves: {served})") from None

    async def generate(self, spec: GenerationSpec, inputs: Sequence[InputImage]) -> GenerationResult:
        model = self.gateway_model(spec.model_alias)
        content: list[ChatCompletionContentPartParam] = [
            {
                "type": "image_url",
                "image_url": {"url": f"data:{img.mime};base64,{base64.b64encode(img.data).decode('ascii')}"},
            }
            for img in inputs
        ]
        content.append({"type": "text", "text": spec.prompt})
        image_config = {"aspect_ratio": spec.aspect_ratio}
        if spec.send_image_size:
            image_config["image_size"] = self._gateway.size_name(spec.size) if self._gateway else spec.size
        try:
            # The SDK's timeout covers one HTTP read; this one the whole call.
            completion = await asyncio.wait_for(
                self._client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": content}],
                    extra_body={"modalities": ["image", "text"], "image_config": image_config},
                ),
                timeout=self._timeout + 5,
            )
        except openai.APIError as exc:
            raise self._scrubbed(map_api_error(exc, route=self.name)) from exc
        except _NETWORK_ERRORS as exc:
            raise OverloadedError(f"network error or timeout talking to {self.name}: {_describe(exc)}") from exc
        try:
            return parse_completion(completion, spec, self._gateway)
        except ProviderError as exc:
            self._scrubbed(exc)  # in place: the same error goes up, key cut out
            raise

    async def list_models(self) -> list[str]:
        try:
            return [m.id async for m in self._client.models.list()]
        except openai.APIError as exc:
            raise self._scrubbed(map_api_error(exc, route=self.name)) from exc
        except _NETWORK_ERRORS as exc:
            raise OverloadedError(f"cannot reach {self.name}: {_describe(exc)}") from exc

    async def close(self) -> None:
        await self._client.close()

    def _scrubbed(self, exc: ProviderError) -> ProviderError:
        """The error with our API key cut out of its detail (some gateways echo a rejected key)."""
        key = getattr(self._client, "api_key", None)
        if isinstance(key, str) and len(key) >= 4 and key in exc.detail:
            exc.detail = exc.detail.replace(key, "[redacted]")
            exc.args = (exc.detail,)
        return exc


# --- responses -----------------------------------------------------------------------------------


def parse_completion(completion: Any, spec: GenerationSpec, gateway: GatewayInfo | None = None) -> GenerationResult:
    """The final image of a chat completion, or the ProviderError it amounts to."""
    if not isinstance(completion, openai.BaseModel):
        # The SDK hands back a str when a 200 is not JSON (a proxy's HTML page...).
        raise OverloadedError(
            f"the gateway answered with something that is not JSON: {_one_line(str(completion), 200)!r}"
        )
    request_id = getattr(completion, "_request_id", None)
    top_error = _extra(completion).get("error")
    if top_error is not None:  # OpenRouter: HTTP 200 with {"error": {...}} when the upstream failed
        raise error_from_body(top_error, request_id=request_id, in_200=True)
    usage = usage_from(getattr(completion, "usage", None))
    choices = getattr(completion, "choices", None) or []
    if not choices:
        raise BlockedError("the gateway returned no choices", reason="NO_IMAGE", usage=usage, request_id=request_id)
    choice = choices[0]
    choice_error = _extra(choice).get("error")
    if choice_error is not None:
        raise error_from_body(choice_error, request_id=request_id, in_200=True)
    message = getattr(choice, "message", None)
    images, text = _images_and_text(message)
    if not images:
        finish = getattr(choice, "finish_reason", None)
        native = _extra(choice).get("native_finish_reason")
        reason = _block_reason(finish, native)
        refusal = getattr(message, "refusal", None)
        said = " ".join(t for t in (text, refusal if isinstance(refusal, str) else None) if t)
        detail = f"no image in the response (finish_reason={finish}, native_finish_reason={native})" + (
            f": {said}" if said else ""
        )
        blocked = BlockedError(detail[:1000], reason=reason, usage=usage, request_id=request_id)
        # What the gateway says it charged for the refusal, if anything: that is what gets settled.
        blocked.cost_usd = _reported_cost(getattr(completion, "usage", None))
        raise blocked
    mime, data = images[-1]
    return GenerationResult(
        image=InputImage(data=data, mime=mime),
        model_version=getattr(completion, "model", None) or spec.model_id,
        usage=usage,
        text=text,
        response_id=getattr(completion, "id", None),
        cost_usd=cost
        if (cost := _reported_cost(getattr(completion, "usage", None))) is not None
        else _table_price(gateway, spec),
    )


def decode_data_url(url: Any) -> tuple[str, bytes] | None:
    """(mime, bytes) of an ``image/*`` base64 data URL; None for anything else or malformed."""
    if not isinstance(url, str):
        return None
    match = _DATA_URL.fullmatch(url.strip())
    if not match:
        return None
    try:
        data = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        return None
    return (match.group(1).lower(), data) if data else None


def _images_and_text(message: Any) -> tuple[list[tuple[str, bytes]], str | None]:
    """Decoded images in answer order and the model's text (data URLs cut out)."""
    if message is None:
        return [], None
    images: list[tuple[str, bytes]] = []
    for item in _as_list(_field(message, "images")):
        if found := decode_data_url(_image_url(item)):
            images.append(found)
    texts: list[str] = []
    in_content: list[tuple[str, bytes]] = []
    content = _field(message, "content")
    # Some gateways send content as a list of parts rather than a string.
    for part in [content] if isinstance(content, str) else _as_list(content):
        if isinstance(part, str):
            text = part
        elif _field(part, "type") == "image_url":
            if found := decode_data_url(_image_url(part)):
                in_content.append(found)
            continue
        else:
            text = _field(part, "text")
        if not isinstance(text, str):
            continue
        for match in _DATA_URL_IN_TEXT.finditer(text):
            if found := decode_data_url(match.group("md") or match.group("bare")):
                in_content.append(found)
        # http(s) images stay in the text: they are never fetched.
        texts.append(_DATA_URL_IN_TEXT.sub(" ", text))
    said = " ".join(" ".join(texts).split()) or None
    return images or in_content, said


def _image_url(item: Any) -> Any:
    # {"type": "image_url", "image_url": {"url": ...}}; a few gateways flatten it to a string.
    image_url = _field(item, "image_url")
    return image_url if isinstance(image_url, str) else _field(image_url, "url")


def _block_reason(finish: Any, native: Any) -> str:
    for value in (finish, native):
        if isinstance(value, str) and _FILTERED.search(value.upper()):
            return value.upper()
    return "NO_IMAGE"


def usage_from(usage: Any) -> Usage | None:
    if usage is None:
        return None
    details = _field(usage, "completion_tokens_details")
    output = _int(_field(usage, "completion_tokens"))
    image = _int(_field(details, "image_tokens"))
    reasoning = _int(_field(details, "reasoning_tokens"))
    prompt = _int(_field(usage, "prompt_tokens"))
    return Usage(
        prompt_tokens=prompt,
        output_tokens=output,
        image_tokens=image,
        text_tokens=max(0, output - image - reasoning),
        thoughts_tokens=reasoning,
        total_tokens=_int(_field(usage, "total_tokens")) or prompt + output,
    )


def _reported_cost(usage: Any) -> Decimal | None:
    """``usage.cost`` (OpenRouter's charge in USD), which the SDK keeps as an undeclared extra;
    bot.money decides what counts as a usable figure."""
    return reported_usd(_extra(usage).get("cost") if usage is not None else None)


def _table_price(gateway: GatewayInfo | None, spec: GenerationSpec) -> Decimal | None:
    """The gateway's own price for this model at this size (never another model's)."""
    return gateway.price(spec.model_alias, spec.size) if gateway is not None else None


# --- errors --------------------------------------------------------------------------------------


def map_api_error(exc: openai.APIError, *, route: str = "gateway") -> ProviderError:
    """An openai SDK error as our taxonomy."""
    if isinstance(exc, openai.APITimeoutError):
        return OverloadedError(f"timed out waiting for {route}")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        return OverloadedError(f"cannot reach {route}: {_describe(cause) if cause else exc.message}")
    if not isinstance(exc, openai.APIStatusError):  # e.g. a response that failed validation
        return OverloadedError(f"{route} sent an unusable response: {_one_line(str(exc), _MAX_DETAIL)}")
    headers = exc.response.headers
    request_id = exc.request_id or headers.get("x-request-id")
    body = (
        exc.body
        if isinstance(exc.body, Mapping)
        else {"message": exc.body if isinstance(exc.body, str) else exc.message}
    )
    return _by_status(exc.status_code, body, route=route, request_id=request_id, retry_after=retry_after(headers))


def error_from_body(
    error: Any, *, request_id: str | None = None, route: str = "gateway", in_200: bool = False
) -> ProviderError:
    """An ``{"error": {"code", "message", "metadata"}}`` object sent with HTTP 200 (OpenRouter)."""
    body: Mapping[str, Any] = error if isinstance(error, Mapping) else {"message": str(error)}
    try:
        status = int(body["code"])
    except (KeyError, TypeError, ValueError):
        status = 502  # no numeric code: the upstream failed somehow
    return _by_status(
        status,
        body,
        route=route,
        request_id=request_id,
        retry_after=None,
        note=" (in a 200 response)" if in_200 else "",
    )


def _by_status(
    status: int,
    body: Mapping[str, Any],
    *,
    route: str,
    request_id: str | None,
    retry_after: float | None,
    note: str = "",
) -> ProviderError:
    message = _message(body)
    detail = _one_line(f"{route} {status}{note}: {message}", _MAX_DETAIL)
    kwargs: dict[str, Any] = {"status_code": status, "request_id": request_id}
    metadata = _metadata(body)
    if status == 401:
        return AuthError(detail, **kwargs)
    if status == 402:
        return PermissionDeniedError(
            _one_line(
                f"{route} 402: insufficient credits on the {route} account or key; add credits or raise "
                f"the key's limit ({message})",
                _MAX_DETAIL,
            ),
            **kwargs,
        )
    if status == 403:
        if metadata.get("flagged_input") is not None or metadata.get("reasons"):
            # OpenRouter's moderation: a refusal of the prompt, not of the bot's account.
            return BlockedError(detail, reason="MODERATION", **kwargs)
        return PermissionDeniedError(detail, **kwargs)
    if status == 429:
        return QuotaError(detail, retry_after=retry_after, **kwargs)
    if status == 408 or status >= 500:  # 408: the gateway gave up waiting on the model
        return OverloadedError(detail, retry_after=retry_after, **kwargs)
    return BadRequestError(detail, **kwargs)


def retry_after(headers: Any) -> float | None:
    """The server's requested delay in seconds: retry-after-ms, or Retry-After (seconds or a date)."""
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None:
            return max(0.0, float(millis) / 1000)
    except (TypeError, ValueError):
        pass
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


def _message(body: Mapping[str, Any]) -> str:
    # OpenAI-style "message"; some proxies (FastAPI-based ones) say "detail" instead.
    message = next((v for v in (body.get("message"), body.get("detail")) if isinstance(v, str) and v), "(no message)")
    metadata = _metadata(body)
    # OpenRouter's "Provider returned error" says little; the upstream's own words are in metadata.
    provider, raw = metadata.get("provider_name"), metadata.get("raw")
    if provider:
        message += f" [provider {provider}]"
    if raw:
        message += f" {_one_line(raw if isinstance(raw, str) else str(raw), 300)}"
    reasons = metadata.get("reasons")
    if reasons:
        message += f" reasons={reasons}"
    return message


# --- helpers -------------------------------------------------------------------------------------


def _metadata(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """An error body's "metadata" object (OpenRouter's upstream details), or an empty one."""
    metadata = body.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _extra(model: Any) -> dict[str, Any]:
    """Fields the SDK does not declare (pydantic's model_extra), as the gateway sent them."""
    extra = getattr(model, "model_extra", None)
    return extra if isinstance(extra, dict) else {}


def _field(obj: Any, name: str) -> Any:
    """A declared attribute, an undeclared extra, or a dict key: gateways' fields arrive as any of these."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    value = getattr(obj, name, None)
    return value if value is not None else _extra(obj).get(name)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
