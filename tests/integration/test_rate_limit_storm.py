"""A 429 storm defers jobs instead of killing them.

Google's quota is per project, so anything else on the project can set off a storm of 429s.
The route's circuit breaker then pauses it; jobs that meet the paused route wait until it
reopens (or the server's requested delay passes, whichever is later), and waiting costs no
attempt: only real calls count toward the job's attempts."""

from __future__ import annotations

from bot.providers.limits import CircuitBreaker
from bot.types import JobState
from tests.fakes.gemini_replies import error
from tests.support.jobs import NO_LIMITS
from tests.support.pipeline import RoutedPipeline

RATE_LIMITED = error(429, status="RESOURCE_EXHAUSTED", message="Resource has been exhausted", retry_delay="1s")


async def test_every_job_outlives_a_storm_of_429s(sqlite_store, fake):
    # Scaled down from a real storm: 429s for 1.5 cooldowns of the breaker (90 s against 60 s).
    fake.storm(1.5, RATE_LIMITED)
    async with RoutedPipeline(sqlite_store, fake, policy=NO_LIMITS, max_attempts=3) as p:
        p.provider.routes["gemini"].breaker = CircuitBreaker(threshold=5, cooldown=1.0)
        accepted = [await p.imagine(f"a storm-proof lighthouse {i}") for i in range(50)]
        for a in accepted:
            await p.notifier.wait_final(a.job_id)
    jobs = [await sqlite_store.get_job(a.job_id) for a in accepted]
    assert [job.state for job in jobs] == [JobState.SUCCEEDED] * 50
    # Only real calls used attempts: the 429s, one each, and no job an attempt for waiting.
    assert fake.storm_refusals >= 5  # the breaker opened
    assert sum(job.attempt - 1 for job in jobs) == fake.storm_refusals
    assert len(fake.requests) == 50 + fake.storm_refusals
