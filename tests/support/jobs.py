"""What a test asks for: a generation spec and a new job, with defaults a test overrides."""

from __future__ import annotations

from bot.types import GenerationSpec, NewJob

# A team policy (PolicyBook's input) with no quotas and a default team budget no run comes
# near: for tests and benchmarks that measure the queue, not the limits.
NO_LIMITS = {
    "user_images_per_day": None,
    "user_concurrent_jobs": None,
    "team_queued_jobs": None,
    "confirm_above_usd": None,
    "default_team_budget_usd": 1_000_000,
}


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
