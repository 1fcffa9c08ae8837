"""A worker process killed mid-generation loses nothing: its lease runs out,
another worker process finishes the job, and it is stored and announced once."""

from __future__ import annotations

import asyncio
import signal
import sqlite3

from bot.store.sqlite import SQLiteStore
from bot.types import JobState
from tests.fakes.gemini_server import FakeGemini
from tests.support.bot_process import bot_env, start_worker
from tests.support.jobs import new_job
from tests.support.probe import eventually


def worker_env(fake: FakeGemini, db: str) -> dict[str, str]:
    return bot_env(
        GEMINI_API_KEY="test-key",
        GEMINI_BASE_URL=fake.url,
        DATABASE_URL=f"sqlite:///{db}",
        IMAGINE_LEASE_SECONDS="2",
        IMAGINE_WORKERS="1",
    )


async def test_sigkilled_worker_job_is_finished_once_by_another(tmp_path):
    db = str(tmp_path / "crash.db")
    store = SQLiteStore(db)
    await store.open()
    job_id = (await store.submit(new_job(platform="slack"), [])).job_id
    async with FakeGemini(image_scale=0.125, latency=60) as fake:
        env = worker_env(fake, db)
        first = await start_worker(env, str(tmp_path))

        async def called() -> bool:
            return len(fake.requests) == 1

        await eventually(called, 30, interval=0.1)
        first.send_signal(signal.SIGKILL)
        await first.wait()

        fake.latency = 0
        second = await start_worker(env, str(tmp_path))
        try:

            async def done() -> bool:
                job = await store.get_job(job_id)
                return job.state is JobState.SUCCEEDED

            await eventually(done, 30, interval=0.1)
        finally:
            second.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(second.communicate(), 30)
        assert second.returncode == 0, stderr.decode()
        assert b"Traceback" not in stderr
    job = await store.get_job(job_id)
    assert job.attempt == 2 and len(fake.requests) == 2
    await store.close()
    conn = sqlite3.connect(db)
    assert (
        conn.execute("SELECT COUNT(*) FROM images WHERE job_id = ? AND role = 'output'", (job_id,)).fetchone()[0] == 1
    )
    finals = conn.execute("SELECT kind FROM outbox WHERE job_id = ? AND key LIKE '%:final'", (job_id,)).fetchall()
    assert finals == [("result",)]
