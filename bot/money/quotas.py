"""Quotas: how many images and jobs, as opposed to how much money."""

from __future__ import annotations

from dataclasses import dataclass

from policies.config import TeamPolicy


@dataclass(frozen=True)
class QuotaLimits:
    user_images_per_day: int | None
    user_concurrent_jobs: int | None
    team_queued_jobs: int | None

    @classmethod
    def of(cls, policy: TeamPolicy) -> QuotaLimits:
        return cls(policy.user_images_per_day, policy.user_concurrent_jobs, policy.team_queued_jobs)


# How each limit reads in a refusal: what it is, and when it frees up.
QUOTA_TEXT = {
    "user_images_per_day": ("You've used {current} of your {limit} images for today.", "resets {reset}"),
    "user_concurrent_jobs": (
        "You already have {current} of {limit} allowed jobs queued or running.",
        "frees up as they finish",
    ),
    "team_queued_jobs": (
        "Your team already has {current} of {limit} allowed jobs in the queue.",
        "frees up as they finish",
    ),
}
