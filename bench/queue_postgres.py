"""Queue throughput on PostgreSQL: several worker processes, an instant provider.

    python bench/queue_postgres.py [--jobs 4000] [--procs 4] [--slots 8] [--url postgresql://...]

The jobs are submitted first; then the worker processes start together and the
clock runs from "go" to the last job succeeded (lease, provider call, completion
with its ledger and outbox rows; the outbox is not dispatched here). Each run
uses a throwaway schema on the server. Target (issue 8): >= 5,000 jobs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_main, verdict  # noqa: E402
from bench.queue_and_budget import NO_LIMITS, InstantProvider, request  # noqa: E402
from bot.catalog import load_catalog  # noqa: E402
from bot.service import ImagineService  # noqa: E402
from bot.store.postgres import PostgresStore  # noqa: E402
from bot.types import Accepted  # noqa: E402
from bot.worker import Worker  # noqa: E402
from policies.config import PolicyBook  # noqa: E402
from tests.support.postgres import drop_schema  # noqa: E402

TARGET_JOBS_PER_SECOND = 5000
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


async def worker_process(url: str, slots: int) -> None:
    """One worker process: ready, wait for "go" on stdin, work until stdin closes."""
    store = PostgresStore(url, max_size=slots + 2)
    await store.open()
    worker = Worker(store, InstantProvider(), load_catalog(), concurrency=slots, poll_interval=0.05)
    stop = asyncio.Event()
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    await reader.readline()  # "go"
    running = asyncio.create_task(worker.run(stop))
    await reader.read()  # EOF: the bench is done
    stop.set()
    await running
    await store.close()


async def run(args: argparse.Namespace) -> dict:
    schema = f"bench_{uuid.uuid4().hex}"
    store = PostgresStore(args.url, schema=schema)
    await store.open()
    procs: list[asyncio.subprocess.Process] = []
    try:
        service = ImagineService(store, load_catalog(), policies=PolicyBook(NO_LIMITS))
        for i in range(args.jobs):
            assert isinstance(await service.submit(request(i)), Accepted)
        child_url = f"{args.url}?options=-csearch_path%3D{schema}"
        for _ in range(args.procs):
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--worker",
                    child_url,
                    "--slots",
                    str(args.slots),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            )
        for proc in procs:
            assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
        started = time.perf_counter()
        for proc in procs:
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        # The jobs run in the worker processes: the database's counts are the only news of them here.
        while (await store.counts_by_state()).get("succeeded", 0) < args.jobs:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        counts = await store.counts_by_state()
    finally:
        for proc in procs:
            proc.stdin.close()
        for proc in procs:
            await asyncio.wait_for(proc.wait(), 60)
        await store.close()
        await drop_schema(args.url, schema)
    assert counts == {"succeeded": args.jobs}, counts
    return {
        "queue_throughput_postgres": {
            "jobs": args.jobs,
            "worker_processes": args.procs,
            "slots_per_process": args.slots,
            "seconds": round(elapsed, 3),
            "jobs_per_second": round(args.jobs / elapsed, 1),
        }
    }


def rows(results: dict) -> list[tuple]:
    r = results["queue_throughput_postgres"]
    return [
        (
            f"queue throughput (PostgreSQL, {r['worker_processes']} procs x {r['slots_per_process']} slots)",
            f"{r['jobs_per_second']} jobs/s ({r['jobs']} jobs, {r['seconds']} s)",
            f">= {TARGET_JOBS_PER_SECOND} jobs/s",
            verdict(r["jobs_per_second"] >= TARGET_JOBS_PER_SECOND),
        )
    ]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=4000)
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--url", default=DEFAULT_URL)
    p.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)  # a child worker process
    return p


if __name__ == "__main__":
    cli = parser().parse_args()
    if cli.worker:
        asyncio.run(worker_process(cli.worker, cli.slots))
    else:
        bench_main(run, parser, rows)
