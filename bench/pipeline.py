"""Benchmark (not a test): the bot's own time between a command and its image in Slack.

    python bench/pipeline.py [--requests 30] [--concurrency 3] [--gemini-latency 0.5]

`python -m bot run` (as tests/e2e start it, SQLite in a temp dir) gets signed /imagine
POSTs on /slack/events, `--concurrency` at a time; each one's clock runs from sending
the POST to the fake Slack finishing the image's upload (files.completeUploadExternal).
Overhead = that time minus the fake model's fixed latency: ack, submit, the status
message, leasing, the Gemini call's own HTTP and JSON, checking and storing the image,
the outbox, and the upload.

The fake Gemini answers with ~2 MB PNGs: 1024x1024 of photographic-like noise
(bench.common.textured_png; the fake's flat-colour PNG of that size is 15 KB, which
would leave the byte-moving part of the pipeline unmeasured). The run reports the
size it actually got.

Overhead is split at the moment the fake model built its answer (after its latency):
"before" = POST -> the call reaching the model; "after" = the answer -> upload done.

Prints a table and merges its figures into bench/results.json under "pipeline_overhead".
Target (issue 8): overhead p99 < 300 ms.
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
    BenchGemini,
    BenchSlack,
    bench_main,
    bot_process,
    ms_summary,
    post_timed,
    signed_command,
    verdict,
)

TARGET_P99_MS = 300.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=30)
    p.add_argument("--concurrency", type=int, default=3, help="commands in flight at a time")
    p.add_argument("--gemini-latency", type=float, default=0.5, help="the fake model's fixed latency, s")
    p.add_argument("--warmup", type=int, default=3, help="untimed commands first")
    p.add_argument(
        "--texture-bits",
        type=int,
        default=4,
        help="entropy per colour channel of the fake's images (4: ~2 MB at 1024x1024)",
    )
    return p


async def one(session: aiohttp.ClientSession, url: str, slack: BenchSlack, prompt: str, user: str) -> float:
    """POST one /imagine; wait for its upload; when the POST was sent (perf_counter)."""
    started, _, status = await post_timed(session, url, *signed_command(prompt, user=user))
    if status != 200:
        raise RuntimeError(f"/imagine answered {status}")
    await slack.wait_for(lambda: prompt in slack.upload_done, timeout=60)
    return started


async def run(args: argparse.Namespace) -> dict:
    # Pro's default size is 2K (2048x2048 on the fake); scale 0.5 makes it 1024x1024.
    gemini = BenchGemini(latency=args.gemini_latency, image_scale=0.5, texture_bits=args.texture_bits)
    slack = BenchSlack()
    sent: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        async with gemini, slack:
            async with bot_process(Path(tmp), slack_url=slack.url, gemini_url=gemini.url) as bot:
                url = f"{bot.base}/slack/events"
                async with aiohttp.ClientSession() as session:
                    for i in range(args.warmup):
                        await one(session, url, slack, f"bench pipeline warm-up {i}", f"UW{i}")
                    queue: asyncio.Queue[int] = asyncio.Queue()
                    for i in range(args.requests):
                        queue.put_nowait(i)

                    async def client(c: int) -> None:
                        while not queue.empty():
                            i = queue.get_nowait()
                            prompt = f"bench pipeline {i:04d}"
                            sent[prompt] = await one(session, url, slack, prompt, f"U{c}")

                    started = time.perf_counter()
                    await asyncio.gather(*(client(c) for c in range(args.concurrency)))
                    wall = time.perf_counter() - started
    latency = args.gemini_latency
    total = [slack.upload_done[p] - t for p, t in sent.items()]
    before = [gemini.answered[p] - latency - t for p, t in sent.items()]
    after = [slack.upload_done[p] - gemini.answered[p] for p in sent]
    timed = [u for u in slack.uploads if u.title in sent]
    size = sum(len(u.data) for u in timed) / len(timed)
    w, h = gemini.image_size_for(None, "2K")
    return {
        "pipeline_overhead": {
            "requests": args.requests,
            "concurrency": args.concurrency,
            "gemini_latency_s": latency,
            "image_px": f"{w}x{h}",
            "image_mb": round(size / 1e6, 2),
            "wall_s": round(wall, 2),
            "overhead": ms_summary([t - latency for t in total]),
            "before_provider": ms_summary(before),
            "after_provider": ms_summary(after),
            "end_to_end": ms_summary(total),
            "target": {"overhead_p99_ms_below": TARGET_P99_MS},
        }
    }


def rows(results: dict) -> list[tuple]:
    r = results.get("pipeline_overhead")
    if not r:
        return []
    o, b, a = r["overhead"], r["before_provider"], r["after_provider"]
    return [
        (
            f"pipeline overhead ({r['requests']} cmds, {r['concurrency']} at a time, {r['image_mb']} MB PNG)",
            f"p50 {o['p50_ms']} / p99 {o['p99_ms']} ms",
            f"p99 < {TARGET_P99_MS:g} ms",
            verdict(o["p99_ms"] < TARGET_P99_MS),
        ),
        ("  of which POST -> model call", f"p50 {b['p50_ms']} / p99 {b['p99_ms']} ms", "", ""),
        ("  of which model answer -> upload done", f"p50 {a['p50_ms']} / p99 {a['p99_ms']} ms", "", ""),
    ]


if __name__ == "__main__":
    bench_main(run, parser, rows)
