"""Benchmark (not a test): the bot's peak memory with 50 4K jobs in flight at once.

    python bench/memory.py [--jobs 50] [--gemini-latency 3] [--textures flat,photo]

One `python -m bot run` process (as tests/e2e start it: HTTP Slack against the fake
Slack, the fake Gemini, SQLite in a temp dir) with IMAGINE_WORKERS=--jobs and
`[routes.gemini] max_concurrency = --jobs` (the route's default of 16 would keep most
jobs queued before the model), gets --jobs signed `/imagine ... --size 4K` commands at
once. The fake model holds each call --gemini-latency s, long enough for all of them
to be in flight together (the table reports how many the fake saw at once), then
answers 4096x4096 PNGs. The figure is the kernel's peak RSS of the bot (VmHWM in
/proc/<pid>/status), reset after a warm-up job so it covers the burst only; the RSS at
idle (after start, and after the warm-up job) is the baseline. RSS is also sampled
every 20 ms to show when the peak happens.

Two kinds of 4K image, each with a fresh bot process (--textures):
* flat:  the fake's own PNG, one flat colour: 0.23 MB for 4096x4096;
* photo: random pixels with 4 bits per channel (bench.common.textured_png): ~33 MB, the
  size of a photographic 4K PNG. This is the honest one for memory: the bot moves bytes
  (base64 in JSON, decoded, stored, uploaded) and never decodes pixels.

Prints a table and merges its figures into bench/results.json under "peak_rss".
Target (issue 8): peak RSS < 250 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from bench.common import (  # noqa: E402
    UNLIMITED_POLICY,
    BenchGemini,
    BenchSlack,
    bench_main,
    bot_process,
    post_timed,
    signed_command,
    verdict,
    vm_status,
)

TARGET_MB = 250.0
TEXTURES = {"flat": None, "photo": 4}  # name -> BenchGemini texture_bits


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=50, help="4K jobs in flight at once (and worker slots)")
    p.add_argument("--gemini-latency", type=float, default=3.0)
    p.add_argument("--textures", default="flat,photo", help="comma-separated: flat, photo")
    return p


def mb(kib: int) -> float:
    return round(kib / 1024, 1)


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


async def one_texture(texture: str, args: argparse.Namespace) -> dict:
    n = args.jobs
    gemini = BenchGemini(latency=args.gemini_latency, texture_bits=TEXTURES[texture])
    slack = BenchSlack()
    config = UNLIMITED_POLICY + f"\n[routes.gemini]\nmax_concurrency = {n}\n"
    with tempfile.TemporaryDirectory(prefix=f"bench-memory-{texture}-") as tmp:
        async with gemini, slack:
            async with bot_process(
                Path(tmp), slack_url=slack.url, gemini_url=gemini.url, config=config, IMAGINE_WORKERS=str(n)
            ) as bot:
                pid, url = bot.pid, f"{bot.base}/slack/events"
                idle_start = await settle(pid)
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n + 16)) as session:
                    # One job first, so the lazily imported SDKs and first buffers are not counted
                    # as the burst's.
                    await post_timed(session, url, *signed_command("bench memory warm-up --size 4K", user="UW"))
                    await slack.wait_for(lambda: "bench memory warm-up" in slack.upload_done, timeout=120)
                    idle_warm = await settle(pid)
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
                        await slack.wait_for(lambda: all(p in slack.upload_done for p in prompts), timeout=120 + 5 * n)
                        wall = time.perf_counter() - started
                        status = vm_status(pid)
                    finally:
                        stop.set()
                        await sampler
                    idle_after = await settle(pid)
    peak_sampled = max(samples, key=lambda s: s[1])
    images = [u for u in slack.uploads if u.title in prompts]
    return {
        "image_px": "x".join(map(str, gemini.image_size_for(None, "4K"))),
        "image_mb": round(sum(len(u.data) for u in images) / len(images) / 1e6, 2),
        "jobs": n,
        "max_in_flight_at_model": gemini.max_in_flight,
        "wall_s": round(wall, 1),
        "idle_rss_mb": mb(idle_start),
        "idle_rss_after_warmup_mb": mb(idle_warm),
        # The kernel syncs VmHWM lazily, so a 20 ms sample can top it by a little: the larger wins.
        "peak_rss_mb": mb(max(status["VmHWM"], peak_sampled[1]) if hwm_reset else peak_sampled[1]),
        "peak_from": "VmHWM (reset after warm-up)" if hwm_reset else "VmRSS sampled every 20 ms",
        "peak_rss_sampled_mb": mb(peak_sampled[1]),
        "peak_at_s": round(peak_sampled[0] - started, 2),
        "rss_after_burst_mb": mb(idle_after),
    }


async def run(args: argparse.Namespace) -> dict:
    out = {"gemini_latency_s": args.gemini_latency, "target": {"peak_rss_mb_below": TARGET_MB}}
    for texture in args.textures.split(","):
        out[texture] = await one_texture(texture.strip(), args)
    return {"peak_rss": out}


def rows(results: dict) -> list[tuple]:
    r = results.get("peak_rss")
    if not r:
        return []
    out = []
    for texture in TEXTURES:
        if texture not in r:
            continue
        t = r[texture]
        out.append(
            (
                f"peak RSS, {t['jobs']} x 4K in flight ({texture}: {t['image_px']}, {t['image_mb']} MB PNG)",
                f"{t['peak_rss_mb']} MB (idle {t['idle_rss_mb']} / {t['idle_rss_after_warmup_mb']} MB "
                f"after a job; {t['max_in_flight_at_model']} at the model at once)",
                f"< {TARGET_MB:g} MB",
                verdict(t["peak_rss_mb"] < TARGET_MB),
            )
        )
    return out


if __name__ == "__main__":
    bench_main(run, parser, rows)
