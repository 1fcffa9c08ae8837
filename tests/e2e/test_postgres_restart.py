"""PostgreSQL restarted mid-load, with real processes: a `python -m bot run` process (Slack fake,
Gemini fake) and a `python -m bot worker` work on a throwaway cluster whose postmaster is SIGKILLed while jobs are being
generated, then started again. Every job finishes once, is charged once and is posted once;
a request made while the database is down is refused with the "database unavailable" message
and nothing is admitted for it."""

from __future__ import annotations

import re
from collections import Counter

import aiohttp
import psycopg
import pytest

from bot.service import STORE_DOWN
from tests.fakes.gemini_server import FakeGemini
from tests.fakes.slack_server import FakeSlack
from tests.support.bot_process import read_log_until, start_bot, start_worker, stop_cleanly
from tests.support.pg_cluster import Cluster, why_no_cluster
from tests.support.probe import eventually
from tests.support.slack_world import World, slack_bot_env

pytestmark = pytest.mark.skipif(bool(why_no_cluster()), reason=why_no_cluster() or "")

JOBS = 8
DOWN_REQUESTS = 3
USERS = ("U1", "U2", "U3", "U4")
POLICY = "[policy]\nconfirm_above_usd = 10\nuser_concurrent_jobs = 10\nuser_images_per_day = 100\n"


@pytest.fixture
def cluster():
    cluster = Cluster()
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            cluster.remove()


async def rows(url: str, query: str) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await (await conn.execute(query)).fetchall()


async def imagine(world: World, prompt: str, user: str) -> None:
    status, body, _ = await world.command("/imagine", prompt, user=user, response_url=world.slack.response_url())
    assert status == 200, body


async def test_a_postgres_restart_mid_load_loses_nothing_and_doubles_nothing(cluster, tmp_path):
    config = tmp_path / "imagine.toml"
    config.write_text(POLICY)
    async with FakeGemini(image_scale=0.125, latency=2.0) as gemini, FakeSlack() as slack:
        for user in USERS:
            slack.add_user(user)
        env = slack_bot_env(
            slack,
            gemini,
            cluster.url,
            config,
            IMAGINE_WORKERS="3",
            IMAGINE_CACHE_TTL="0",
        )
        proc, base = await start_bot("run", env, tmp_path)
        worker = await start_worker({**env, "IMAGINE_WORKERS": "2"}, tmp_path)  # a second process at work
        # Up once it has opened the store (a worker that cannot reach it at start-up exits 5).
        await read_log_until(worker, re.compile(r"worker: \d+ worker slots on"), 30, "the worker never started")
        world = World(gemini, slack, base, proc, tmp_path / "unused.db")
        try:

            async def admitted(count: int) -> bool:
                # Admitted, and its status recorded (announce_by cleared): it may start.
                [(n,)] = await rows(cluster.url, "SELECT count(*) FROM jobs WHERE announce_by IS NULL")
                return n == count

            for n in range(JOBS - 1):
                await imagine(world, f"a koi pond #{n}", USERS[n % len(USERS)])
            await eventually(lambda: admitted(JOBS - 1), 30, what="the first jobs admitted")
            # The last job is admitted and its status posted, but the database dies before
            # the job can record where that status is.
            slack.hold("chat.postMessage")
            await imagine(world, f"a koi pond #{JOBS - 1}", USERS[0])

            def last_status_posting() -> bool:
                return any(f"#{JOBS - 1}" in str(c.args) for c in slack.calls_to("chat.postMessage"))

            await eventually(last_status_posting, 30, what="the last job's status being posted")
            await eventually(lambda: len(gemini.requests) >= 5, 30, what="five jobs being generated")
            cluster.kill()  # mid-load: five jobs leased and generating (in two processes), the rest queued
            gemini.latency = 0.2
            slack.release("chat.postMessage")

            def refusals() -> int:
                return sum(STORE_DOWN in answer for answer in world.answers())

            assert refusals() == 0
            for n, user in enumerate(USERS[:DOWN_REQUESTS]):
                status, body, _ = await world.command(
                    "/imagine", f"asked while the database is down #{n}", user=user, response_url=slack.response_url()
                )
                assert status == 200, body
            await eventually(lambda: refusals() == DOWN_REQUESTS, 30, what="every request refused as unavailable")
            async with aiohttp.ClientSession() as session, session.get(f"{base}/healthz") as health:
                assert health.status == 503 and (await health.json())["store"] is False

            await cluster.start_again()

            async def all_posted() -> bool:
                return len(slack.uploads) >= JOBS

            await eventually(all_posted, 45, interval=0.2, what=f"{JOBS} images posted")
            await world.settled()
        finally:
            for process in (worker, proc):
                await stop_cleanly(process)  # exits 0, and no traceback anywhere in its log
    jobs = await rows(cluster.url, "SELECT id, state, request::text FROM jobs ORDER BY id")
    assert len(jobs) == JOBS, jobs  # nothing admitted while the database was down
    assert {state for _, state, _ in jobs} == {"succeeded"}, jobs
    # With the default lease (120 s) an outage this short takes no job from its worker: none is
    # generated twice, so each has one settlement (a lease lost would be a second, billed call).
    settlements = await rows(cluster.url, "SELECT job_id, attempt FROM ledger WHERE entry = 'settlement'")
    settled = Counter(job for job, _ in settlements)
    assert sorted(settled) == [j for j, _, _ in jobs] and set(settled.values()) == {1}, settlements
    assert len(gemini.requests) == JOBS
    ledgered = {job for (job,) in await rows(cluster.url, "SELECT DISTINCT job_id FROM ledger")}
    assert ledgered == {j for j, _, _ in jobs}  # nothing held or charged for a refused request
    assert len(slack.uploads) == JOBS  # each posted once
    assert Counter(u.thread_ts for u in slack.uploads).most_common(1)[0][1] == 1
