"""The Store contract for the queue page: a team's jobs running and queued, with the same
positions `position` gives and the holds they carry."""

from __future__ import annotations

from dataclasses import replace

from bot.types import JobState, Lane
from tests.support.jobs import new_job, spec
from tests.support.store_contract import ADMISSION, team_budget

QUEUED, RUNNING = JobState.QUEUED, JobState.RUNNING


async def test_a_team_s_queue_is_its_running_then_its_queued_jobs_by_position(store):
    for team in ("T1", "T2"):
        await store.set_budget(replace(team_budget(), team=team), "mod")

    async def submit(team: str, prompt: str, lane: Lane = Lane.STANDARD) -> int:
        job = replace(new_job(team, prompt=prompt), spec=spec(prompt, lane=lane))
        return (await store.submit(job, [], ADMISSION)).job_id

    first, second = await submit("T1", "a0"), await submit("T1", "a1")
    theirs = await submit("T2", "theirs")  # fair order: one round behind T1's first, ahead of its second
    third = await submit("T1", "a2")
    relaxed = await submit("T1", "relaxed", Lane.FLEX)  # a lane of its own: first in it
    leased = await store.lease("w", 60, flex=False)
    assert leased is not None and leased.id == first

    board = await store.team_queue("T1", 100)
    assert [(j.id, j.state, p) for j, p in board] == [
        (first, RUNNING, None),
        (relaxed, QUEUED, 1),
        (second, QUEUED, 2),
        (third, QUEUED, 3),
    ]
    assert [p for j, p in board[1:]] == [await store.position(j.id) for j, _ in board[1:]]
    assert all(j.held_micros == ADMISSION.estimate_micros and j.team == "T1" for j, _ in board)
    assert [(j.id, p) for j, p in await store.team_queue("T2", 100)] == [(theirs, 1)]
    assert [j.id for j, _ in await store.team_queue("T1", 2)] == [first, relaxed]

    assert await store.cancel(second)
    assert [(j.id, p) for j, p in await store.team_queue("T1", 100)] == [(first, None), (relaxed, 1), (third, 2)]
    assert await store.team_queue("T3", 100) == []
