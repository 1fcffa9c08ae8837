"""Benchmark (not a test): memory per 4K image in flight, and the bot's peak RSS with 50 4K jobs at once.

    python bench/memory.py [--jobs 50] [--gemini-latency 3] [--budgets 512,unbounded] [--texture photo]

Two parts, both with 4096x4096 PNGs of random pixels with 4 bits per channel
(bench.common.textured_png: ~33 MB, the size of a photographic 4K PNG; `--texture flat`
uses the fake's own flat-colour PNG, 0.23 MB, instead):

1. Steps, in this process with tracemalloc (Python's allocations; Pillow's and SQLite's
   own buffers are not seen), against the fake Gemini in a process of its own: one 4K
   answer through the google-genai SDK's own parsing (as the bot did before), through the
   raw body and bot.providers.gemini_answer.read_answer, through the whole
   GeminiProvider.generate(), then images.check. The peak of generate() over the PNG's
   size is the factor the catalog's memory_bytes is built on (3x the largest PNG).

2. The bot: one `python -m bot run` process per budget (as tests/e2e start it: HTTP Slack
   against the fake Slack, the fake Gemini, SQLite in a temp dir) with IMAGINE_WORKERS=--jobs
   and `[routes.gemini] max_concurrency = --jobs`, gets --jobs signed `/imagine ... --size 4K`
   commands at once; the fake holds each call --gemini-latency s. Each budget is
   IMAGINE_MEMORY_MB (the default 512, and "unbounded" = 1,000,000, the bot without a
   budget), measured in the same run. Reported: the kernel's peak RSS of the bot (VmHWM,
   reset after a warm-up job so it covers the burst only; RSS sampled every 20 ms too), the
   idle RSS, jobs that did not succeed, throughput (jobs/s from the burst to the last
   upload) and, from /metrics, how long jobs waited for memory.

Prints a table and merges its figures into bench/results.json under "memory".
Targets (issue 17): peak RSS <= 600 MB with the default budget, no job failing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
from google.genai import types  # noqa: E402

from bench.common import (  # noqa: E402
    UNLIMITED_POLICY,
    BenchGemini,
    BenchSlack,
    bench_main,
    bot_process,
    fakes_process,
    post_timed,
    signed_command,
    verdict,
    vm_status,
)
from bot import images  # noqa: E402
from bot.catalog import load_catalog  # noqa: E402
from bot.providers.gemini import GeminiProvider, _request  # noqa: E402
from bot.providers.gemini_answer import read_answer  # noqa: E402
from tests.support.jobs import spec  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

TARGET_MB = 600.0
UNBOUNDED_MB = 1_000_000
TEXTURES = {"flat": None, "photo": 4}  # name -> BenchGemini texture_bits
MB = 1e6


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=50, help="4K jobs submitted at once (and worker slots)")
    p.add_argument("--gemini-latency", type=float, default=3.0)
    p.add_argument("--budgets", default="512,unbounded", help="IMAGINE_MEMORY_MB values, comma-separated")
    p.add_argument("--texture", default="photo", choices=sorted(TEXTURES))
    p.add_argument("--skip-steps", action="store_true")
    return p


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


# -- 1. steps --------------------------------------------------------------------------------


async def traced(step: Callable[[], Awaitable[Any]]) -> tuple[Any, int, int]:
    """(result, peak, kept): the most Python allocated above the start while `step` ran, and
    what is still allocated once it returned (the result held)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = await step()
        now, peak = tracemalloc.get_traced_memory()
        return result, peak - base, now - base
    finally:
        tracemalloc.stop()


async def steps(args: argparse.Namespace, work: Path) -> dict:
    port, slack_port = free_port(), free_port()
    texture = TEXTURES[args.texture]
    fakes = fakes_process(work, slack_port, port, *(["--texture-bits", str(texture)] if texture else []))
    four_k = spec("bench memory steps", size="4K")
    async with fakes:
        provider = GeminiProvider.create(
            api_key="k", base_url=f"http://127.0.0.1:{port}", vertexai=False, timeout_seconds=120
        )
        client = provider._client
        try:

            async def sdk_parsed() -> types.GenerateContentResponse:
                contents, config = _request(four_k, [])
                return await client.aio.models.generate_content(model=four_k.model_id, contents=contents, config=config)

            async def raw() -> types.GenerateContentResponse:
                contents, config = _request(four_k, [])
                config.should_return_http_response = True
                return await client.aio.models.generate_content(model=four_k.model_id, contents=contents, config=config)

            answer, sdk_peak, sdk_kept = await traced(sdk_parsed)
            png = answer.candidates[0].content.parts[-1].inline_data.data
            del answer
            response, raw_peak, _ = await traced(raw)
            http = response.sdk_http_response
            body_bytes = len(http.body)

            async def read() -> types.GenerateContentResponse:
                return read_answer(http, vertexai=False)

            del response
            _, read_peak, read_kept = await traced(read)
            result, gen_peak, gen_kept = await traced(lambda: provider.generate(four_k, []))

            async def check() -> object:
                return images.check(result.image.data, max_bytes=64 * 1024 * 1024)

            _, check_peak, _ = await traced(check)
        finally:
            await provider.close()
    png_bytes = len(png)
    catalog = load_catalog()
    return {
        "png_mb": round(png_bytes / MB, 1),
        "body_mb": round(body_bytes / MB, 1),
        "sdk_parsing": {"peak_mb": round(sdk_peak / MB, 1), "kept_mb": round(sdk_kept / MB, 1)},
        "raw_body": {"peak_mb": round(raw_peak / MB, 1)},
        "read_answer": {"peak_mb": round(read_peak / MB, 1), "kept_mb": round(read_kept / MB, 1)},
        "generate": {"peak_mb": round(gen_peak / MB, 1), "kept_mb": round(gen_kept / MB, 1)},
        "check": {"peak_mb": round(check_peak / MB, 1)},
        "factor_before": round(sdk_peak / png_bytes, 2),
        "factor_after": round(gen_peak / png_bytes, 2),
        "catalog_pro_4k_mb": round(catalog.models["pro"].memory_bytes["4K"] / MB),
    }


# -- 2. the bot --------------------------------------------------------------------------------


def reset_peak(pid: int) -> bool:
    """Reset the kernel's VmHWM of `pid` to its current RSS (Linux >= 4.0, /proc/PID/clear_refs)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


async def sample_rss(pid: int, into: list[tuple[float, int]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            into.append((time.perf_counter(), vm_status(pid)["VmRSS"]))
        except (OSError, KeyError):
            return
        await asyncio.sleep(0.02)


async def settle(pid: int, seconds: float = 1.5) -> int:
    """Let the process go quiet, then its RSS (KiB)."""
    await asyncio.sleep(seconds)
    return vm_status(pid)["VmRSS"]


async def scrape(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """The bot's /metrics as {sample name with labels: value}."""
    async with session.get(f"{base}/metrics") as r:
        text = await r.text()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def finished(metrics: dict[str, float]) -> int:
    return int(sum(metrics.get(f'imagine_jobs{{state="{s}"}}', 0) for s in ("succeeded", "failed", "blocked", "dead")))


def waits(metrics: dict[str, float]) -> dict:
    """How long the burst's jobs waited for memory, from the histogram (bucket bounds)."""
    count = metrics.get("imagine_memory_wait_seconds_count", 0)
    buckets = sorted(
        (float(k.split('le="')[1].rstrip('"}')), v)
        for k, v in metrics.items()
        if k.startswith("imagine_memory_wait_seconds_bucket") and "+Inf" not in k
    )

    def quantile(q: float) -> float | None:
        return next((le for le, n in buckets if n >= q * count), None) if count else None

    return {
        "jobs": int(count),
        "waited": int(count - next((n for le, n in buckets if le == 0.01), 0)),
        "mean_s": round(metrics.get("imagine_memory_wait_seconds_sum", 0) / count, 2) if count else 0.0,
        "p50_s_at_most": quantile(0.5),
        "p95_s_at_most": quantile(0.95),
    }


async def one_budget(budget_mb: int, args: argparse.Namespace) -> dict:
    n = args.jobs
    gemini = BenchGemini(latency=args.gemini_latency, texture_bits=TEXTURES[args.texture])
    slack = BenchSlack()
    config = UNLIMITED_POLICY + f"\n[routes.gemini]\nmax_concurrency = {n}\n"
    with tempfile.TemporaryDirectory(prefix=f"bench-memory-{budget_mb}-") as tmp:
        async with gemini, slack:
            async with bot_process(
                Path(tmp),
                slack_url=slack.url,
                gemini_url=gemini.url,
                config=config,
                IMAGINE_WORKERS=str(n),
                IMAGINE_MEMORY_MB=str(budget_mb),
            ) as bot:
                pid, url = bot.pid, f"{bot.base}/slack/events"
                idle_start = await settle(pid)
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n + 16)) as session:
                    # One job first, so the lazily imported SDKs and first buffers are not counted
                    # as the burst's.
                    await post_timed(session, url, *signed_command("bench memory warm-up --size 4K", user="UW"))
                    await slack.wait_for(lambda: "bench memory warm-up" in slack.upload_done, timeout=120)
                    idle_warm = await settle(pid)
                    before = await scrape(session, bot.base)
                    gemini.max_in_flight = 0
                    hwm_reset = reset_peak(pid)
                    samples: list[tuple[float, int]] = []
                    stop = asyncio.Event()
                    sampler = asyncio.create_task(sample_rss(pid, samples, stop))
                    started = time.perf_counter()
                    try:
                        prompts = [f"bench memory {i:03d}" for i in range(n)]
                        await asyncio.gather(
                            *(
                                post_timed(session, url, *signed_command(f"{p} --size 4K", user=f"U{i}"))
                                for i, p in enumerate(prompts)
                            )
                        )
                        deadline = time.monotonic() + 120 + 10 * n
                        while finished(after := await scrape(session, bot.base)) < n + 1:
                            if time.monotonic() > deadline:
                                raise TimeoutError(f"{finished(after) - 1} of {n} jobs finished")
                            await asyncio.sleep(0.25)
                        await slack.wait_for(lambda: all(p in slack.upload_done for p in prompts), timeout=60)
                        last = max((slack.upload_done.get(p, 0.0) for p in prompts), default=started)
                        status = vm_status(pid)
                    finally:
                        stop.set()
                        await sampler
                    idle_after = await settle(pid)
    peak_sampled = max(samples, key=lambda s: s[1])
    uploaded = [u for u in slack.uploads if u.title in prompts]
    burst = {k: after.get(k, 0) - before.get(k, 0) for k in after if k.startswith("imagine_memory_wait")}
    return {
        "budget_mb": budget_mb,
        "image_px": "x".join(map(str, gemini.image_size_for(None, "4K"))),
        "image_mb": round(sum(len(u.data) for u in uploaded) / max(1, len(uploaded)) / MB, 2),
        "jobs": n,
        "failed": n - len({u.title for u in uploaded}),
        "max_in_flight_at_model": gemini.max_in_flight,
        "wall_s": round(last - started, 1),
        "jobs_per_s": round(n / (last - started), 2),
        "idle_rss_mb": mib(idle_start),
        "idle_rss_after_warmup_mb": mib(idle_warm),
        # The kernel syncs VmHWM lazily, so a 20 ms sample can top it by a little: the larger wins.
        "peak_rss_mb": mib(max(status["VmHWM"], peak_sampled[1]) if hwm_reset else peak_sampled[1]),
        "peak_from": "VmHWM (reset after warm-up)" if hwm_reset else "VmRSS sampled every 20 ms",
        "peak_at_s": round(peak_sampled[0] - started, 2),
        "rss_after_burst_mb": mib(idle_after),
        "memory_wait": waits(burst),
    }


async def run(args: argparse.Namespace) -> dict:
    out: dict[str, Any] = {
        "gemini_latency_s": args.gemini_latency,
        "texture": args.texture,
        "target": {"peak_rss_mb_at_most": TARGET_MB, "failed": 0},
    }
    if not args.skip_steps:
        with tempfile.TemporaryDirectory(prefix="bench-memory-steps-") as tmp:
            out["steps"] = await steps(args, Path(tmp))
    out["runs"] = []
    for name in args.budgets.split(","):
        budget = UNBOUNDED_MB if name.strip() == "unbounded" else int(name)
        out["runs"].append(await one_budget(budget, args))
    return {"memory": out}


def rows(results: dict) -> list[tuple]:
    r = results.get("memory")
    if not r:
        return []
    out = []
    s = r.get("steps")
    if s:
        out.append(
            (
                f"memory per 4K image in flight ({s['png_mb']} MB PNG, {s['body_mb']} MB JSON), tracemalloc",
                f"{s['generate']['peak_mb']} MB at the peak of generate() ({s['factor_after']}x the PNG; "
                f"SDK's own parsing {s['sdk_parsing']['peak_mb']} MB, {s['factor_before']}x); "
                f"raw body {s['raw_body']['peak_mb']}, read_answer +{s['read_answer']['peak_mb']}, "
                f"check +{s['check']['peak_mb']} MB",
                f"<= 3x the PNG (catalog: {s['catalog_pro_4k_mb']} MB for Pro 4K's largest)",
                verdict(s["factor_after"] <= 3.0),
            )
        )
    runs = r.get("runs", [])
    unbounded = next((t for t in runs if t["budget_mb"] >= UNBOUNDED_MB), None)
    for t in runs:
        name = "unbounded" if t["budget_mb"] >= UNBOUNDED_MB else f"IMAGINE_MEMORY_MB={t['budget_mb']}"
        w = t["memory_wait"]
        ratio = (
            f", {t['jobs_per_s'] / unbounded['jobs_per_s']:.2f}x unbounded"
            if unbounded is not None and t is not unbounded
            else ""
        )
        bounded = t is not unbounded
        out.append(
            (
                f"peak RSS, {t['jobs']} x 4K at once ({r['texture']}: {t['image_mb']} MB PNG), {name}",
                f"{t['peak_rss_mb']} MB (idle {t['idle_rss_after_warmup_mb']} MB after a job); {t['failed']} failed; "
                f"{t['jobs_per_s']} jobs/s{ratio}; {t['max_in_flight_at_model']} at the model at once; "
                f"waited for memory: {w['waited']} jobs, mean {w['mean_s']} s, p95 <= {w['p95_s_at_most']} s",
                f"<= {TARGET_MB:g} MB, 0 failed" if bounded else "(the peer: no budget)",
                verdict(t["peak_rss_mb"] <= TARGET_MB and t["failed"] == 0) if bounded else "",
            )
        )
    return out


if __name__ == "__main__":
    if os.environ.get("PYTHONTRACEMALLOC"):
        sys.exit("run without PYTHONTRACEMALLOC: the bench starts and stops tracemalloc per step")
    bench_main(run, parser, rows)
