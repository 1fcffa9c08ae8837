"""Benchmark (not a test): the ledger against the bill Google's published formula makes.

    python bench/billing.py [--jobs 200] [--seed 12] [--no-batch]

Jobs across Pro (1K/2K/4K), Flash (512/1K/2K/4K) and 2.5 Flash Image, some with a
reference image and some in the Batch lane, go through the real pipeline: the service
(estimate, hold), SQLite, the worker and the batch runner with the real google-genai
client, against the loopback fake Gemini. Each answer is real-shaped and different:
Pro thinks and talks, Flash thinks a little, 2.5 Flash Image does neither (counts drawn
from a seeded random generator, in the ranges real answers show).

The bill is computed apart from the bot, from what the fake sent (its usageMetadata)
and Google's pricing page (ai.google.dev/gemini-api/docs/pricing, Paid Tier, read
2026-11-30), written out below rather than read from bot/catalog.toml:
  image tokens x image rate + (candidatesTokenCount - itemised IMAGE + thoughtsTokenCount)
  x text-and-thinking rate + promptTokenCount x input rate, halved in the Batch and Flex lanes.
The ledger keeps whole micro-dollars, each call rounded half-up once, so the formula is
rounded the same way per call; the unrounded total is recorded beside it.

Prints a table and merges its figures into bench/results.json under "ledger_vs_bill".
Target (issue 12): the ledger equals the formula to the micro-dollar, and no call
cost more than its hold.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_main, tiny_png, verdict  # noqa: E402
from bench.queue_and_budget import NO_LIMITS  # noqa: E402
from bot.batch import BatchRunner  # noqa: E402
from bot.catalog import load_catalog  # noqa: E402
from bot.metrics import Metrics  # noqa: E402
from bot.money import from_micros  # noqa: E402
from bot.providers.gemini import GeminiProvider  # noqa: E402
from bot.service import ImagineService  # noqa: E402
from bot.store.sqlite import SQLiteStore  # noqa: E402
from bot.types import Accepted, ImagineRequest, InputImage  # noqa: E402
from bot.worker import Worker  # noqa: E402
from policies.config import PolicyBook  # noqa: E402
from tests.fakes.gemini_server import FakeGemini, Tokens  # noqa: E402

MICRO = Decimal("0.000001")
# Google's pricing page, USD per 1M tokens: (image output, input, text-and-thinking output).
GOOGLE_RATES = {
    "gemini-3-pro-image": (Decimal("120"), Decimal("2.00"), Decimal("12.00")),
    "gemini-3.1-flash-image": (Decimal("60"), Decimal("0.50"), Decimal("3")),
    "gemini-2.5-flash-image": (Decimal("30"), Decimal("0.30"), Decimal("2.50")),
}
# "Batch API (50% cost reduction)"; the Flex tier is 50% off as well.
HALF = Decimal("0.5")
SHAPES = (
    ("pro", "1K"),
    ("pro", "2K"),
    ("pro", "4K"),
    ("flash", "512"),
    ("flash", "1K"),
    ("flash", "2K"),
    ("flash", "4K"),
    ("legacy", "1K"),
)
WORDS = (
    "a",
    "lighthouse",
    "on",
    "the",
    "cliff",
    "at",
    "dusk",
    "koi",
    "pond",
    "oil",
    "painting",
    "of",
    "neon",
    "city",
    "rain",
    "watercolour",
    "fox",
    "in",
    "snow",
    "portrait",
    "studio",
    "light",
)


class BillingGemini(FakeGemini):
    """The fake with real-shaped, varied counts per answer, and each call's usage and lane kept."""

    def __init__(self, seed: int, **kw) -> None:
        super().__init__(**kw)
        self.seed = seed
        self.calls: list[tuple[str, bool, dict]] = []  # (model, half price: Batch or Flex, usageMetadata)

    def _usage(self, reply, rec, images, text) -> dict:
        reply = type(reply)(**{**reply.__dict__, "usage": self._draw(rec.model, rec.prompt)})
        usage = super()._usage(reply, rec, images, text)
        # Half price: a Batch job's request, or a call served on the Flex tier (the Flex lane).
        flex = (rec.service_tier or "").lower().removeprefix("service_tier_") == "flex"
        self.calls.append((rec.model, rec.path.endswith(":batchGenerateContent") or flex, usage))
        return usage

    def _draw(self, model: str, prompt: str) -> Tokens:
        # Drawn per prompt, so a run's figures do not depend on the order calls arrive in.
        # Ranges around real answers: Pro 209 (1K) to 677 (4K) text and thinking, Flash 349.
        rng = random.Random(f"{self.seed}:{prompt}")
        if "pro" in model:
            return Tokens(text=rng.randint(10, 160), thoughts=rng.randint(60, 700))
        if "2.5" in model:
            return Tokens(text=rng.choice((0, 0, rng.randint(5, 40))), thoughts=0)
        return Tokens(text=rng.randint(20, 260), thoughts=rng.randint(0, 220))


def googles_bill(model: str, half_price: bool, usage: dict) -> Decimal:
    """One call's cost from the usageMetadata alone, unrounded."""
    image_rate, input_rate, text_rate = GOOGLE_RATES[model]
    image = sum(d["tokenCount"] for d in usage.get("candidatesTokensDetails", []) if d["modality"] == "IMAGE")
    text = usage.get("candidatesTokenCount", 0) - image + usage.get("thoughtsTokenCount", 0)
    cost = (image * image_rate + text * text_rate + usage["promptTokenCount"] * input_rate) / 1_000_000
    return cost * HALF if half_price else cost


def requests(n: int, rng: random.Random, batch: bool) -> list[ImagineRequest]:
    png = tiny_png()
    out = []
    for i in range(n):
        model, size = SHAPES[i % len(SHAPES)]
        prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40)))
        out.append(
            ImagineRequest(
                team=f"T{i % 4}",
                channel="C",
                user=f"U{i}",
                platform="bench",
                prompt=f"{prompt} #{i}",
                model=model,
                size=size,
                # Every tenth in the Batch lane, every tenth in the Flex lane (relax).
                lane="batch" if batch and i % 10 == 4 else None,
                relax=i % 10 == 9,
                images=(InputImage(png, "image/png"),) if i % 7 == 3 else (),
            )
        )
    return out


async def run_jobs(jobs: int, seed: int, batch: bool) -> dict:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(f"{tmp}/billing.db")
        await store.open()
        fake = await BillingGemini(seed, image_scale=0.0625).start()
        fake.auto_finish_batches = True
        provider = GeminiProvider.create(api_key="k", base_url=fake.url, vertexai=False, timeout_seconds=30)
        catalog, metrics = load_catalog(), Metrics()
        try:
            service = ImagineService(store, catalog, policies=PolicyBook(NO_LIMITS), batch_lane=batch)
            held = 0
            for req in requests(jobs, rng, batch):
                outcome = await service.submit(req)
                assert isinstance(outcome, Accepted), outcome
                held += round(outcome.estimate_usd / MICRO)
            worker = Worker(store, provider, catalog, concurrency=8, poll_interval=0.02, metrics=metrics)
            runner = BatchRunner(store, provider, worker, window=0, poll_interval=0)
            started = time.perf_counter()
            stop = asyncio.Event()
            working = asyncio.create_task(worker.run(stop))
            while (counts := await store.counts_by_state()).keys() - {"succeeded"}:
                if batch:
                    await runner.send()
                    await runner.poll()
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
            stop.set()
            await working
            ledger = await store.ledger()
        finally:
            await provider.close()
            await fake.stop()
            await store.close()
    settled = [r for r in ledger if r["entry"] == "settlement"]
    ledger_micros = sum(r["cost_micros"] for r in settled)
    exact = [googles_bill(model, lane, usage) for model, lane, usage in fake.calls]
    per_call = sum(c.quantize(MICRO, rounding=ROUND_HALF_UP) for c in exact)
    overshoots = metrics.registry.get_sample_value
    return {
        "jobs": jobs,
        "calls_at_fake": len(fake.calls),
        "settlements": len(settled),
        "jobs_by_state": counts,
        "by_model_size_lane": dict(Counter(f"{r['model']} {r['size']} {r['lane']}" for r in settled)),
        "with_reference_image": sum(1 for *_, u in fake.calls if len(u["promptTokensDetails"]) > 1),
        "ledger_usd": str(from_micros(ledger_micros)),
        "formula_usd": str(per_call),
        "formula_unrounded_usd": str(sum(exact)),
        "difference_usd": str(from_micros(ledger_micros) - per_call),
        "held_usd": str(from_micros(held)),
        "holds_exceeded": int(
            sum(
                overshoots("imagine_hold_overshoot_total", {"route": route, "model": m}) or 0
                for route in ("gemini", "gemini-batch")
                for m in ("pro", "flash", "legacy")
            )
        ),
        "seconds": round(elapsed, 2),
        "seed": seed,
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=200)
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--no-batch", action="store_true", help="leave the Batch lane out")
    return p


async def run(args: argparse.Namespace) -> dict:
    return {"ledger_vs_bill": await run_jobs(args.jobs, args.seed, not args.no_batch)}


def rows(results: dict) -> list[tuple]:
    bill = results.get("ledger_vs_bill")
    if not bill:
        return []
    return [
        (
            "ledger vs provider bill",
            f"{bill['settlements']} calls (pro, flash, and legacy asks that Flash serves since 2.5 Flash Image's "
            "shutdown; all sizes; Standard, Flex and Batch lanes): "
            f"ledger ${bill['ledger_usd']}, "
            f"Google's formula ${bill['formula_usd']}, difference ${bill['difference_usd']}",
            "$0.000000",
            verdict(Decimal(bill["difference_usd"]) == 0 and bill["settlements"] == bill["calls_at_fake"]),
        ),
        (
            "  calls that cost more than their hold",
            f"{bill['holds_exceeded']} of {bill['settlements']}",
            "0",
            verdict(bill["holds_exceeded"] == 0),
        ),
    ]


if __name__ == "__main__":
    bench_main(run, parser, rows)
