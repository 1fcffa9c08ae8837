"""What a test asks for: a generation spec and a new job, with defaults a test overrides."""

from __future__ import annotations

from bot.types import GenerationSpec, NewJob


def spec(prompt: str = "a koi pond", **overrides) -> GenerationSpec:
    fields = dict(prompt=prompt, model_alias="pro", model_id="gemini-3-pro-image", aspect_ratio="1:1", size="1K")
    return GenerationSpec(**{**fields, **overrides})


def new_job(
    team: str = "T1",
    *,
    prompt: str = "a koi pond",
    max_attempts: int = 3,
    key: str | None = None,
    platform: str = "cli",
) -> NewJob:
    return NewJob(
        team=team,
        channel="C1",
        user="U1",
        platform=platform,
        kind="imagine",
        spec=spec(prompt),
        max_attempts=max_attempts,
        idempotency_key=key,
    )
