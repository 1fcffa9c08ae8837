"""What a test scripts the fake Gemini to answer: ok(), error(), finish(), no_image(), hang(),
slow(), drop() and the rest, with the Tokens an answer reports."""

from __future__ import annotations

from dataclasses import dataclass, replace


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


def ok(
    *, text: str | None | object = _KEEP, model_version: str | None = None, images: int = 1, usage: Tokens = Tokens()
) -> Reply:
    """A success. Without ``text`` the answer has the model family's usual text part
    (Pro and Flash say a sentence, 2.5 Flash Image nothing); ``text=None`` sends none."""
    if text is _KEEP:
        return Reply("ok", model_version=model_version, images=images, usage=usage, default_text=True)
    return Reply("ok", text=text, model_version=model_version, images=images, usage=usage)  # type: ignore[arg-type]


def error(
    code: int,
    *,
    status: str | None = None,
    message: str | None = None,
    retry_delay: str | None = None,
    retry_after: int | None = None,
) -> Reply:
    return Reply("error", code=code, status=status, message=message, retry_delay=retry_delay, retry_after=retry_after)


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
