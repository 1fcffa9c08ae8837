"""What the queue page's tests share: jobs queued through the service (no worker runs, so
they stay queued), the dashboard's event streams, and an event-stream reader."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from adapters.web.queue import STREAMS, QueueStreams
from bot.catalog import load_catalog
from bot.service import ImagineService
from bot.types import Accepted, ImagineRequest
from tests.support.dashboard import Dashboard


def service_for(dashboard: Dashboard) -> ImagineService:
    """A service on the dashboard's store and clock: requests made through it are what the page shows."""
    return ImagineService(dashboard.store, load_catalog(), clock=dashboard.clock)


async def queue_job(
    service: ImagineService, team: str = "T1", user: str = "U1", prompt: str = "a koi pond", **options: str
) -> Accepted:
    outcome = await service.submit(
        ImagineRequest(team=team, channel="C1", user=user, platform="test", prompt=prompt, **options)
    )
    assert isinstance(outcome, Accepted), outcome
    return outcome


def streams_of(dashboard: Dashboard) -> QueueStreams:
    """The dashboard's open-stream count (in the /dashboard sub-application)."""
    for resource in dashboard.runner.app.router.resources():
        if isinstance(resource, web.PrefixedSubAppResource):
            return resource.get_info()["app"][STREAMS]
    raise AssertionError("the dashboard is not mounted")


@dataclass
class EventReader:
    """Reads a text/event-stream response one event (or comment, a heartbeat) at a time."""

    response: aiohttp.ClientResponse

    async def next(self, timeout: float = 10.0) -> tuple[str, str]:
        """The next event's (name, data), skipping comments; TimeoutError if none comes in time,
        EOFError once the stream has ended."""
        while True:
            kind, name, data = await asyncio.wait_for(self._item(), timeout)
            if kind == "event":
                return name, data

    async def next_named(self, name: str, timeout: float = 10.0) -> str:
        while True:
            event, data = await self.next(timeout)
            if event == name:
                return data

    async def next_comment(self, timeout: float = 10.0) -> str:
        while True:
            kind, _, text = await asyncio.wait_for(self._item(), timeout)
            if kind == "comment":
                return text

    async def _item(self) -> tuple[str, str, str]:
        event, data = "message", []
        while True:
            raw = await self.response.content.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\n")
            if line == "":
                if data:
                    return "event", event, "\n".join(data)
                event = "message"
            elif line.startswith(":"):
                return "comment", "", line[1:].strip()
            elif line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
