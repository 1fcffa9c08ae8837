"""Benchmark (not a test): a soak. Ten minutes of mixed load with faults, then the tally.

    python bench/soak.py [--minutes 10] [--rate 2] [--workers 3] [--kill-every 30]

The bot runs as in production scale-out: one `python -m bot web` (Slack, /healthz, the
outbox) and `--workers` `python -m bot worker` processes, on a throwaway PostgreSQL cluster
(initdb/pg_ctl on its own port, tests/support/pg_cluster.py), between the loopback fake Slack
and fake Gemini. For `--minutes` it sends `--rate` signed Slack requests a second, a mix of
renders (/imagine), edits (a reply in an image's thread), reruns ([Reroll]) and deletes
([Delete]) (bench/soak_load.py). Meanwhile:

- every `--kill-every` s the oldest worker is SIGKILLed and a new one started;
- once, at 40% of the run, the postmaster is SIGKILLed, left down `--db-down` s, and started
  again (requests made meanwhile must be refused with the "database unavailable" message);
- every bot process's RSS is sampled once a second.

Then the load stops, the queue and the outbox drain, and bench/soak_tally.py counts:

- jobs lost: a job not in a final state, a succeeded job whose image never posted, or a
  request acked 200 that made no job and got no answer (target 0);
- double charges: a provider call settled twice (target 0); separately, jobs billed on more
  than one attempt: a job re-run after its worker's lease ran out (a killed worker's, or
  during the outage) made a second real, billed call, by design (one ledger row per call);
- double posts: a job's image posted more than once to the fake Slack (target 0);
- peak RSS: the most the bot's processes held at one moment, summed, and the most of one;
- the database's size before and after the pruner (every kind kept one day, its clock two
  days on), and after a VACUUM FULL.

Prints a table and merges its figures into bench/results.json under "soak".
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from bench.common import UNLIMITED_POLICY, BenchGemini, bench_main, verdict  # noqa: E402
from bench.soak_fleet import Fleet, restart_database  # noqa: E402
from bench.soak_load import USERS, Load, SoakSlack  # noqa: E402
from bench.soak_tally import prune_and_measure, tally  # noqa: E402
from tests.support.pg_cluster import Cluster, why_no_cluster  # noqa: E402
from tests.support.probe import eventually  # noqa: E402
from tests.support.slack_world import SECRET, slack_bot_env  # noqa: E402


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="how long the load runs (default 10)")
    p.add_argument("--rate", type=float, default=2.0, help="Slack requests a second")
    p.add_argument("--workers", type=int, default=3, help="worker processes")
    p.add_argument("--slots", type=int, default=2, help="worker slots per process (IMAGINE_WORKERS)")
    p.add_argument("--kill-every", type=float, default=30.0, help="seconds between worker SIGKILLs")
    p.add_argument("--db-down", type=float, default=8.0, help="seconds the database stays down")
    p.add_argument("--lease", type=float, default=20.0, help="IMAGINE_LEASE_SECONDS: a killed worker's jobs wait this")
    p.add_argument("--gemini-latency", type=float, default=1.0, help="the fake model's latency, s")
    p.add_argument("--keep-logs", action="store_true", help="keep the bot's logs (their directory is printed)")
    p.add_argument("--drain-timeout", type=float, default=300.0, help="seconds the queue may take to drain")
    return p


async def send_load(load: Load, rate: float, until: float) -> None:
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        for n in range(10**9):
            due = started + n / rate
            if due >= until:
                return
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await load.step(session)


async def kill_workers(fleet: Fleet, every: float, until: float) -> None:
    """A SIGKILL every `every` s on the clock; each replacement starts meanwhile (a start takes
    10-30 s on a busy machine, and must not stretch the cadence)."""
    started, replacements = time.monotonic(), []
    for n in itertools.count(1):
        due = started + n * every
        if due >= until:
            break
        await asyncio.sleep(due - time.monotonic())
        if fleet.workers:  # else every worker is still starting: skip this beat
            replacements.append(asyncio.create_task(fleet.kill_a_worker()))
    await asyncio.gather(*replacements)


async def drained(base: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{base}/healthz") as r:
            health = await r.json()
    except aiohttp.ClientError:
        return False
    return r.status == 200 and health["queued"] == health["running"] == health["outbox_pending"] == 0


async def run(args: argparse.Namespace) -> dict:
    if reason := why_no_cluster():
        raise SystemExit(f"soak: {reason}")
    cluster = Cluster()
    cluster.init()
    cluster.start()
    try:
        workdir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
        if args.keep_logs:
            print(f"soak: the bot's logs are in {workdir}", file=sys.stderr)
        try:
            return await _soak(args, cluster, workdir)
        finally:
            if not args.keep_logs:
                shutil.rmtree(workdir, ignore_errors=True)
    finally:
        try:
            cluster.stop()
        finally:
            cluster.remove()


async def _soak(args: argparse.Namespace, cluster: Cluster, workdir: Path) -> dict:
    config = workdir / "imagine.toml"
    # No limits: the default team budget ($20 a month) would refuse renders after ~2 minutes of
    # this load (UNLIMITED_POLICY raises it; a second key in the same table is a TOML error).
    config.write_text(UNLIMITED_POLICY)
    gemini = BenchGemini(image_scale=0.125, latency=args.gemini_latency)
    slack = SoakSlack()
    async with gemini, slack:
        for user in USERS:
            slack.add_user(user)
        env = slack_bot_env(
            slack,
            gemini,
            cluster.url,
            config,
            IMAGINE_LEASE_SECONDS=str(args.lease),
            IMAGINE_CACHE_TTL="0",  # every render and rerun reaches the model
        )
        fleet = Fleet(env, workdir, workers=args.workers, slots=args.slots)
        sampling = asyncio.Event()
        try:
            await fleet.start()
            assert fleet.web is not None
            sampler = asyncio.create_task(fleet.sample_memory(sampling))
            load = Load(slack, f"{fleet.web.base}/slack/events", SECRET)
            started = time.monotonic()
            until = started + args.minutes * 60
            killer = asyncio.create_task(kill_workers(fleet, args.kill_every, until))
            sender = asyncio.create_task(send_load(load, args.rate, until))
            await asyncio.sleep(args.minutes * 60 * 0.4)
            down_at = time.monotonic()
            down_s = await restart_database(cluster, args.db_down)
            await asyncio.gather(sender, killer)
            load_s = time.monotonic() - started
            drain_started = time.monotonic()
            await eventually(
                lambda: drained(fleet.web.base), args.drain_timeout, interval=1.0, what="the queue draining"
            )
            drain_s = time.monotonic() - drain_started
            sampling.set()
            await sampler
        finally:
            sampling.set()
            await fleet.stop()
        counted = await tally(cluster.url, slack, load.sent, len(gemini.requests))
    sizes = await prune_and_measure(cluster.url)
    return {
        "soak": {
            "minutes": args.minutes,
            "load_s": round(load_s, 1),
            "drain_s": round(drain_s, 1),
            "rate_per_s": args.rate,
            "workers": args.workers,
            "slots": args.slots,
            "lease_s": args.lease,
            "workers_killed": fleet.killed,
            "worker_starts": fleet.started,
            "worker_starts_refused": fleet.failed_starts,
            "database_down_s": round(down_s, 1),
            "database_down_at": round(down_at, 1),  # monotonic, as the lost requests' times
            "tracebacks_logged": fleet.tracebacks(),
            **counted,
            "peak_rss_mb": {
                "sum_of_processes": round(fleet.peak_sum_kib / 1024),
                "one_process": round(fleet.peak_one_kib / 1024),
                "processes": 1 + args.workers,
            },
            "storage": sizes,
        }
    }


def rows(results: dict) -> list[tuple]:
    r = results.get("soak")
    if not r:
        return []
    s, rss = r["storage"], r["peak_rss_mb"]
    requests = ", ".join(f"{n} {kind}s" for kind, n in r["requests"].items())
    return [
        (
            f"soak: {r['minutes']:g} min, {requests}; {r['workers_killed']} worker SIGKILLs, "
            f"database down {r['database_down_s']} s once",
            f"{r['jobs']} jobs ({', '.join(f'{n} {s}' for s, n in r['jobs_by_state'].items())}); "
            f"{r['refused_database_down']} refused while down, {r['refused_otherwise']} otherwise; "
            f"drained in {r['drain_s']} s",
            "",
            "",
        ),
        ("  jobs lost", str(r["jobs_lost"]), "0", verdict(r["jobs_lost"] == 0)),
        ("  double charges (one call settled twice)", str(r["double_charges"]), "0", verdict(r["double_charges"] == 0)),
        (
            "  jobs billed on two attempts (re-run after a lost lease)",
            f"{r['jobs_billed_on_more_than_one_attempt']} ({r['settlements']} settlements, "
            f"{r['provider_calls']} model calls)",
            "reported",
            "",
        ),
        (
            "  model calls never settled (their worker SIGKILLed mid-call; the job ran again)",
            str(r["calls_not_settled"]),
            "reported",
            "",
        ),
        (
            "  double posts",
            f"{r['double_posts']} ({r['images_posted']} images posted)",
            "0",
            verdict(r["double_posts"] == 0),
        ),
        (
            f"  peak RSS, {rss['processes']} bot processes",
            f"{rss['sum_of_processes']} MB summed at one moment; {rss['one_process']} MB the most of one",
            "",
            "",
        ),
        (
            "  database size, before / after pruning / after VACUUM FULL",
            f"{s['before']['database_mb']} / {s['after_prune']['database_mb']} / "
            f"{s['after_vacuum_full']['database_mb']} MB (image bytes {s['before']['blob_mb']} -> "
            f"{s['after_prune']['blob_mb']} MB)",
            "smaller after",
            verdict(s["after_vacuum_full"]["database_mb"] < s["before"]["database_mb"]),
        ),
        ("  tracebacks in the bot's logs", str(r["tracebacks_logged"]), "0", verdict(r["tracebacks_logged"] == 0)),
    ]


if __name__ == "__main__":
    bench_main(run, parser, rows)
