"""Whether a failed attempt is tried again, when, and what it costs: one pure decision.

The worker builds a RetryDecision from the error and the job, and hands it to
Store.fail, which applies the same rule (store.ports.after_failure) to the
attempts the job has left. Kept free of I/O so every branch is tested without
a database or a provider.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from bot.money.admission import Charge
from bot.store.ports import after_failure
from bot.types import JobState, Lane


@dataclass(frozen=True)
class RetryDecision:
    retryable: bool  # worth another attempt, if the job has attempts left
    retry_at: float  # when that attempt may start
    delay: float  # seconds from now until then
    final_state: JobState  # the state the job ends in when it is not retried
    state: JobState  # what the job becomes: queued again, dead, or its final state
    charge: Charge | None  # what this attempt is billed (None: free)
    refund_attempt: bool = False  # no call was made (every route paused): the attempt is not counted

    @property
    def retry(self) -> bool:
        return self.state is JobState.QUEUED

    @property
    def billed(self) -> bool:
        return self.charge is not None


def retry_decision(
    *,
    retryable: bool,
    blocked: bool,
    attempts_cap: int | None,
    retry_after: float | None,
    attempt: int,
    max_attempts: int,
    lane: Lane,
    created_at: float,
    now: float,
    deadline: float,
    relaxed_deadline: float,
    retry_base: float,
    retry_cap: float,
    charge: Charge | None = None,
    jitter: Callable[[float, float], float] | None = None,
    called: bool = True,
) -> RetryDecision:
    """Decide a failed attempt's fate.

    `retry_after` is the server's requested delay; without one the delay is a full
    jitter backoff (`jitter(0, min(cap, base * 2**(attempt-1)))`), which spreads a burst
    of failed jobs instead of retrying in lockstep. `deadline` applies to the Standard
    and Priority lanes, `relaxed_deadline` to Flex and Batch (Flex may wait for the Batch
    lane, so its retries get that lane's days too). An attempt that made no call (`called`
    False: every route of the chain was paused) is given back: waiting costs no attempt."""
    if not called:
        attempt -= 1
    if retryable and attempts_cap is not None and attempt >= attempts_cap:
        # Some failures earn only so many calls per job (a "no image" answer: one more try).
        retryable = False
    delay = retry_after
    if delay is None:
        delay = (jitter or random.uniform)(0, min(retry_cap, retry_base * 2 ** (attempt - 1)))
    final_state = JobState.BLOCKED if blocked else JobState.FAILED
    limit = relaxed_deadline if lane in (Lane.BATCH, Lane.FLEX) else deadline
    if retryable and now + delay > created_at + limit:
        # Past the job's deadline a retry would answer too late to matter.
        retryable, final_state = False, JobState.DEAD
    return RetryDecision(
        retryable=retryable,
        retry_at=now + delay,
        delay=delay,
        final_state=final_state,
        state=after_failure(retryable, attempt, max_attempts, final_state),
        charge=charge,
        refund_attempt=not called,
    )
