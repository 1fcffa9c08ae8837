"""The worker pipeline in one process, for the integration tests: service -> queue ->
worker -> real provider client -> loopback fake -> store -> outbox -> a recording notifier."""

from __future__ import annotations

import asyncio

from bot.catalog import load_catalog
from bot.notify import OutboxDispatcher
from bot.providers.gemini import GeminiProvider
from bot.providers.openai_compat import OpenAICompatProvider
from bot.providers.router import Route, RoutedProvider
from bot.service import ImagineService
from bot.types import Accepted, ImagineRequest
from bot.worker import Worker
from policies.config import PolicyBook


class RecordingNotifier:
    platform = "test"

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, dict]] = []
        self.final: dict[int, asyncio.Event] = {}
        self.alerts: list[str] = []

    async def deliver(self, delivery, job) -> None:
        self.seen.append((delivery.kind, job.id, delivery.payload))
        if delivery.kind != "started":
            self.final.setdefault(job.id, asyncio.Event()).set()

    async def wait_final(self, job_id: int) -> None:
        await asyncio.wait_for(self.final.setdefault(job_id, asyncio.Event()).wait(), 20)

    async def alert(self, text: str) -> None:
        self.alerts.append(text)

    def kinds(self, job_id: int) -> list[str]:
        return [kind for kind, jid, _ in self.seen if jid == job_id]


def started_then(kinds: list[str], final: str) -> bool:
    """A job's messages were its "started", then `final`, once each; or `final` alone, when the
    dispatcher reached "started" only after the job had ended (a loaded machine): a late
    "started" is dropped by design, so it never overwrites the final message."""
    return kinds in (["started", final], [final])


class Pipeline:
    def __init__(
        self,
        store,
        fake,
        *,
        max_attempts=3,
        concurrency=2,
        watch=None,
        policies=None,
        routed=False,
        cache_ttl=0,
        more_routes=(),
        memory=None,
        poll_interval=0.05,
    ):
        self.store = store
        self.catalog = load_catalog()
        self.provider = GeminiProvider.create(api_key="test-key", base_url=fake.url, vertexai=False, timeout_seconds=10)
        if routed:  # behind the router: fallback chains (to `more_routes` too), hedging
            self.provider = RoutedProvider([Route("gemini", self.provider), *more_routes], self.catalog)
        self.notifier = RecordingNotifier()
        self.dispatcher = OutboxDispatcher(store, [self.notifier], poll_interval=0.05)
        self.worker = Worker(
            store,
            self.provider,
            self.catalog,
            concurrency=concurrency,
            lease_seconds=30,
            poll_interval=poll_interval,
            retry_base=0.01,
            retry_cap=0.05,
            on_delivery=self.dispatcher.wake,
            watch=watch,
            policies=policies,
            memory=memory,
        )
        self.service = ImagineService(
            store,
            self.catalog,
            max_attempts=max_attempts,
            policies=policies,
            cache_ttl=cache_ttl,
            on_submit=self.worker.wake,
            gateway_routes=tuple(route.name for route in more_routes),
        )
        self.stop = asyncio.Event()

    async def __aenter__(self):
        self.task = asyncio.gather(self.worker.run(self.stop), self.dispatcher.run(self.stop))
        return self

    async def __aexit__(self, *exc):
        self.stop.set()
        await self.task
        await self.provider.close()

    async def imagine(self, prompt="a koi pond", **kw) -> Accepted:
        outcome = await self.service.submit(
            ImagineRequest(team=kw.pop("team", "T1"), channel="C1", user="U1", platform="test", prompt=prompt, **kw)
        )
        assert isinstance(outcome, Accepted), outcome
        return outcome


class RoutedPipeline(Pipeline):
    """The worker pipeline behind the router (fallback chains, hedging), with team policies."""

    def __init__(
        self,
        store,
        fake,
        *,
        policy: dict | None = None,
        teams: dict | None = None,
        max_attempts: int = 2,
        cache_ttl: float = 60,
        gateway=None,
    ) -> None:
        catalog = load_catalog()
        more = (
            ()
            if gateway is None
            else (
                Route(
                    "openrouter",
                    OpenAICompatProvider.create(
                        name="openrouter",
                        base_url=gateway.url,
                        api_key="gw-key",
                        timeout_seconds=10,
                        models={"pro": "google/gemini-3-pro-image-preview"},
                        gateway=catalog.gateways["openrouter"],
                    ),
                    serves=frozenset({"pro"}),
                ),
            )
        )
        super().__init__(
            store,
            fake,
            max_attempts=max_attempts,
            policies=PolicyBook(policy, teams),
            routed=True,
            cache_ttl=cache_ttl,
            more_routes=more,
        )

    async def finished(self, prompt: str = "a koi pond", team: str = "T1", **kw) -> Accepted:
        """Submit a request and wait for its final message."""
        outcome = await self.imagine(prompt, team=team, **kw)
        await self.notifier.wait_final(outcome.job_id)
        return outcome

    def result_payload(self, job_id: int) -> dict:
        [payload] = [p for kind, jid, p in self.notifier.seen if jid == job_id and kind == "result"]
        return payload
