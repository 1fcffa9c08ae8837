"""Scale-out on one PostgreSQL: several `python -m bot worker` processes share
one queue and one ledger; submits from several processes share one budget;
a worker killed with SIGKILL mid-job loses nothing and charges nothing twice."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections import Counter
from decimal import Decimal

import pytest

from bot.catalog import load_catalog
from bot.money import to_micros
from bot.money.budgets import Budget, Period, Scope
from bot.service import ImagineService
from bot.store.postgres import PostgresStore
from bot.types import Accepted, ImagineRequest, JobState
from policies.config import PolicyBook
from tests.fakes.gemini_server import FakeGemini
from tests.support.bot_process import bot_env, start_worker
from tests.support.jobs import NO_LIMITS
from tests.support.postgres import drop_schema, unique_schema
from tests.support.probe import eventually


@pytest.fixture
async def pg(postgres_url):
    """A throwaway schema: the test's own store, and the URL that points worker processes at it."""
    schema = unique_schema()
    store = PostgresStore(postgres_url, schema=schema)
    await store.open()  # creates the schema and migrates it
    url = f"{postgres_url}?options=-csearch_path%3D{schema}"
    yield store, url
    await store.close()
    await drop_schema(postgres_url, schema)


def service(store) -> ImagineService:
    return ImagineService(store, load_catalog(), policies=PolicyBook(NO_LIMITS))


def request(n: int) -> ImagineRequest:
    return ImagineRequest(team="T1", channel="C1", user=f"U{n % 7}", platform="cli", prompt=f"a koi pond #{n}")


async def start_pg_worker(fake: FakeGemini, url: str, cwd, *, slots: int = 4, lease: float = 30):
    env = bot_env(
        GEMINI_API_KEY="k",
        GEMINI_BASE_URL=fake.url,
        DATABASE_URL=url,
        IMAGINE_WORKERS=str(slots),
        IMAGINE_LEASE_SECONDS=str(lease),
        IMAGINE_CACHE_TTL="0",
    )
    return await start_worker(env, cwd)


async def stop(procs) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()[-3000:]
        assert b"Traceback" not in err, err.decode()[-3000:]


async def settlements(store) -> Counter:
    return Counter(r["job_id"] for r in await store.ledger() if r["entry"] == "settlement")


async def test_four_worker_processes_drain_a_thousand_jobs_each_exactly_once(pg, tmp_path):
    store, url = pg
    svc = service(store)
    jobs = [await svc.submit(request(n)) for n in range(1000)]
    assert all(isinstance(j, Accepted) for j in jobs)
    async with FakeGemini(image_scale=0.01) as fake:
        workers = [await start_pg_worker(fake, url, tmp_path) for _ in range(4)]
        try:

            async def drained() -> bool:
                return (await store.counts_by_state()).get("succeeded", 0) == 1000

            await eventually(drained, 180, interval=0.2)
        finally:
            await stop(workers)
        assert len(fake.requests) == 1000  # no job was generated twice
        assert Counter(r.prompt for r in fake.requests) == Counter(f"a koi pond #{n}" for n in range(1000))
    assert await store.counts_by_state() == {"succeeded": 1000}
    assert set((await settlements(store)).values()) == {1} and len(await settlements(store)) == 1000
    finals = [d for d in await store.claim_deliveries(["cli"], 5000, 60) if d.kind == "result"]
    assert sorted(d.job_id for d in finals) == sorted(j.job_id for j in jobs)


# The policy (NO_LIMITS) comes as JSON in argv[4], so the script itself needs no formatting.
SUBMITTER = """
import asyncio, json, sys
from bot.catalog import load_catalog
from bot.service import ImagineService
from bot.store.postgres import PostgresStore
from bot.types import Accepted, ImagineRequest
from policies.config import PolicyBook

async def main(url, proc, n, policy):
    store = PostgresStore(url, max_size=10)
    await store.open()
    svc = ImagineService(store, load_catalog(), policies=PolicyBook(json.loads(policy)))
    outcomes = await asyncio.gather(*(svc.submit(ImagineRequest(
        team="T1", channel="C1", user=f"P{proc}U{i}", platform="cli", prompt=f"pond{proc} #{i:04d}"))
        for i in range(n)))
    await store.close()
    print(json.dumps(sum(isinstance(o, Accepted) for o in outcomes)))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
"""


async def test_two_hundred_submits_from_four_processes_admit_exactly_the_budget(pg, tmp_path):
    store, url = pg
    # A probe prices the submitters' requests (same model and prompt length), then is cancelled.
    probe = await service(store).submit(
        ImagineRequest(team="T1", channel="C1", user="U1", platform="cli", prompt="pond9 #9999")
    )
    estimate = probe.estimate_usd
    assert await store.cancel(probe.job_id)
    await store.set_budget(Budget("T1", Scope.TEAM, "", to_micros(estimate * 10), Period.MONTH, 0.8), "admin")
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SUBMITTER,
            url,
            str(p),
            "50",
            json.dumps(NO_LIMITS),
            env=bot_env(),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for p in range(4)
    ]
    outputs = [await asyncio.wait_for(p.communicate(), 60) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()[-3000:]
    assert sum(json.loads(out) for out, _ in outputs) == 10
    [status] = await store.budget_statuses("T1", "C1", "U1")
    assert status.reserved_micros == to_micros(estimate * 10) and status.spent_micros == 0
    assert Decimal(status.reserved_micros) <= status.budget.limit_micros


async def test_a_sigkilled_worker_loses_no_job_and_charges_none_twice(pg, tmp_path):
    store, url = pg
    svc = service(store)
    jobs = [await svc.submit(request(n)) for n in range(6)]
    async with FakeGemini(image_scale=0.01, latency=60) as fake:
        victim = await start_pg_worker(fake, url, tmp_path, slots=3, lease=2)

        async def generating() -> bool:
            return len(fake.requests) == 3

        await eventually(generating, 30, interval=0.2)
        victim.send_signal(signal.SIGKILL)  # mid-generation, three jobs leased
        await victim.wait()
        fake.latency = 0
        survivors = [await start_pg_worker(fake, url, tmp_path, slots=2, lease=2) for _ in range(2)]
        try:

            async def done() -> bool:
                return (await store.counts_by_state()).get("succeeded", 0) == 6

            await eventually(done, 60, interval=0.2)
        finally:
            await stop(survivors)
    for accepted in jobs:
        job = await store.get_job(accepted.job_id)
        assert job.state is JobState.SUCCEEDED
    counted = await settlements(store)
    assert len(counted) == 6 and set(counted.values()) == {1}  # each charged once
    releases = Counter(r["job_id"] for r in await store.ledger() if r["entry"] == "release")
    assert set(releases.values()) == {1}
