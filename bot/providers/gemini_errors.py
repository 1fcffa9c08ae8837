"""Gemini's API and google-auth failures, as the typed ProviderErrors the router and worker act on."""

from __future__ import annotations

import re
from typing import Any

from google.auth import exceptions as auth_errors
from google.genai import errors as genai_errors

from bot.providers.errors import (
    AuthError,
    BadRequestError,
    BillingNotEnabled,
    CredentialsError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    QuotaError,
)

_OVERLOADED_CODES = {500, 502, 503, 504}


def map_api_error(exc: genai_errors.APIError) -> ProviderError:
    code = exc.code or 0
    message = (exc.message or str(exc))[:500]
    reasons = {d.get("reason") for d in _details(exc) if isinstance(d, dict)}
    kwargs: dict[str, Any] = {"status_code": code, "request_id": _header(exc, "x-request-id")}
    detail = f"{exc.status or code}: {message}"
    # Google answers a bad key with 400 INVALID_ARGUMENT, not 401.
    if code == 401 or "API_KEY_INVALID" in reasons or "API key not valid" in message:
        return AuthError(detail, **kwargs)
    if code == 403 or exc.status == "FAILED_PRECONDITION":
        return PermissionDeniedError(detail, **kwargs)
    if code == 429 and _free_tier_zero(exc):
        return BillingNotEnabled(detail, **kwargs)
    if code == 429:
        return QuotaError(detail, retry_after=retry_delay(exc), **kwargs)
    if code in _OVERLOADED_CODES or code >= 500:
        return OverloadedError(detail, retry_after=retry_delay(exc), **kwargs)
    return BadRequestError(detail, **kwargs)


def _free_tier_zero(exc: genai_errors.APIError) -> bool:
    """A QuotaFailure naming a free-tier quota whose limit is 0: the model is not in the free
    tier and the project has no billing. The limit is an int64, so JSON sends it as a string,
    and leaves it out when it is 0."""
    for detail in _details(exc):
        if not (isinstance(detail, dict) and detail.get("@type", "").endswith("google.rpc.QuotaFailure")):
            continue
        for violation in detail.get("violations") or []:
            if (
                isinstance(violation, dict)
                and "FreeTier" in str(violation.get("quotaId", ""))
                and str(violation.get("quotaValue", 0)).strip() == "0"
            ):
                return True
    return False


def map_auth_error(exc: auth_errors.GoogleAuthError) -> ProviderError:
    """google-auth's failures: credentials that cannot be found or refreshed are the operator's
    to fix; a token service that cannot be reached (or says "retry") is passing."""
    detail = f"Google credentials: {describe(exc)}"
    if isinstance(exc, auth_errors.TransportError) or exc.retryable:
        return OverloadedError(detail)
    return CredentialsError(detail)


def retry_delay(exc: genai_errors.APIError) -> float | None:
    """The server's requested delay: RetryInfo in the error details, else Retry-After."""
    for detail in _details(exc):
        if isinstance(detail, dict) and detail.get("@type", "").endswith("google.rpc.RetryInfo"):
            match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)s\s*", str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    header = _header(exc, "retry-after")
    if header and header.strip().isdigit():
        return float(header)
    return None


def _details(exc: genai_errors.APIError) -> list[Any]:
    body = exc.details if isinstance(exc.details, dict) else {}
    found = body.get("error", body).get("details", [])
    return found if isinstance(found, list) else []


def _header(exc: genai_errors.APIError, name: str) -> str | None:
    headers = getattr(getattr(exc, "response", None), "headers", None)
    try:
        return headers.get(name) if headers is not None else None
    except Exception:  # an exotic response type must not hide the real error
        return None


def describe(exc: BaseException) -> str:
    # aiohttp's reprs carry SSL contexts and connection keys; the message is what helps.
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
