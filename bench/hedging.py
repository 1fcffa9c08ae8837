"""Benchmark (not a test): p99 latency with and without hedging, against a slow tail.

    python bench/hedging.py [--requests 400] [--concurrency 20] [--latency 0.2] [--tail 0.05] [--factor 10]

The loopback fake Gemini answers after `--latency` seconds, except a seeded `--tail`
share of calls (5%), which take `--factor` times as long (10x): the slow tail a model
under load shows. The router (RoutedProvider, the real google-genai client) makes
`--requests` Pro requests, `--concurrency` at a time, with Flash as the team's
fallback; each request's clock runs from generate() to its image.

It runs twice on the same seeded tail: without hedging, then with hedge_after_s at
`--hedge-after` (default twice the latency), when a request with no image by then also
asks Flash and takes the first image. The second run also counts the hedges sent, and
how many of their pairs' other calls were cancelled unanswered (recorded at $0 by
the bot, though Google may bill them) or answered (settled).

Prints the two side by side and merges its figures into bench/results.json under
"hedging_tail". Target: hedging brings p99 down to about hedge_after_s + latency.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_main, ms_summary, verdict  # noqa: E402
from bot.catalog import load_catalog  # noqa: E402
from bot.providers.gemini import GeminiProvider  # noqa: E402
from bot.providers.limits import AdaptiveConcurrency  # noqa: E402
from bot.providers.router import Route, RoutedProvider  # noqa: E402
from bot.types import GenerationSpec  # noqa: E402
from tests.fakes.gemini_server import FakeGemini  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--concurrency", type=int, default=20, help="requests in flight at a time")
    p.add_argument("--latency", type=float, default=0.2, help="the fake model's usual latency, s")
    p.add_argument("--tail", type=float, default=0.05, help="share of calls in the slow tail")
    p.add_argument("--factor", type=float, default=10.0, help="how many times slower a tail call is")
    p.add_argument("--hedge-after", type=float, default=None, help="hedge_after_s (default: 2x the latency)")
    p.add_argument("--seed", type=int, default=7)
    return p


async def measure(args: argparse.Namespace, hedge_after: float | None) -> dict:
    """Latencies of `args.requests` requests through the router, and what the hedges did."""
    async with FakeGemini(
        latency=args.latency, tail=(args.tail, args.factor), seed=args.seed, image_scale=0.125
    ) as fake:
        gemini = GeminiProvider.create(api_key="k", base_url=fake.url, vertexai=False, timeout_seconds=120)
        # Room for every call in flight: the bench measures the tail, not a concurrency queue.
        routed = RoutedProvider(
            [Route("gemini", gemini, concurrency=AdaptiveConcurrency(4 * args.concurrency))], load_catalog()
        )
        request = GenerationSpec(
            prompt="a koi pond",
            model_alias="pro",
            model_id="gemini-3-pro-image",
            aspect_ratio="1:1",
            size="1K",
            fallbacks=("flash",),
            hedge_after_s=hedge_after,
        )
        gate = asyncio.Semaphore(args.concurrency)
        hedges = []

        async def one() -> float:
            async with gate:
                started = time.perf_counter()
                result = await routed.generate(request, [])
                if result.hedge is not None:
                    hedges.append(result.hedge)
                return time.perf_counter() - started

        try:
            seconds = await asyncio.gather(*(one() for _ in range(args.requests)))
        finally:
            await routed.close()
        return {
            **ms_summary(seconds),
            "calls": len(fake.requests),
            "hedges": len(hedges),
            "hedges_won": sum(h.won for h in hedges),
            "other_call_cancelled": sum(h.answer is None for h in hedges),
        }


async def run(args: argparse.Namespace) -> dict:
    hedge_after = args.hedge_after if args.hedge_after is not None else 2 * args.latency
    without = await measure(args, None)
    with_hedging = await measure(args, hedge_after)
    return {
        "hedging_tail": {
            "requests": args.requests,
            "concurrency": args.concurrency,
            "latency_s": args.latency,
            "tail": args.tail,
            "factor": args.factor,
            "hedge_after_s": hedge_after,
            "without": without,
            "with": with_hedging,
        }
    }


def rows(results: dict) -> list[tuple]:
    r = results.get("hedging_tail")
    if not r:
        return []
    a, b = r["without"], r["with"]
    target = (r["hedge_after_s"] + r["latency_s"]) * 1000 * 1.5  # a margin for the client's own time
    return [
        (
            f"slow tail ({r['tail']:.0%} of calls {r['factor']:g}x {r['latency_s']:g} s; {r['requests']} requests, "
            f"{r['concurrency']} at a time): without hedging",
            f"p50 {a['p50_ms']} / p99 {a['p99_ms']} ms",
            "",
            "",
        ),
        (
            f"  with hedge_after_s = {r['hedge_after_s']:g}",
            f"p50 {b['p50_ms']} / p99 {b['p99_ms']} ms",
            f"p99 < {target:.0f} ms",
            verdict(b["p99_ms"] < target),
        ),
        (
            "  hedges sent (won by the hedge; other call cancelled unanswered)",
            f"{b['hedges']} of {r['requests']} ({b['hedges_won']}; {b['other_call_cancelled']}), "
            f"{b['calls']} calls vs {a['calls']}",
            "",
            "",
        ),
    ]


if __name__ == "__main__":
    bench_main(run, parser, rows)
