"""The provider error taxonomy: one class per thing a user or operator acts on.

Each class carries one friendly sentence for the user (`user_message`), what
an operator needs to reproduce it (status code, request id, raw detail), and
whether trying again can help (`retryable`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from bot.types import HedgeCall, Usage


class ProviderError(Exception):
    kind: ClassVar[str] = "provider_error"
    retryable: ClassVar[bool] = False
    # The most calls a job makes when each ends in this class (None: the job's own max_attempts).
    attempts_cap: ClassVar[int | None] = None
    user_message: ClassVar[str] = "The image service failed. Please try again later."
    # What an operator should do about it (shown by `python -m bot doctor`).
    operator_fix: ClassVar[str] = "Look at the job's error detail and the bot's log."

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
        # Which route and model failed (set by the router), so the right price and billing rule apply.
        self.route: str | None = None
        self.model_alias: str | None = None
        # How long the provider call itself took (set by the router), without queueing.
        self.call_seconds: float | None = None
        # A hedged attempt's other call (set by the router), settled beside this failure.
        self.hedge: HedgeCall | None = None
        # Whether any call was made (False: every route was paused): only calls use attempts.
        self.called = True

    def __str__(self) -> str:
        code = f" (HTTP {self.status_code})" if self.status_code else ""
        return f"{self.kind}{code}: {self.detail}"


class AuthError(ProviderError):
    kind = "auth"
    operator_fix = (
        "401 / API_KEY_INVALID: the key is wrong, or of the wrong type, or its API restrictions "
        "exclude the Generative Language API. Create a key in AI Studio."
    )
    user_message = "The bot's image service key was rejected. An admin needs to check GEMINI_API_KEY."


class PermissionDeniedError(ProviderError):
    kind = "permission"
    operator_fix = "403: enable billing on the Google Cloud project, or give the key access to the Gemini API."
    user_message = (
        "The image service refused the bot's project (billing or permission). "
        "An admin needs to check the Google Cloud project."
    )


class BillingNotEnabled(ProviderError):
    """A 429 against a free-tier quota of 0: the model is not in the free tier and the
    project pays for nothing, so no wait or other Gemini model helps."""

    kind = "billing"
    operator_fix = (
        "429 with a free-tier limit of 0: billing is not enabled on the Google Cloud project, "
        "and this model (Pro Image among them) has no free tier. Enable billing on the Google "
        "Cloud project that owns GEMINI_API_KEY (Google Cloud console > Billing: link a billing "
        "account). Retries and other Gemini models cannot help until then."
    )
    user_message = (
        "The bot's Google project is not set up to pay for this image model. An admin must "
        "enable billing on the Google Cloud project."
    )


class CredentialsError(ProviderError):
    """google-auth could not find or refresh the bot's Google credentials (Vertex AI)."""

    kind = "credentials"
    operator_fix = (
        "Bad or missing Google credentials: google-auth found none, or Google refused to refresh "
        "them (revoked, expired or disabled). Run `gcloud auth application-default login`, or "
        "point GOOGLE_APPLICATION_CREDENTIALS at a valid service-account key file."
    )
    user_message = "The bot's Google credentials were rejected. An admin needs to check the bot's Google login."


class QuotaError(ProviderError):
    kind = "quota"
    retryable = True
    operator_fix = (
        "429: the Google project's quota is used up (quota is per project, not per key). Ask for "
        "more quota, or lower IMAGINE_WORKERS."
    )
    user_message = "The image service is rate-limiting the bot right now. Please try again in a minute."


class OverloadedError(ProviderError):
    kind = "overloaded"
    retryable = True
    operator_fix = "503 / timeouts: Google is overloaded. Retries cover short spells; try the flash model meanwhile."
    user_message = "The image service is overloaded right now. Please try again in a few minutes."


class AnsweredWithoutImage(ProviderError):
    """The model answered, but with no image. The answer is billed all the same:
    settlement uses the provider's reported charge when it gave one (gateways), else
    the token counts it reported."""

    def __init__(self, detail: str, *, reason: str, usage: Usage | None = None, **kwargs) -> None:
        super().__init__(detail, **kwargs)
        self.reason = reason  # the finish or block reason, e.g. IMAGE_SAFETY, MAX_TOKENS
        self.usage = usage
        self.cost_usd: Decimal | None = None


class BlockedError(AnsweredWithoutImage):
    """The model or its filters refused on policy grounds: another try would refuse again."""

    kind = "blocked"
    operator_fix = "The model's safety filters refused prompts: nothing to fix unless it happens a lot."
    user_message = "The image model declined this request (content policy). Try rewording the prompt."


class NoImageError(AnsweredWithoutImage):
    """The model stopped without an image for a reason other than policy (ran out of output
    tokens, a malformed answer, text only): a second try often works, a third rarely does."""

    kind = "no_image"
    retryable = True
    attempts_cap = 2
    operator_fix = (
        "The model finished without an image (MAX_TOKENS, MALFORMED_RESPONSE, IMAGE_OTHER, OTHER, "
        "NO_IMAGE or text only): not a policy refusal. Each job gets one more try, and both calls are "
        "billed for their tokens; the job's finish_reason says which. Nothing to fix unless it "
        "happens a lot."
    )
    user_message = "The image model finished without making an image this time. Please try again, or reword the prompt."


class BadRequestError(ProviderError):
    kind = "bad_request"
    operator_fix = "400: the request was invalid; check model names and options in IMAGINE_CONFIG."
    user_message = "The image service rejected the request as invalid. Try a different prompt or options."


class InputTooLarge(BadRequestError):
    """Raised before the call: an input image is over the route's inline limit (Vertex AI: 7 MB)."""

    kind = "input_too_large"
    operator_fix = (
        "An input image was over Vertex AI's 7 MB inline limit; the Developer API (GEMINI_API_KEY) takes larger ones."
    )
    user_message = "An attached image is over the image service's 7 MB limit. Attach a smaller image and try again."


class TooBigForMemory(ProviderError):
    """Raised before the call: the job's image needs more memory than the worker process allows
    for images in flight (IMAGINE_MEMORY_MB), so it could never run there. Nothing was called."""

    kind = "too_big_for_memory"
    operator_fix = (
        "A job's image (its model and size: the catalog's memory_bytes) needs more than IMAGINE_MEMORY_MB; "
        "raise IMAGINE_MEMORY_MB on the worker processes to at least that figure."
    )
    user_message = (
        "This image is too large for the bot's image memory limit, so it was not made and nothing was "
        "charged. Ask for a smaller size (say --size 2K), or ask an operator to raise the limit."
    )

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.called = False


class InvalidProviderImage(ProviderError):
    kind = "invalid_image"
    retryable = True
    user_message = "The image service sent back a broken image. Please try again."
    operator_fix = "The provider returned bytes that are not an image; retries usually cure it."


class BatchNotDone(ProviderError):
    """The Batch API gave up on a whole batch (expired after 48 h, failed or cancelled): nothing was billed."""

    kind = "batch_not_done"
    user_message = (
        "Google's Batch lane did not finish this image in time, so nothing was charged. "
        "Run it again without --batch or --relax for a quick answer."
    )
    operator_fix = "Batches expire after 48 h when Google's batch capacity is short; check the batch in AI Studio."


class TooBigForBatch(BadRequestError):
    """A relaxed job whose images are too big for any batch Google takes inline."""

    kind = "too_big_for_batch"
    user_message = (
        "This request's images are too big for the Batch lane, so it was not run and nothing "
        "was charged. Run it again without --batch or --relax."
    )
    operator_fix = (
        "Google takes at most about 20 MB of inlined requests per batch; new relaxed requests "
        "that big are refused at submit, so this one was queued before that check."
    )


class BudgetUsedUp(ProviderError):
    """Not raised: the class a job gets when billed attempts used up its budget before a retry."""

    kind = "budget_exhausted"
    user_message = "The team's budget ran out while this image was being retried. Nothing more was charged."
    operator_fix = "A route bills failed calls and they used up the budget; see `python -m bot usage --all-entries`."


class UnpricedCall(ProviderError):
    """Not raised: the class a job gets when a call that ran could not be priced.

    Configuration is checked at start-up so this should never happen; when it
    does, the job is not retried (a retry would be another unpriced call)."""

    kind = "unpriced"
    user_message = (
        "This image could not be priced, so I stopped instead of posting it. The bot's "
        "operator has been alerted to review it; please don't retry it for now."
    )
    operator_fix = (
        "A model or route without a price ran (see the 'unpriced, needs review' alert and the "
        "job's repro): add its price to IMAGINE_CONFIG and settle the call by hand."
    )


class LaneUnavailable(ProviderError):
    """Not raised: the class of a Flex, Batch or Priority job cancelled because its lane is gone."""

    kind = "lane_unavailable"
    user_message = (
        "The lane this request asked for (--relax, --batch or --priority) is no longer available "
        "on this bot, so this queued request was cancelled and nothing was charged. Run it again "
        "without that option."
    )
    operator_fix = (
        "The Flex, Batch and Priority lanes need a Gemini API key (not Vertex AI, not a gateway "
        "alone); their jobs queued while it was set were cancelled at start-up."
    )


class Cancelled(ProviderError):
    """Not raised: the class of a queued job cancelled from the dashboard's queue page."""

    kind = "cancelled"
    user_message = "Cancelled from the dashboard before it started; nothing was charged."
    operator_fix = "Nothing to do: its requester or a moderator cancelled it."


class NotAnnounced(ProviderError):
    """Not raised: the class of a job whose adapter never confirmed it had told the user."""

    kind = "not_announced"
    user_message = "This request was cancelled before it started, and nothing was charged. Please try again."
    operator_fix = (
        "The adapter could not post the job's status message (or died first); see its log. The job never ran."
    )


class WorkerLost(ProviderError):
    """Not raised: the class a job gets when its worker died on every attempt."""

    kind = "lease_expired"
    user_message = "Something went wrong on our side while making this image. Please try again."
    operator_fix = "Workers died or hung mid-job (see their logs: out of memory? killed?)."


ERROR_KINDS: dict[str, type[ProviderError]] = {
    cls.kind: cls
    for cls in (
        ProviderError,
        AuthError,
        PermissionDeniedError,
        BillingNotEnabled,
        CredentialsError,
        QuotaError,
        OverloadedError,
        BlockedError,
        NoImageError,
        BadRequestError,
        InputTooLarge,
        TooBigForMemory,
        InvalidProviderImage,
        BatchNotDone,
        TooBigForBatch,
        BudgetUsedUp,
        WorkerLost,
        UnpricedCall,
        LaneUnavailable,
        Cancelled,
        NotAnnounced,
    )
}


def error_class(kind: str | None) -> type[ProviderError]:
    return ERROR_KINDS.get(kind or "", ProviderError)


def user_message_for(kind: str | None) -> str:
    """The friendly sentence for an error class stored on a job."""
    return ERROR_KINDS.get(kind or "", ProviderError).user_message
