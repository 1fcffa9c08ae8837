"""The floor for bench/slack_ack.py: a bare slack-bolt AsyncApp whose /imagine listener
only calls ``await ack()``, served the way the bot serves Slack (an aiohttp
AppRunner with the request turned into a bolt request and back, access log off).

Same signing secret and request verification as the bot, and its client points at the
same fake Slack (bolt's single-team authorization calls auth.test once, as in the bot).

With --null there is no bolt at all: /slack/events reads the body and answers 200 at
once. That is the floor under the floor: what aiohttp (server and the bench's client)
costs on this machine for the same burst.

    python bench/bare_slack_app.py --port 3001 --slack-api-url http://127.0.0.1:PORT/api/ \
        --signing-secret SECRET [--null]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web  # noqa: E402
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request  # noqa: E402
from slack_bolt.async_app import AsyncApp  # noqa: E402
from slack_sdk.web.async_client import AsyncWebClient  # noqa: E402


def build(signing_secret: str, token: str, api_url: str, *, null: bool = False) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    web_app = web.Application()
    web_app.add_routes([web.get("/healthz", healthz)])
    if null:

        async def answer(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(text="")

        web_app.add_routes([web.post("/slack/events", answer)])
        return web_app

    app = AsyncApp(
        client=AsyncWebClient(token=token, base_url=api_url),
        signing_secret=signing_secret,
        request_verification_enabled=True,
        ignoring_self_events_enabled=True,
    )

    @app.command("/imagine")
    async def imagine(ack) -> None:
        await ack()

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    web_app.add_routes([web.post("/slack/events", events)])
    return web_app


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slack-api-url", required=True)
    parser.add_argument("--signing-secret", required=True)
    parser.add_argument("--token", default="xoxb-test")
    parser.add_argument("--null", action="store_true", help="no bolt: answer 200 at once")
    args = parser.parse_args()
    runner = web.AppRunner(build(args.signing_secret, args.token, args.slack_api_url, null=args.null), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", args.port).start()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
