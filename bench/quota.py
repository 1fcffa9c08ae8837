"""Benchmark (not a test): how much of a Gemini per-minute quota the bot uses, and
whether it ever trips it.

    python bench/quota.py [--jobs 300] [--rpm 60] [--gemini-latency 2]

The fake Gemini here enforces `--rpm` requests per sliding 60 s window (QuotaGemini:
past it, a 429 RESOURCE_EXHAUSTED with Google's body and a RetryInfo delay) and takes
`--gemini-latency` s per image. The bot, built in this process the way `python -m bot
run` builds it (bootstrap.build_provider + bootstrap.build + Runtime.add_worker, so the
rate limit is the store-backed SharedRateLimiter on SQLite, default worker slots), is
configured with `[routes.gemini] requests_per_minute = --rpm` and given `--jobs` jobs
at once. It runs until every job has its final delivery: at 60 rpm, 300 jobs take
about 4.5 minutes by nature.

Use of the quota is measured on the calls the fake served, over their steady part:
a limit of L per 60 s means call i+L may come no sooner than 60 s after call i, so
    use = 60 s / mean over i of (t[i+L] - t[i])
(100% = every window as full as the quota allows; the bot's 0.5 s safety margin on its
window caps it at 60/60.5 = 99.2%). It needs --jobs > --rpm. Also reported: the
shortest such gap (under 60 s would mean a window over the quota) and the 429s sent.

Prints a table and merges its figures into bench/results.json under "quota_use".
Targets (issue 8): use >= 95% with zero 429s provoked.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    TABLE_HEADERS,
    UNLIMITED_POLICY,
    BenchGemini,
    CountingNotifier,
    merge_results,
    print_table,
    verdict,
)
from bot import bootstrap  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.types import Accepted, ImagineRequest  # noqa: E402
from tests.fakes.gemini_server import error  # noqa: E402

TARGET_USE = 0.95
WINDOW = 60.0  # Google's quota window as this fake enforces it


class QuotaGemini(BenchGemini):
    """FakeGemini with a per-minute quota: at most `rpm` generateContent calls in any
    sliding 60 s window; one more is answered at once with Google's 429 (QuotaFailure,
    Help and RetryInfo details, via the fake's own error() reply). Rejected calls do not
    count against the window."""

    def __init__(self, *, rpm: int, **kw) -> None:
        super().__init__(**kw)
        self.rpm = rpm
        self.window: deque[float] = deque()
        self.served: list[float] = []  # perf_counter() of each call let through
        self.rejected: list[float] = []  # ... and of each call answered 429

    async def _generate(self, request, model):
        now = time.perf_counter()
        while self.window and self.window[0] <= now - WINDOW:
            self.window.popleft()
        if len(self.window) >= self.rpm:
            self.rejected.append(now)
            retry = max(1, math.ceil(self.window[0] + WINDOW - now))
            return self._error(error(429, retry_delay=f"{retry}s"), model)
        self.window.append(now)
        self.served.append(now)
        return await super()._generate(request, model)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=300, help="jobs submitted at once (must exceed --rpm)")
    p.add_argument("--rpm", type=int, default=60, help="the quota and the bot's requests_per_minute")
    p.add_argument("--gemini-latency", type=float, default=2.0)
    p.add_argument("--workers", type=int, default=None, help="worker slots (default: the bot's own)")
    return p


def quota_use(served: list[float], rpm: int) -> tuple[float | None, float | None]:
    """(use as a fraction, shortest gap in s) from the served calls' times; None when too few."""
    gaps = [served[i + rpm] - served[i] for i in range(len(served) - rpm)]
    if not gaps:
        return None, None
    return WINDOW / (sum(gaps) / len(gaps)), min(gaps)


async def run(args: argparse.Namespace) -> dict:
    fake = QuotaGemini(rpm=args.rpm, latency=args.gemini_latency)
    with tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp:
        config = Path(tmp) / "imagine.toml"
        config.write_text(UNLIMITED_POLICY + f"\n[routes.gemini]\nrequests_per_minute = {args.rpm}\n")
        async with fake:
            kw = {"imagine_workers": args.workers} if args.workers else {}
            settings = Settings(
                _env_file=None,
                database_url=f"sqlite:///{tmp}/quota.db",
                gemini_api_key="k",
                gemini_base_url=fake.url,
                imagine_config=config,
                **kw,
            )
            # As `python -m bot run` does (bot/cli.py run()): the provider, then the runtime.
            provider = bootstrap.build_provider(settings)
            notifier = CountingNotifier(args.jobs)
            runtime = await bootstrap.build(settings, notifiers=[notifier], provider=provider)
            stop = asyncio.Event()
            running = None
            try:
                runtime.add_worker()
                for i in range(args.jobs):
                    outcome = await runtime.service.submit(
                        ImagineRequest(
                            team=f"T{i % 10}", channel="C", user=f"U{i}", platform="bench", prompt=f"quota {i:05d}"
                        )
                    )
                    if not isinstance(outcome, Accepted):
                        raise RuntimeError(f"job {i} was not accepted: {outcome}")
                started = time.perf_counter()
                running = asyncio.create_task(runtime.run(stop))
                # Ideal pace plus generous slack; a stuck run fails instead of hanging.
                budget = math.ceil(args.jobs / args.rpm) * WINDOW + 20 * args.gemini_latency + 120
                await asyncio.wait_for(notifier.done.wait(), budget)
                wall = time.perf_counter() - started
                counts = await runtime.store.counts_by_state()
            finally:
                stop.set()
                if running is not None:
                    await running
                await runtime.close()
    use, min_gap = quota_use(fake.served, args.rpm)
    span = fake.served[-1] - fake.served[0] if len(fake.served) > 1 else 0.0
    return {
        "quota_use": {
            "jobs": args.jobs,
            "rpm_limit": args.rpm,
            "gemini_latency_s": args.gemini_latency,
            "worker_slots": settings.imagine_workers,
            "calls_served": len(fake.served),
            "provoked_429": len(fake.rejected),
            "jobs_by_state": counts,
            "wall_s": round(wall, 1),
            "use": None if use is None else round(use, 4),
            "achieved_rpm": None if use is None else round(use * args.rpm, 2),
            "shortest_window_s": None if min_gap is None else round(min_gap, 3),
            "first_to_last_call_s": round(span, 1),
            "target": {"use_at_least": TARGET_USE, "provoked_429": 0},
        }
    }


def rows(results: dict) -> list[tuple]:
    r = results.get("quota_use")
    if not r:
        return []
    use = "n/a (needs --jobs > --rpm)" if r["use"] is None else f"{r['use'] * 100:.1f}%"
    met = r["use"] is not None and r["use"] >= TARGET_USE and r["provoked_429"] == 0
    return [
        (
            f"quota use ({r['jobs']} jobs, {r['rpm_limit']} rpm, {r['gemini_latency_s']:g} s latency)",
            f"{use} ({r['achieved_rpm']} rpm), {r['provoked_429']} x 429, shortest 60-call window "
            f"{r['shortest_window_s']} s",
            f">= {TARGET_USE * 100:g}%, 0 x 429",
            verdict(met),
        )
    ]


async def main() -> None:
    args = parser().parse_args()
    if args.jobs <= args.rpm:
        print(f"note: --jobs {args.jobs} <= --rpm {args.rpm}: too few calls to measure use", file=sys.stderr)
    results = await run(args)
    print_table(TABLE_HEADERS, rows(results))
    merge_results(results)


if __name__ == "__main__":
    asyncio.run(main())
