"""Builds the whole bot from one Settings object. Nothing is created at import time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import google.auth.exceptions
from aiohttp import web

from bot.alerts import CallWatch
from bot.approvals import ApprovalSweep
from bot.attachments import DownloadSlots
from bot.batch import BatchRunner
from bot.catalog import Catalog, load_catalog, read_config
from bot.config_check import unpriced_paths
from bot.http import health_route, metrics_route, serve
from bot.memory_budget import MIB, MemoryBudget
from bot.metrics import Metrics
from bot.notify import Notifier, OutboxDispatcher
from bot.providers.base import BatchProvider, ImageProvider
from bot.providers.gemini import GeminiProvider
from bot.providers.limits import AdaptiveConcurrency, LocalRateLimiter, SharedRateLimiter
from bot.providers.router import Route, RoutedProvider
from bot.retention import Pruner, RetentionSettings
from bot.service import ImagineService
from bot.settings import Settings
from bot.sign_in import SignIn
from bot.store.ports import Store
from bot.store.sqlite import SQLiteStore
from bot.worker import Worker
from policies.config import PolicyBook

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """The configuration cannot work; the message says what to change."""


def open_store(database_url: str, *, clock: Callable[[], float] = time.time) -> Store:
    if database_url.startswith("sqlite:///"):
        path = database_url.removeprefix("sqlite:///")
        if not path:
            raise ConfigError("DATABASE_URL sqlite:/// needs a file path, e.g. sqlite:///imagine.db")
        Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        return SQLiteStore(str(Path(path).expanduser()), clock=clock)
    if database_url.startswith(("postgresql://", "postgres://")):
        from bot.store.postgres import PostgresStore

        return PostgresStore(database_url, clock=clock)
    raise ConfigError("DATABASE_URL must be sqlite:///path/to/file.db or postgresql://...")


def build_provider(settings: Settings) -> RoutedProvider:
    """Every configured route behind one router: Gemini first, then a gateway.

    Per-route limits come from `[routes.NAME]` in IMAGINE_CONFIG:
    requests_per_minute and max_concurrency; a gateway's models, size names and
    prices from the catalog's `[gateways.NAME]`.
    """
    try:
        catalog = load_catalog(settings.imagine_config)
        config = read_config(settings.imagine_config).get("routes", {})
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    routes: list[Route] = []
    if settings.gemini_configured:
        routes.append(Route("gemini", gemini_provider(settings)))
    if settings.openai_compat_base_url:
        from bot.providers.openai_compat import OpenAICompatProvider

        name = settings.openai_compat_route
        gateway = catalog.gateways.get(name)
        # The catalog's [gateways.NAME] models, or [routes.NAME] models (the older spelling).
        models = gateway.models if gateway else config.get(name, {}).get("models")
        if not models:
            raise ConfigError(
                f"The gateway route '{name}' serves no models: set [gateways.{name}] models = "
                f'{{ pro = "<the gateway\'s name for it>" }} in IMAGINE_CONFIG.'
            )
        if settings.openai_compat_api_key is None:
            raise ConfigError(
                "OPENAI_COMPAT_BASE_URL is set but OPENAI_COMPAT_API_KEY is not: set the gateway's "
                "key (any placeholder, for a gateway that needs none)."
            )
        key = settings.openai_compat_api_key.get_secret_value()
        routes.append(
            Route(
                name,
                OpenAICompatProvider.create(
                    name=name,
                    base_url=settings.openai_compat_base_url,
                    api_key=key,
                    models=models,
                    timeout_seconds=settings.imagine_request_timeout,
                    gateway=gateway,
                ),
                serves=frozenset(models),
            )
        )
    if not routes:
        raise ConfigError(
            "No image provider is configured: set GEMINI_API_KEY (or Vertex AI's variables), "
            "or OPENAI_COMPAT_BASE_URL for a gateway."
        )
    for route in routes:
        limits = config.get(route.name, {})
        route.concurrency = AdaptiveConcurrency(int(limits.get("max_concurrency", 16)))
    per_minute = {name: int(v["requests_per_minute"]) for name, v in config.items() if "requests_per_minute" in v}
    return RoutedProvider(routes, catalog, LocalRateLimiter(per_minute))


def gemini_provider(settings: Settings) -> GeminiProvider:
    """The Developer API with GEMINI_API_KEY, or Vertex AI with GOOGLE_GENAI_USE_VERTEXAI: never both."""
    key = settings.gemini_api_key
    if not settings.google_genai_use_vertexai:
        if key is None:
            raise ConfigError("Gemini needs GEMINI_API_KEY, or GOOGLE_GENAI_USE_VERTEXAI=true for Vertex AI.")
        return GeminiProvider.create(
            api_key=key.get_secret_value(),
            base_url=settings.gemini_base_url,
            vertexai=False,
            timeout_seconds=settings.imagine_request_timeout,
            flex_timeout_seconds=settings.imagine_flex_timeout,
        )
    if key is not None:
        # Sent to Vertex, a key switches the SDK to Vertex's API-key ("express") mode: another
        # project, other quotas, and no project or location in the path.
        raise ConfigError(
            "GOOGLE_GENAI_USE_VERTEXAI is on and GEMINI_API_KEY is set too: choose one. "
            "For Vertex AI unset GEMINI_API_KEY (it authenticates with Google Cloud "
            "credentials); for the Developer API unset GOOGLE_GENAI_USE_VERTEXAI."
        )
    if settings.google_cloud_project is None:
        raise ConfigError(
            "GOOGLE_GENAI_USE_VERTEXAI is on but GOOGLE_CLOUD_PROJECT is not set: set it to "
            "the Google Cloud project id that Vertex AI bills."
        )
    if settings.google_cloud_location != "global":
        log.warning(
            "GOOGLE_CLOUD_LOCATION=%s: Vertex AI serves the Gemini 3.x image models only at global; "
            "calls for them will get 404 NOT_FOUND (see `python -m bot doctor`)",
            settings.google_cloud_location,
        )
    try:
        return GeminiProvider.create(
            api_key=None,
            base_url=settings.gemini_base_url,
            vertexai=True,
            timeout_seconds=settings.imagine_request_timeout,
            project=settings.google_cloud_project,
            location=settings.google_cloud_location,
            credentials_file=settings.google_application_credentials,
        )
    except (OSError, ValueError, google.auth.exceptions.DefaultCredentialsError) as exc:
        source = settings.google_application_credentials
        raise ConfigError(
            (f"GOOGLE_APPLICATION_CREDENTIALS={source} cannot be used" if source else "Vertex AI cannot be set up")
            + f": {exc}"
        ) from exc


@dataclass
class Runtime:
    settings: Settings
    catalog: Catalog
    store: Store
    service: ImagineService
    dispatcher: OutboxDispatcher
    provider: ImageProvider | None = None
    workers: list[Worker] = field(default_factory=list)
    batch_runners: list[BatchRunner] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)
    watch: CallWatch | None = None
    # A worker here takes any job (not just the CLI's own one).
    serves_queue: bool = False
    policies: PolicyBook = field(default_factory=PolicyBook)
    sign_in: SignIn | None = None  # None: the web dashboard is off
    http_port: int | None = None  # the port the HTTP server bound (PORT=0 takes any free one)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    # IMAGINE_MEMORY_MB, shared by every worker of the process (made with the first one).
    memory: MemoryBudget | None = None
    pruner: Pruner | None = None  # in a process that serves the queue (the worker role)
    approval_sweep: ApprovalSweep | None = None  # likewise
    # A credential a platform rejected, found after start-up (an adapter logs in in the
    # background): run() stops, and the CLI exits 4 with it.
    rejected: ConfigError | None = None
    _stop: asyncio.Event | None = field(default=None, repr=False)

    def reject(self, problem: str) -> None:
        self.rejected = self.rejected or ConfigError(problem)
        if self._stop is not None:
            self._stop.set()

    def wake(self) -> None:
        for worker in self.workers:
            worker.wake()

    def add_worker(self, *, concurrency: int | None = None, only_job_id: int | None = None) -> Worker:
        if self.provider is None:
            self.provider = build_provider(self.settings)
        batch_api = self._batch_api()
        if self.memory is None:
            self.memory = MemoryBudget(self.settings.imagine_memory_mb * MIB)
        worker = Worker(
            self.store,
            self.provider,
            self.catalog,
            # A shed Flex job waits for a Batch runner; a one-job worker (the CLI) has none.
            batch_lane=batch_api is not None and only_job_id is None,
            concurrency=concurrency or self.settings.imagine_workers,
            lease_seconds=self.settings.imagine_lease_seconds,
            on_delivery=self.dispatcher.wake,
            only_job_id=only_job_id,
            deadline_seconds=self.settings.imagine_job_deadline,
            metrics=self.metrics,
            watch=self.watch,
            policies=self.policies,
            memory=self.memory,
        )
        self.workers.append(worker)
        self.serves_queue = self.serves_queue or only_job_id is None
        if only_job_id is None and self.pruner is None:
            self.pruner = Pruner(self.store, self.retention, self.metrics, self.watch)
            self.approval_sweep = ApprovalSweep(
                self.service.expire_approvals, self.settings.imagine_approval_sweep_seconds
            )
        if batch_api is not None and only_job_id is None and not self.batch_runners:
            self.batch_runners.append(
                BatchRunner(
                    self.store,
                    batch_api,
                    worker,
                    window=self.settings.imagine_batch_window,
                    max_jobs=self.settings.imagine_batch_max,
                    poll_interval=self.settings.imagine_batch_poll,
                    # Well past the longest a create call may take, so a live sender is never taken for dead.
                    stale_after=max(900.0, 2 * self.settings.imagine_request_timeout + 60),
                )
            )
        return worker

    def _batch_api(self) -> BatchProvider | None:
        """The Gemini route's Batch API, when the relaxed lane is on."""
        gemini = getattr(self.provider, "routes", {}).get("gemini")
        return gemini.provider if gemini is not None and self.settings.batch_lane_available else None

    async def run(self, stop: asyncio.Event) -> None:
        """Run the workers, the Batch lane and the outbox dispatcher until `stop` is set
        (or a platform rejects a credential: see reject())."""
        self._stop = stop
        if self.rejected is not None:
            stop.set()
        if self.serves_queue:
            await self.cancel_stranded_relaxed()
        # stop.wait() too: a process with nothing of its own to run (`web` without Slack) still serves HTTP.
        await asyncio.gather(
            stop.wait(),
            self.dispatcher.run(stop),
            *(w.run(stop) for w in self.workers),
            *(b.run(stop) for b in self.batch_runners),
            *([self.pruner.run(stop)] if self.pruner is not None else []),
            *([self.approval_sweep.run(stop)] if self.approval_sweep is not None else []),
        )

    async def cancel_stranded_relaxed(self) -> None:
        """Flex, Batch and Priority jobs need the Developer API; a worker process without it
        (Vertex AI, a gateway only, no key any more) ends them instead of
        leaving their holds and quota slots taken for good."""
        if self.settings.batch_lane_available and self._batch_api() is not None:
            return
        cancelled = await self.store.cancel_relaxed(
            "the Flex, Batch and Priority lanes are not available (they need a Gemini API key)"
        )
        if cancelled:
            log.warning(
                "cancelled %d queued Flex, Batch or Priority job(s) and released their holds: those lanes "
                "are not available in this configuration (ids %s)",
                len(cancelled),
                cancelled,
            )
            self.dispatcher.wake()

    async def close(self) -> None:
        if self.provider is not None:
            await self.provider.close()
        await self.store.close()


def sign_in(runtime: Runtime) -> SignIn:
    """The dashboard's link signer; a ConfigError without IMAGINE_WEB_SECRET."""
    if runtime.sign_in is None:
        raise ConfigError(
            "The web dashboard needs IMAGINE_WEB_SECRET (32+ characters, e.g. from `openssl rand -hex 32`), "
            "the same in every process, to sign its links and sessions."
        )
    return runtime.sign_in


def _signer(settings: Settings, store: Store) -> SignIn | None:
    """The link signer when IMAGINE_WEB_SECRET is set; the chat commands and the web share it."""
    if settings.imagine_web_secret is None:
        return None
    return SignIn(
        store,
        settings.imagine_web_secret.get_secret_value(),
        settings.public_url,
        session_seconds=settings.imagine_web_session_hours * 3600,
    )


@dataclass(frozen=True)
class Role:
    """What one process runs. `run` is everything in one process; the others
    split it for scale-out on PostgreSQL (see the Procfile)."""

    workers: bool
    http: bool
    slack: bool
    discord: bool


ROLES = {
    "run": Role(workers=True, http=True, slack=True, discord=True),
    "worker": Role(workers=True, http=False, slack=False, discord=False),
    "web": Role(workers=False, http=True, slack=True, discord=False),
    "discord": Role(workers=False, http=False, slack=False, discord=True),
}


async def start_adapters(runtime: Runtime, role: Role = ROLES["run"]) -> list[Callable[[], Awaitable[None]]]:
    """Start the HTTP server and the role's configured chat adapters; returns their closers.

    Adapters are imported here, only when configured: the core never imports
    a platform SDK, and a Discord-only bot never loads slack_bolt.
    """
    settings = runtime.settings
    web_app = web.Application(client_max_size=2 * 1024 * 1024)
    web_app.add_routes(
        [
            health_route(runtime.store, settings.imagine_workers if role.workers else 0),
            metrics_route(
                runtime.store,
                runtime.metrics,
                token=settings.imagine_metrics_token.get_secret_value() if settings.imagine_metrics_token else None,
            ),
        ]
    )
    closers: list[Callable[[], Awaitable[None]]] = []
    if role.http and settings.web_configured:
        from adapters.web.app import add_dashboard
        from adapters.web.delivery import WebDelivery

        add_dashboard(web_app, runtime.service, sign_in(runtime))
        # Playground jobs post nothing, but their outbox rows must be taken (marked delivered).
        runtime.dispatcher.add(WebDelivery())
    elif role.http:
        log.info("web dashboard off: set IMAGINE_WEB_SECRET to serve it")
    slack = None
    if role.slack and settings.slack_configured:
        from adapters.slack.app import SlackAdapter, TokenRejected

        slack = SlackAdapter(settings, runtime.service)
        runtime.dispatcher.add(slack)
        if settings.slack_signing_secret is not None:
            web_app.add_routes([web.post("/slack/events", slack.handle)])
        app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
        try:
            # Checks the tokens; Socket Mode connects in the background (slack.close() closes it).
            await slack.start(app_token)
        except TokenRejected as exc:
            raise ConfigError(str(exc)) from None
    if role.discord and settings.discord_configured:
        from adapters.discord.client import DiscordAdapter

        discord_adapter = DiscordAdapter(settings, runtime.service, on_rejected=runtime.reject)
        runtime.dispatcher.add(discord_adapter)
        await discord_adapter.start()
        closers.append(discord_adapter.close)
    if role.http:
        runner = await serve(web_app, settings.port)
        runtime.http_port = runner.addresses[0][1]
        closers.insert(0, runner.cleanup)
    if slack is not None:
        # Closers run last to first: the HTTP server stops taking requests, then Slack's listeners finish.
        closers.insert(0, slack.close)
    return closers


async def build(
    settings: Settings,
    *,
    notifiers: list[Notifier],
    provider: ImageProvider | None = None,
) -> Runtime:
    gateway_routes = (settings.openai_compat_route,) if settings.openai_compat_base_url else ()
    try:
        catalog = load_catalog(settings.imagine_config)
        config = read_config(settings.imagine_config)  # the whole file checked, [retention] included
        policies = PolicyBook.from_config(config)
        retention = RetentionSettings.model_validate(config.get("retention") or {})
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if problems := unpriced_paths(catalog, policies, gateway_routes):
        raise ConfigError(
            "IMAGINE_CONFIG would run a model without a price, so nothing could be charged "
            "for it: " + "; ".join(problems)
        )
    store = open_store(settings.database_url)
    await store.open()
    if isinstance(provider, RoutedProvider) and provider.limiter.limits:
        # Counted in the database: every worker process shares the project's quota.
        provider.limiter = SharedRateLimiter(store, provider.limiter.limits)
    dispatcher = OutboxDispatcher(store, notifiers, max_backoff=settings.imagine_outbox_retry_max)
    metrics = Metrics()
    signer = _signer(settings, store)
    runtime: Runtime
    service = ImagineService(
        store,
        catalog,
        policies=policies,
        max_attempts=settings.imagine_max_attempts,
        batch_lane=settings.batch_lane_available,
        service_tiers=settings.service_tiers_available,
        cache_ttl=settings.imagine_cache_ttl,
        metrics=metrics,
        gateway_routes=gateway_routes,
        on_submit=lambda: runtime.wake(),
        sign_in=signer,
        downloads=DownloadSlots(settings.imagine_downloads, settings.imagine_user_downloads),
        # An image no worker could hold is refused at submit (set IMAGINE_MEMORY_MB alike everywhere).
        memory_limit=settings.imagine_memory_mb * MIB,
    )
    # Alerts go to the platforms with a moderators' channel set.
    alert_platforms = [
        platform
        for platform, channel in (("slack", settings.slack_alert_channel), ("discord", settings.discord_alert_channel))
        if channel
    ]
    watch = CallWatch(store, alert_platforms, on_alert=dispatcher.wake)
    runtime = Runtime(
        settings=settings,
        catalog=catalog,
        store=store,
        service=service,
        dispatcher=dispatcher,
        provider=provider,
        metrics=metrics,
        watch=watch,
        policies=policies,
        sign_in=signer,
        retention=retention,
    )
    return runtime
