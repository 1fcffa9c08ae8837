"""`python -m bot ...`: run the bot, or render one image from the terminal.

Every failure a user can cause or meet ends in one line on stderr and a
non-zero exit code; traces go to the log only with --verbose.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot import bootstrap, early_stop, first_run, images
from bot.cli_parser import parser
from bot.config_file import ConfigFileError, read_config
from bot.doctor import doctor
from bot.ledger_view import utc_date
from bot.money import to_micros, usd
from bot.money.budgets import Period, Scope, period_start
from bot.providers.base import ImageProvider
from bot.providers.errors import user_message_for
from bot.reports import render_ledger
from bot.result_notes import hedge_note, stale_note
from bot.service import CLI_PLATFORM, Caller, confirmed
from bot.settings import Settings
from bot.sign_in import Role
from bot.store.ports import Store, StoreMisconfigured, StoreUnavailable
from bot.types import (
    Accepted,
    Delivery,
    ImagineRequest,
    InputImage,
    InvalidRequest,
    Job,
    Lane,
    NeedsConfirmation,
    RefusalReason,
    Refused,
)

log = logging.getLogger("bot")

# Exit codes: scripts can tell "fix your input" from "try later" from "fix the config".
EXIT_OK, EXIT_BUG, EXIT_INVALID, EXIT_BLOCKED, EXIT_CONFIG, EXIT_TRY_LATER, EXIT_FAILED = 0, 1, 2, 3, 4, 5, 6
EXIT_OVER_LIMIT, EXIT_NEEDS_CONFIRMATION = 7, 8
# The long-running commands (bootstrap.ROLES); the others answer and exit.
SERVICES = ("run", "worker", "web", "discord")
EXIT_BY_REFUSAL = {
    RefusalReason.BUDGET_EXHAUSTED: EXIT_OVER_LIMIT,
    RefusalReason.QUOTA_EXCEEDED: EXIT_OVER_LIMIT,
    RefusalReason.UNAVAILABLE: EXIT_TRY_LATER,
    RefusalReason.NOT_MODERATOR: EXIT_CONFIG,
}
EXIT_BY_ERROR = {
    "blocked": EXIT_BLOCKED,
    "no_image": EXIT_BLOCKED,
    "bad_request": EXIT_INVALID,
    "input_too_large": EXIT_INVALID,
    "too_big_for_memory": EXIT_INVALID,
    "too_big_for_batch": EXIT_INVALID,
    "auth": EXIT_CONFIG,
    "permission": EXIT_CONFIG,
    "billing": EXIT_CONFIG,
    "credentials": EXIT_CONFIG,
    "quota": EXIT_TRY_LATER,
    "overloaded": EXIT_TRY_LATER,
}

SETUP_GUIDE = """\
imagine-bot has nothing to run yet. Set at least:

  GEMINI_API_KEY=...          a Gemini API key (https://aistudio.google.com/apikey)

With only that, `python -m bot run` serves the web dashboard and prints a sign-in
link. For chat, add one platform:
  SLACK_BOT_TOKEN=xoxb-... with SLACK_SIGNING_SECRET=... (HTTP) or SLACK_APP_TOKEN=xapp-... (Socket Mode)
  DISCORD_TOKEN=...

Put them in the environment or in a .env file here. To try a render from the
terminal:  python -m bot imagine "a koi pond at dawn" --ar 16:9
"""


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Finished:
    delivery: Delivery
    job: Job


class FileNotifier:
    """The CLI's notifier: writes the result where the job's delivery says."""

    platform = "cli"

    def __init__(self, store: Store) -> None:
        self._store = store
        self.finished: asyncio.Future[Finished] = asyncio.get_running_loop().create_future()

    async def deliver(self, delivery: Delivery, job: Job) -> None:
        if delivery.kind == "started":
            if job.attempt > 1 or sys.stderr.isatty():
                print(f"generating (attempt {job.attempt} of {job.max_attempts})...", file=sys.stderr)
            return
        if delivery.kind == "result":
            image = await self._store.get_image(delivery.payload["image_id"])
            if image is None:  # the dispatcher retries it, as it does a job that is gone
                raise LookupError(f"image {delivery.payload['image_id']} is gone")
            try:
                await asyncio.to_thread(Path(job.delivery["out"]).write_bytes, image.data)
            except OSError as exc:
                # Said once and final: retrying the delivery would not make the path writable.
                if not self.finished.done():
                    self.finished.set_exception(
                        CliError(
                            f"cannot write {job.delivery['out']}: {exc.strerror or exc} (the image is job "
                            f"{job.id}'s; it was charged)",
                            EXIT_FAILED,
                        )
                    )
                return
        if not self.finished.done():
            self.finished.set_result(Finished(delivery, job))

    async def notice(self, payload: dict) -> None:
        """Nothing to tell: the CLI is never offered [Ask a moderator]."""

    async def alert(self, text: str) -> None:
        # Alerts go only to platforms with a moderators' channel (bootstrap), never to the CLI.
        log.warning("alert: %s", text)


async def imagine(settings: Settings, args: argparse.Namespace) -> int:
    if args.lane == "batch":
        raise CliError(
            "--batch answers within hours and this command waits for its image: use --relax (the Flex "
            "lane, also half price, usually within 15 minutes), or ask with --batch in Slack or Discord.",
            EXIT_INVALID,
        )
    inputs = [read_image(path) for path in args.image]
    # Check the provider's configuration before anything is written.
    runtime = await bootstrap.build(settings, notifiers=[], provider=bootstrap.build_provider(settings))
    try:
        notifier = FileNotifier(runtime.store)
        runtime.dispatcher.add(notifier)
        out = Path(args.out or time.strftime("imagine-%Y%m%d-%H%M%S.png"))
        request = ImagineRequest(
            team="cli",
            channel="cli",
            user=getpass.getuser(),
            platform=CLI_PLATFORM,
            prompt=args.prompt,
            aspect_ratio=args.ar,
            size=args.size,
            model=args.model,
            lane=args.lane,
            images=tuple(inputs),
            # One quick filesystem lookup before the job exists: not worth a thread.
            delivery={"out": str(out.resolve())},  # noqa: ASYNC240
        )
        outcome = await runtime.service.submit(request)
        if isinstance(outcome, NeedsConfirmation):
            if not args.yes:
                raise CliError(
                    f"{outcome.detail} Rerun with --yes to go ahead (about {usd(to_micros(outcome.estimate_usd))}).",
                    EXIT_NEEDS_CONFIRMATION,
                )
            again = confirmed(outcome)
            assert isinstance(again, ImagineRequest)  # the CLI only asks for new images
            outcome = await runtime.service.submit(again)
        if isinstance(outcome, Refused):
            raise CliError(outcome.detail, EXIT_BY_REFUSAL.get(outcome.reason, EXIT_INVALID))
        assert isinstance(outcome, Accepted)  # a confirmed request is never asked to confirm again
        if outcome.lane == Lane.BATCH and not outcome.cached:
            # A relaxed request on a model without Flex goes to the Batch lane, which answers in
            # hours through a runner this command does not start: take it back rather than hang.
            await runtime.service.cancel(outcome.job_id)
            raise CliError(
                f"{outcome.model} has no Flex lane, so --relax would go to the Batch lane, which "
                "answers within hours; this command waits for its image. Run it without --relax, "
                "or ask in Slack or Discord. Nothing was charged.",
                EXIT_INVALID,
            )
        if outcome.downgraded_from:
            print(
                f"note: switched from {outcome.downgraded_from} to {outcome.model}: the team is near its budget",
                file=sys.stderr,
            )
        runtime.add_worker(concurrency=1, only_job_id=outcome.job_id)
        stop = asyncio.Event()
        running = asyncio.create_task(runtime.run(stop))
        try:
            # Whichever ends first: the result, or the workers themselves (a crash must not hang us).
            either: set[asyncio.Future[Any]] = {running, notifier.finished}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not notifier.finished.done():
                running.result()  # raises what stopped the workers
                raise CliError("the worker stopped before the image was ready", EXIT_FAILED)
            done = notifier.finished.result()
        finally:
            stop.set()
            await running
    finally:
        await runtime.close()
    return report(done, out, note=outcome.retired_note)


def report(done: Finished, out: Path, *, note: str | None = None) -> int:
    payload = done.delivery.payload
    if done.delivery.kind == "result":
        cached = " (from the cache: the same request was answered recently)" if payload.get("cached") else ""
        notes = [n for n in (stale_note(payload), hedge_note(payload), note) if n]
        print(
            f"wrote {out} ({payload['aspect_ratio']}, {payload['size']}) "
            f"model {payload['model_version']} cost ${payload['cost_usd']} "
            f"in {payload['elapsed_s']:.1f}s{cached}" + "".join(f" ({n})" for n in notes)
        )
        return EXIT_OK
    kind = payload.get("error_class")
    print(f"error: {user_message_for(kind)} [{kind}: {payload.get('detail', 'no detail')}]", file=sys.stderr)
    return EXIT_BY_ERROR.get(kind or "", EXIT_FAILED)


def read_image(path: str) -> InputImage:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}", EXIT_INVALID) from None
    try:
        checked = images.check(data)
    except InvalidRequest as exc:
        raise CliError(f"{path}: {exc}", EXIT_INVALID) from None
    return InputImage(checked.data, checked.mime)


async def budget(settings: Settings, args: argparse.Namespace) -> int:
    runtime = await bootstrap.build(settings, notifiers=[])
    try:
        # Whoever runs the CLI operates the bot: a moderator of every team.
        caller = Caller(team=args.team, user="cli", platform_admin=True, platform=CLI_PLATFORM)
        if args.action == "set":
            scope, scope_id = (
                (Scope.CHANNEL, args.channel)
                if args.channel
                else (Scope.USER, args.user)
                if args.user
                else (Scope.TEAM, "")
            )
            result = await runtime.service.set_budget(
                caller, args.usd, args.period, scope=scope, scope_id=scope_id, soft_threshold=args.soft
            )
            if isinstance(result, Refused):
                raise CliError(result.detail, EXIT_INVALID)
            # A linked team's budgets are its organisation's (bot/orgs.py): say whose was set.
            whose = (
                f"team {args.team}"
                if result.team == args.team
                else f"organisation {result.team} ({args.team} is in it)"
            )
            print(
                f"set {result.label()} budget of {whose}: {usd(result.limit_micros)} per "
                f"{result.period.value} (alert at {result.soft_threshold:.0%})"
            )
            return EXIT_OK
        statuses = await runtime.service.show_budgets(caller)
        if isinstance(statuses, Refused):
            raise CliError(statuses.detail, EXIT_INVALID)
        for status in statuses:
            print(status.describe())
            if status.budget.default:
                print(
                    f"  (the default for a team with no budget of its own, [policy] default_team_budget_usd; "
                    f"give it its own with: python -m bot budget set --team {args.team} --usd 50)"
                )
        return EXIT_OK
    finally:
        await runtime.close()


async def usage(settings: Settings, args: argparse.Namespace) -> int:
    if args.since:
        try:
            since = utc_date(args.since, "--since")
        except InvalidRequest as exc:
            raise CliError(str(exc), EXIT_INVALID) from None
    else:
        since = period_start(Period.MONTH, time.time())
    runtime = await bootstrap.build(settings, notifiers=[])
    try:
        # The charges alone unless asked for all: filtered in the query, so a team's reservations
        # for its queued jobs are not read only to be dropped.
        entry = None if args.all_entries else "settlement"
        # A linked team's rows: its organisation's (while linked) and its own (before).
        keys = await runtime.service.team_keys(args.team) if args.team else (None,)
        rows = [row for key in keys for row in await runtime.store.ledger(team=key, since=since, entry=entry)]
        rows.sort(key=lambda row: row["id"])
    finally:
        await runtime.close()
    print(render_ledger(rows, args.format, since), end="")
    return EXIT_OK


async def dashboard_link(settings: Settings, args: argparse.Namespace) -> int:
    if not args.team.strip() or not args.user.strip():
        raise CliError("--team and --user must not be blank", EXIT_INVALID)
    runtime = await bootstrap.build(settings, notifiers=[])
    try:
        if not runtime.service.team_allowed(args.team):
            raise CliError(f"team {args.team} is not on the [access] teams allow-list", EXIT_INVALID)
        sign_in = bootstrap.sign_in(runtime)
        print(sign_in.link(args.team, args.user, Role.MODERATOR if args.moderator else Role.MEMBER))
    finally:
        await runtime.close()
    print("(one use, valid for 10 minutes)", file=sys.stderr)
    return EXIT_OK


async def run_doctor(settings: Settings) -> int:
    provider = bootstrap.build_provider(settings) if settings.provider_configured else None
    runtime = await bootstrap.build(settings, notifiers=[], provider=provider)
    try:
        healthy = await doctor(runtime, settings)
    finally:
        await runtime.close()
    return EXIT_OK if healthy else EXIT_CONFIG


async def run(settings: Settings, command: str) -> int:
    """`run`: workers plus every configured adapter, in one process. For
    scale-out: `worker` (workers only), `web` (Slack and the HTTP endpoints),
    `discord` (the Discord gateway)."""
    role = bootstrap.ROLES[command]
    web_only = command == "run" and not (settings.slack_configured or settings.discord_configured)
    if web_only and not settings.provider_configured:
        print(SETUP_GUIDE, file=sys.stderr)
        return EXIT_CONFIG
    if web_only:
        settings = first_run.with_web_secret(settings)
    if command == "discord" and not settings.discord_configured:
        raise CliError("`discord` runs the Discord gateway: set DISCORD_TOKEN.", EXIT_CONFIG)
    if command == "web" and not settings.slack_configured:
        log.warning("web: Slack is not configured; serving only /healthz and /metrics")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if early_stop.requested():
        stop.set()
    provider = bootstrap.build_provider(settings) if role.workers else None
    runtime = await build_unless_stopped(settings, provider, stop)
    if runtime is None:
        log.info("%s: stopped before it started", command)
        return EXIT_OK
    try:
        if role.workers:
            runtime.add_worker()
        closers = await bootstrap.start_adapters(runtime, role)
        if web_only:
            print(first_run.invitation(runtime), file=sys.stderr, flush=True)
        log.info(
            "%s: %d worker slots on %s",
            command,
            settings.imagine_workers if role.workers else 0,
            settings.database_label,
        )
        try:
            await runtime.run(stop)
        finally:
            for close in reversed(closers):
                await close()
    finally:
        await runtime.close()
    if runtime.rejected is not None:  # e.g. DISCORD_TOKEN: one line, exit 4 (main)
        raise runtime.rejected
    return EXIT_OK


async def build_unless_stopped(
    settings: Settings, provider: ImageProvider | None, stop: asyncio.Event
) -> bootstrap.Runtime | None:
    """The runtime, or None when `stop` is set before it is built (opening the store may wait
    on a database that does not answer: the stop ends the wait)."""
    if stop.is_set():
        return None
    building = asyncio.ensure_future(bootstrap.build(settings, notifiers=[], provider=provider))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait((building, stopping), return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not building.done():
        building.cancel()  # store.open() closes what it opened
        with contextlib.suppress(asyncio.CancelledError):
            await building
        return None
    runtime = building.result()
    if stop.is_set():
        await runtime.close()
        return None
    return runtime


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command not in SERVICES:
        early_stop.release()  # a one-shot command stops as any command does
    logging.basicConfig(
        # Long-running processes log progress; one-shot commands print only their answer.
        level=logging.DEBUG if args.verbose else logging.INFO if args.command in SERVICES else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose and args.command == "imagine":
        # One clear line on failure: the worker's own error log would repeat it.
        logging.getLogger("bot").setLevel(logging.CRITICAL)
    try:
        settings = Settings()
        # The whole file, before any command logs or starts anything on it.
        read_config(settings.imagine_config)
        if args.command == "imagine":
            return asyncio.run(imagine(settings, args))
        if args.command == "budget":
            return asyncio.run(budget(settings, args))
        if args.command == "usage":
            return asyncio.run(usage(settings, args))
        if args.command == "dashboard-link":
            return asyncio.run(dashboard_link(settings, args))
        if args.command == "doctor":
            return asyncio.run(run_doctor(settings))
        if args.command == "org":
            from bot.cli_org import org  # it imports this module's errors

            return asyncio.run(org(settings, args))
        return asyncio.run(run(settings, args.command))
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid configuration: {problems}", file=sys.stderr)
        return EXIT_CONFIG
    except (bootstrap.ConfigError, ConfigFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreMisconfigured as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreUnavailable as exc:
        print(f"error: the database is unavailable: {exc}", file=sys.stderr)
        return EXIT_TRY_LATER
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `python -m bot usage | head`: the reader has all it wanted
        return EXIT_OK
    except Exception:
        # Services log the trace (that is their log); one-shot commands keep it for -v.
        level = logging.CRITICAL if args.command in SERVICES else logging.DEBUG
        log.log(level, "unexpected error", exc_info=True)
        print("error: unexpected internal error (run with --verbose for the trace)", file=sys.stderr)
        return EXIT_BUG
