"""The team's queue as the dashboard shows it, and cancelling from it.

Everyone in a team sees the team's jobs waiting and running, with their place in the
queue (the store's `position`, 1 = next in its lane) and what each holds: the hold is
the estimate the request was admitted with. Only a job's requester, or a moderator of
its team, may cancel it, and only while it is queued: its hold is then released at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.access import Caller, acts_for, off_allow_list
from bot.providers.errors import Cancelled
from bot.store.ports import Store, final_delivery_key
from bot.types import Job, JobState, NewDelivery, RefusalReason, Refused
from policies.config import PolicyBook

# A page of the queue: a team's queued jobs are capped by its quota (100 by default).
QUEUE_LIMIT = 200


@dataclass(frozen=True)
class QueueEntry:
    job: Job
    position: int | None  # 1 = next in its lane; None while it runs
    may_cancel: bool  # queued, and the caller asked for it or moderates the team


class QueueBoard:
    def __init__(self, store: Store, policies: PolicyBook) -> None:
        self._store = store
        self._policies = policies

    async def entries(self, caller: Caller) -> list[QueueEntry] | Refused:
        """The caller's team's jobs running, then queued by position."""
        if (refused := off_allow_list(self._policies, caller.own_team, caller.platform)) is not None:
            return refused
        return [
            QueueEntry(job, position, job.state is JobState.QUEUED and self._acts_for(caller, job))
            for key in caller.keys  # a linked team's jobs queued before the link are its own too
            for job, position in await self._store.team_queue(key, QUEUE_LIMIT)
        ]

    async def cancel(self, job_id: int, caller: Caller) -> Job | Refused:
        """Cancel a queued job for its requester or a moderator; returns it as it was (with
        the hold now released). Anything else is refused and changes nothing."""
        if (refused := off_allow_list(self._policies, caller.own_team, caller.platform)) is not None:
            return refused
        job = await self._store.get_job(job_id)
        if job is None or job.team not in caller.keys:  # another team's job is as good as none
            return Refused(RefusalReason.NOT_FOUND, f"There is no job #{job_id} in this team's queue.")
        if not self._acts_for(caller, job):
            return Refused(
                RefusalReason.NOT_MODERATOR,
                f"Job #{job_id} was asked for by {job.user}: only they or a moderator can cancel it.",
            )
        # Its chat status message (or the playground's page) is told, through the outbox.
        tell = NewDelivery(final_delivery_key(job_id), "failure", {"error_class": Cancelled.kind})
        if job.state is JobState.QUEUED and await self._store.cancel(job_id, tell=tell):
            return job
        now = await self._store.get_job(job_id)  # it may have started (or gone) since it was read
        return Refused(RefusalReason.INVALID_REQUEST, _too_late(job_id, now.state if now else job.state))

    def _acts_for(self, caller: Caller, job: Job) -> bool:
        return acts_for(self._policies, caller, job.team, job.user)


def _too_late(job_id: int, state: JobState) -> str:
    if state is JobState.CANCELLED:
        return f"Job #{job_id} was already cancelled, and its hold released then."
    if state.terminal:
        return f"Job #{job_id} has already finished ({state.value}); there is nothing to cancel."
    return f"Job #{job_id} has already started, so it can't be cancelled; it is charged what it costs."
