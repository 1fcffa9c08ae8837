"""The fake Slack and fake Gemini in a process of their own, for benches whose client
must not share an event loop with them (bench/slack_ack.py: the bot's Slack calls
after each ack would otherwise run on the loop that times the requests).

    python bench/fakes_process.py --slack-port 8001 --gemini-port 8002 [--gemini-latency 1]

Serves until SIGTERM or SIGINT. Ready when the fake Slack answers (it starts second).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BenchGemini, BenchSlack  # noqa: E402


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slack-port", type=int, required=True)
    parser.add_argument("--gemini-port", type=int, required=True)
    parser.add_argument("--gemini-latency", type=float, default=0.0)
    parser.add_argument("--image-scale", type=float, default=1.0)
    parser.add_argument("--texture-bits", type=int, default=None, help="photographic-size images (bench.common)")
    args = parser.parse_args()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    gemini = BenchGemini(latency=args.gemini_latency, image_scale=args.image_scale, texture_bits=args.texture_bits)
    slack = BenchSlack()
    await gemini.start(args.gemini_port)
    try:
        await slack.start(args.slack_port)
        try:
            await stop.wait()
        finally:
            await slack.stop()
    finally:
        await gemini.stop()


if __name__ == "__main__":
    asyncio.run(main())
