"""The provider error taxonomy: one class per thing a user or operator acts on.

Each class carries one friendly sentence for the user (`user_message`), what
an operator needs to reproduce it (status code, request id, raw detail), and
whether trying again can help (`retryable`).
"""

from __future__ import annotations

from typing import ClassVar

from bot.types import Usage


class ProviderError(Exception):
    kind: ClassVar[str] = "provider_error"
    retryable: ClassVar[bool] = False
    user_message: ClassVar[str] = "The image service failed. Please try again later."

    def __init__(
        self,
        detail: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        # Google's messages (and models' refusal texts) carry newlines; one
        # line keeps logs greppable and the CLI's error a single line.
        detail = " ".join(detail.split())
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code
        self.request_id = request_id
        # The server's requested delay in seconds (RetryInfo or Retry-After), if it gave one.
        self.retry_after = retry_after

    def __str__(self) -> str:
        code = f" (HTTP {self.status_code})" if self.status_code else ""
        return f"{self.kind}{code}: {self.detail}"


class AuthError(ProviderError):
    kind = "auth"
    user_message = "The bot's image service key was rejected. An admin needs to check GEMINI_API_KEY."


class PermissionDeniedError(ProviderError):
    kind = "permission"
    user_message = (
        "The image service refused the bot's project (billing or permission). "
        "An admin needs to check the Google Cloud project."
    )


class QuotaError(ProviderError):
    kind = "quota"
    retryable = True
    user_message = "The image service is rate-limiting the bot right now. Please try again in a minute."


class OverloadedError(ProviderError):
    kind = "overloaded"
    retryable = True
    user_message = "The image service is overloaded right now. Please try again in a few minutes."


class BlockedError(ProviderError):
    """The model declined: safety filters, or it answered without an image."""

    kind = "blocked"
    user_message = "The image model declined this request (content policy). Try rewording the prompt."

    def __init__(self, detail: str, *, reason: str, usage: Usage | None = None, **kwargs) -> None:
        super().__init__(detail, **kwargs)
        self.reason = reason
        # Blocked calls can still be billed; settlement uses this.
        self.usage = usage


class BadRequestError(ProviderError):
    kind = "bad_request"
    user_message = "The image service rejected the request as invalid. Try a different prompt or options."


ERROR_KINDS: dict[str, type[ProviderError]] = {
    cls.kind: cls
    for cls in (ProviderError, AuthError, PermissionDeniedError, QuotaError,
                OverloadedError, BlockedError, BadRequestError)
}


def user_message_for(kind: str | None) -> str:
    """The friendly sentence for an error class stored on a job."""
    return ERROR_KINDS.get(kind or "", ProviderError).user_message
