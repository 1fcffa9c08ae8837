"""Queue throughput on PostgreSQL: several worker processes, an instant provider, beside a peer and a floor.

    python bench/queue_postgres.py [--jobs 4000] [--procs 4] [--slots 8] [--url postgresql://...]
                                   [--peer-jobs 10000] [--floor-seconds 3] [--no-peer]

The jobs are submitted first; then the worker processes start together and the
clock runs from "go" to the last job succeeded (lease, provider call, completion
with its ledger and outbox rows; the outbox is not dispatched here). Each run
uses a throwaway schema on the server.

In the same run and schema (bench/pg_peer.py): the peer, PgQueuer running no-op jobs in as
many worker processes, and the floor, raw single-row-update commits per second from as many
processes and connections. Target (issue 17): >= 1,500 jobs/s and >= 1/3 of the peer's.
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
from bench.pg_peer import floor_throughput, go, peer_throughput, start_children, stop_children  # noqa: E402
from bench.queue_and_budget import NO_LIMITS, InstantProvider, request  # noqa: E402
from bot.catalog import load_catalog  # noqa: E402
from bot.service import ImagineService  # noqa: E402
from bot.store.postgres import PostgresStore  # noqa: E402
from bot.types import Accepted  # noqa: E402
from bot.worker import Worker  # noqa: E402
from policies.config import PolicyBook  # noqa: E402
from tests.support.postgres import drop_schema  # noqa: E402

TARGET_JOBS_PER_SECOND = 1500
TARGET_SHARE_OF_PEER = 1 / 3
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
    child_url = f"{args.url}?options=-csearch_path%3D{schema}"
    try:
        service = ImagineService(store, load_catalog(), policies=PolicyBook(NO_LIMITS))
        for i in range(args.jobs):
            assert isinstance(await service.submit(request(i)), Accepted)
        procs = await start_children([__file__, "--worker", child_url, "--slots", str(args.slots)], args.procs)
        try:
            started = time.perf_counter()
            await go(procs)
            # The jobs run in the worker processes: the database's counts are the only news of them here.
            while (await store.counts_by_state()).get("succeeded", 0) < args.jobs:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
            counts = await store.counts_by_state()
        finally:
            await stop_children(procs)
        # One after the other, not together: each has the server and the cores to itself.
        if not args.no_peer:
            peer = await peer_throughput(child_url, args.peer_jobs, args.procs, args.peer_batch)
            floor = await floor_throughput(child_url, args.procs, args.slots, args.floor_seconds)
    finally:
        await store.close()
        await drop_schema(args.url, schema)
    assert counts == {"succeeded": args.jobs}, counts
    ours = {
        "jobs": args.jobs,
        "worker_processes": args.procs,
        "slots_per_process": args.slots,
        "seconds": round(elapsed, 3),
        "jobs_per_second": round(args.jobs / elapsed, 1),
    }
    if not args.no_peer:
        ours["share_of_peer"] = round(ours["jobs_per_second"] / peer["jobs_per_second"], 3)
        ours["peer"], ours["floor"] = peer, floor
    return {"queue_throughput_postgres": ours}


def rows(results: dict) -> list[tuple]:
    r = results["queue_throughput_postgres"]
    peer, floor = r.get("peer"), r.get("floor")
    figure = f"{r['jobs_per_second']:,.0f} jobs/s ({r['jobs']} jobs, {r['seconds']} s)"
    met = r["jobs_per_second"] >= TARGET_JOBS_PER_SECOND
    if peer:
        figure += f"; {r['share_of_peer']:.2f}x the peer"
        met = met and r["share_of_peer"] >= TARGET_SHARE_OF_PEER
    out = [
        (
            f"queue throughput (PostgreSQL, {r['worker_processes']} procs x {r['slots_per_process']} slots)",
            figure,
            f">= {TARGET_JOBS_PER_SECOND:,} jobs/s and >= 1/3 of the peer's",
            verdict(met),
        )
    ]
    if peer and floor:
        out += [
            (
                f"  peer: {peer['library']}, no-op jobs, {peer['worker_processes']} procs, batch {peer['batch_size']}",
                f"{peer['jobs_per_second']:,.0f} jobs/s ({peer['jobs']} jobs, {peer['seconds']} s)",
                "(the peer, same run)",
                "",
            ),
            (
                f"  floor: single-row UPDATE commits, {floor['worker_processes']} procs x "
                f"{floor['connections_per_process']} connections",
                f"{floor['transactions_per_second']:,.0f} tx/s; ours {_per_job(floor, r)}, "
                f"the peer {_per_job(floor, peer)} of them per job",
                "(the floor, same run)",
                "",
            ),
        ]
    return out


def _per_job(floor: dict, queue: dict) -> str:
    """How many floor commits' time one job takes: the queue's distance from the physical limit."""
    return f"{floor['transactions_per_second'] / queue['jobs_per_second']:.2f}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=4000)
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--slots", type=int, default=8)
    p.add_argument("--url", default=DEFAULT_URL)
    p.add_argument("--peer-jobs", type=int, default=10000, help="no-op jobs for the peer (PgQueuer)")
    p.add_argument("--peer-batch", type=int, default=10, help="the peer's dequeue batch (its default)")
    p.add_argument("--floor-seconds", type=float, default=3.0, help="how long the floor's update loops run")
    p.add_argument("--no-peer", action="store_true", help="our queue alone, without the peer and the floor")
    p.add_argument("--worker", metavar="URL", help=argparse.SUPPRESS)  # a child worker process
    return p


if __name__ == "__main__":
    cli = parser().parse_args()
    if cli.worker:
        asyncio.run(worker_process(cli.worker, cli.slots))
    else:
        bench_main(run, parser, rows)
