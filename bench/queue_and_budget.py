"""Benchmarks (not tests): queue throughput on SQLite and budget exactness.

    python bench/queue_and_budget.py [--jobs 2000] [--workers 8]

Prints a table and merges its figures into bench/results.json.
Targets (issue 8): >= 2,000 jobs/s on SQLite in one process; overshoot exactly $0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    CountingNotifier,
    bench_main,
    tiny_png,
    verdict,
)
from bot.catalog import load_catalog  # noqa: E402
from bot.money import from_micros  # noqa: E402
from bot.notify import OutboxDispatcher  # noqa: E402
from bot.service import Caller, ImagineService  # noqa: E402
from bot.store.sqlite import SQLiteStore  # noqa: E402
from bot.types import Accepted, GenerationResult, ImagineRequest, InputImage, Refused, Usage  # noqa: E402
from bot.worker import Worker  # noqa: E402
from policies.config import PolicyBook  # noqa: E402
from tests.support.jobs import NO_LIMITS  # noqa: E402

TARGET_JOBS_PER_SECOND = 2000


class InstantProvider:
    """Answers at once, so the figure is the bot's own overhead, not a model's."""

    name = "instant"

    def __init__(self) -> None:
        self.png = tiny_png()

    async def generate(self, spec, inputs):
        return GenerationResult(
            InputImage(self.png, "image/png"),
            spec.model_id,
            Usage(prompt_tokens=10, image_tokens=1120, output_tokens=1120),
        )

    async def close(self) -> None:
        pass


def request(i: int, **kw) -> ImagineRequest:
    return ImagineRequest(team=f"T{i % 10}", channel="C", user=f"U{i}", platform="bench", prompt=f"p{i:05d}", **kw)


async def queue_throughput(jobs: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(f"{tmp}/bench.db")
        await store.open()
        catalog = load_catalog()
        service = ImagineService(store, catalog, policies=PolicyBook(NO_LIMITS))
        for i in range(jobs):
            outcome = await service.submit(request(i))
            assert isinstance(outcome, Accepted), outcome
        notifier = CountingNotifier(jobs)
        dispatcher = OutboxDispatcher(store, [notifier], poll_interval=0.05, batch=50)
        worker = Worker(
            store, InstantProvider(), catalog, concurrency=workers, poll_interval=0.05, on_delivery=dispatcher.wake
        )
        stop = asyncio.Event()
        started = time.perf_counter()
        running = asyncio.gather(worker.run(stop), dispatcher.run(stop))
        await notifier.done.wait()
        elapsed = time.perf_counter() - started
        stop.set()
        await running
        counts = await store.counts_by_state()
        await store.close()
    assert counts == {"succeeded": jobs}, counts
    return {
        "jobs": jobs,
        "worker_slots": workers,
        "seconds": round(elapsed, 3),
        "jobs_per_second": round(jobs / elapsed, 1),
    }


async def budget_exactness(images: int = 20, requests: int = 200) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        stores = [SQLiteStore(f"{tmp}/budget.db") for _ in range(4)]
        for store in stores:
            await store.open()
        catalog = load_catalog()
        services = [ImagineService(s, catalog, policies=PolicyBook(NO_LIMITS)) for s in stores]
        one = await services[0].submit(request(0, confirmed=True))
        await stores[0].cancel(one.job_id)  # priced once, to size the budget exactly
        limit = one.estimate_usd * images
        await services[0].set_budget(Caller("T0", "bench", platform_admin=True), str(limit), "month")
        started = time.perf_counter()
        outcomes = await asyncio.gather(
            *(
                services[i % 4].submit(
                    ImagineRequest(
                        team="T0", channel="C", user=f"U{i}", platform="bench", prompt="p00000", confirmed=True
                    )
                )
                for i in range(requests)
            )
        )
        elapsed = time.perf_counter() - started
        [status] = await stores[0].budget_statuses("T0", None, None)
        for store in stores:
            await store.close()
    admitted = sum(isinstance(o, Accepted) for o in outcomes)
    refused = sum(isinstance(o, Refused) for o in outcomes)
    overshoot = max(0, status.spent_micros + status.reserved_micros - status.budget.limit_micros)
    return {
        "budget_for_images": images,
        "requests": requests,
        "admitted": admitted,
        "refused": refused,
        "overshoot_usd": str(from_micros(overshoot)),
        "limit_usd": str(Decimal(limit)),
        "seconds": round(elapsed, 3),
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--workers", type=int, default=8)
    return p


async def run(args: argparse.Namespace) -> dict:
    return {
        "queue_throughput_sqlite": await queue_throughput(args.jobs, args.workers),
        "budget_exactness": await budget_exactness(),
    }


def rows(results: dict) -> list[tuple]:
    out = []
    if queue := results.get("queue_throughput_sqlite"):
        out.append(
            (
                "queue throughput (SQLite, 1 proc)",
                f"{queue['jobs_per_second']} jobs/s ({queue['jobs']} jobs, {queue['worker_slots']} slots, "
                f"{queue['seconds']} s)",
                f">= {TARGET_JOBS_PER_SECOND} jobs/s",
                verdict(queue["jobs_per_second"] >= TARGET_JOBS_PER_SECOND),
            )
        )
    if budget := results.get("budget_exactness"):
        out.append(
            (
                "budget exactness",
                f"admitted {budget['admitted']} / refused {budget['refused']} of {budget['requests']} for a "
                f"{budget['budget_for_images']}-image budget; overshoot ${budget['overshoot_usd']}",
                "$0",
                verdict(Decimal(budget["overshoot_usd"]) == 0),
            )
        )
    return out


if __name__ == "__main__":
    bench_main(run, parser, rows)
