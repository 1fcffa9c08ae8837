"""The peer and the floor beside our PostgreSQL queue (bench/queue_postgres.py), same server, same run.

- Peer: PgQueuer (a dedicated PostgreSQL job queue from PyPI, psycopg driver, its tables installed
  as shipped: logged, so as durable as ours) running no-op jobs in the same number of worker
  processes as ours. The jobs are enqueued first; the clock runs from "go" to an empty queue table
  (PgQueuer deletes a job's row when it logs the job done).
- Floor: raw single-row-update transactions, pgbench's simplest loop: `UPDATE ... SET n = n + 1
  WHERE id = $1` in autocommit with random ids, from the same processes and connections per
  process as our workers have slots. Each job of ours needs several such commits, so this is the
  physical limit that any queue on this server sits under.

Each runs in the caller's throwaway schema (the child processes get it as their search_path). Run
as a script, this module is one child process: `--peer URL` or `--floor URL`; it prints "ready",
waits for "go" on stdin, and then works until stdin closes (peer) or for --seconds (floor).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Awaitable, Callable

import psycopg

FLOOR_ROWS = 10_000
PEER_ENTRYPOINT = "noop"


# -- the parent's side ----------------------------------------------------------------------------------


async def install_peer(url: str, jobs: int) -> None:
    """PgQueuer's tables in the schema of `url`'s search_path, and `jobs` no-op jobs queued."""
    from pgqueuer import PsycopgDriver, Queries

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        queries = Queries(PsycopgDriver(conn))
        await queries.install(create_schema=False)
        for start in range(0, jobs, 1000):
            n = min(1000, jobs - start)
            await queries.enqueue([PEER_ENTRYPOINT] * n, [None] * n, [0] * n)


async def peer_left(conn: psycopg.AsyncConnection) -> int:
    """The peer's jobs not yet done."""
    cur = await conn.execute("SELECT count(*) FROM pgqueuer")
    row = await cur.fetchone()
    assert row is not None
    return row[0]


async def install_floor(url: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE floor_rows (id integer PRIMARY KEY, n bigint NOT NULL DEFAULT 0)")
        await conn.execute("INSERT INTO floor_rows (id) SELECT generate_series(1, %s)", (FLOOR_ROWS,))
        await conn.execute("VACUUM ANALYZE floor_rows")


async def start_children(argv: list[str], count: int) -> list[asyncio.subprocess.Process]:
    """`count` child processes (`python <argv>`), each ready and waiting for "go"."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(count)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
    return procs


async def go(procs: list[asyncio.subprocess.Process]) -> None:
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()


async def stop_children(procs: list[asyncio.subprocess.Process]) -> None:
    for proc in procs:
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def peer_throughput(child_url: str, jobs: int, procs: int, batch: int) -> dict:
    """PgQueuer's no-op jobs per second with `procs` worker processes."""
    await install_peer(child_url, jobs)
    children = await start_children([__file__, "--peer", child_url, "--batch", str(batch)], procs)
    try:
        async with await psycopg.AsyncConnection.connect(child_url, autocommit=True) as conn:
            started = time.perf_counter()
            await go(children)
            while await peer_left(conn):  # noqa: ASYNC110 (the jobs run in other processes)
                await asyncio.sleep(0.02)
            elapsed = time.perf_counter() - started
    finally:
        await stop_children(children)
    return {
        "library": "pgqueuer " + _version("pgqueuer"),
        "jobs": jobs,
        "worker_processes": procs,
        "batch_size": batch,
        "seconds": round(elapsed, 3),
        "jobs_per_second": round(jobs / elapsed, 1),
    }


async def floor_throughput(child_url: str, procs: int, connections: int, seconds: float) -> dict:
    """Single-row-update commits per second from `procs` processes x `connections` each."""
    await install_floor(child_url)
    argv = [__file__, "--floor", child_url, "--connections", str(connections), "--seconds", str(seconds)]
    children = await start_children(argv, procs)
    rates = []
    try:
        await go(children)
        for proc in children:
            assert proc.stdout is not None
            commits, elapsed = (await asyncio.wait_for(proc.stdout.readline(), seconds + 60)).split()
            rates.append(int(commits) / float(elapsed))
    finally:
        await stop_children(children)
    return {
        "worker_processes": procs,
        "connections_per_process": connections,
        "seconds": seconds,
        "transactions_per_second": round(sum(rates), 1),
    }


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


# -- the children ---------------------------------------------------------------------------------------


async def _ready_then(work: Callable[[asyncio.StreamReader], Awaitable[None]]) -> None:
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    await reader.readline()  # "go"
    await work(reader)


async def peer_worker(url: str, batch: int) -> None:
    """One PgQueuer worker process running no-op jobs until stdin closes."""
    from pgqueuer import PsycopgDriver, Queries, QueueManager
    from pgqueuer.models import Job

    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    qm = QueueManager(Queries(PsycopgDriver(conn)))

    @qm.entrypoint(PEER_ENTRYPOINT)
    async def noop(job: Job) -> None:
        pass

    async def work(reader: asyncio.StreamReader) -> None:
        running = asyncio.create_task(qm.run(batch_size=batch, dequeue_timeout=_seconds(1)))
        await reader.read()  # EOF: the bench is done
        qm.shutdown.set()
        await running

    await _ready_then(work)
    await conn.close()


async def floor_worker(url: str, connections: int, seconds: float) -> None:
    """`connections` loops of single-row autocommit updates for `seconds`; prints "<commits> <elapsed>"."""
    conns = [await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in range(connections)]
    commits = 0

    async def loop(conn: psycopg.AsyncConnection, deadline: float) -> None:
        nonlocal commits
        rng = random.Random()
        while time.perf_counter() < deadline:
            await conn.execute("UPDATE floor_rows SET n = n + 1 WHERE id = %s", (rng.randint(1, FLOOR_ROWS),))
            commits += 1

    async def work(reader: asyncio.StreamReader) -> None:
        started = time.perf_counter()
        await asyncio.gather(*(loop(c, started + seconds) for c in conns))
        print(commits, time.perf_counter() - started, flush=True)
        await reader.read()

    await _ready_then(work)
    for conn in conns:
        await conn.close()


def _seconds(s: float):
    from datetime import timedelta

    return timedelta(seconds=s)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peer", metavar="URL")
    p.add_argument("--floor", metavar="URL")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--seconds", type=float, default=3.0)
    cli = p.parse_args()
    if cli.peer:
        asyncio.run(peer_worker(cli.peer, cli.batch))
    elif cli.floor:
        asyncio.run(floor_worker(cli.floor, cli.connections, cli.seconds))
    else:
        p.error("a child process: --peer URL or --floor URL")
