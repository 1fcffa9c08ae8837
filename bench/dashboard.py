"""The dashboard overview's server time with 100,000 ledger rows, on SQLite and PostgreSQL.

    python bench/dashboard.py [--rows 100000] [--requests 50] [--url postgresql://...] [--no-postgres]

One team's ledger is filled in bulk (reservation, settlement and release rows of jobs spread
over 90 days, 40 people, 12 channels, three models, the Standard, Flex and Batch lanes, and
answers from the cache), straight into the tables the bot's migrations made. Then GET
/dashboard/ with a valid session cookie is timed in process (the bot's aiohttp app on a loopback
port, as tests/support/dashboard.py serves it), after a few warm-up requests. The query plans of
the overview's reads are printed: a full scan of the ledger or the jobs is what to index.
PostgreSQL runs in a throwaway schema, ANALYZEd after the fill (autovacuum would by then); it is
skipped when the server cannot be reached. Target (issue 15): p95 < 200 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from adapters.web.app import COOKIE, add_dashboard  # noqa: E402
from bench.common import bench_main, ms_summary, percentile, verdict  # noqa: E402
from bot.catalog import load_catalog  # noqa: E402
from bot.money.budgets import Period, period_start  # noqa: E402
from bot.service import ImagineService  # noqa: E402
from bot.sign_in import Role, SignIn  # noqa: E402
from bot.store import sql  # noqa: E402
from bot.store.ports import Store  # noqa: E402
from bot.store.sqlite import SQLiteStore  # noqa: E402

TARGET_P95_MS = 200.0
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
TEAM, VIEWER = "T1", "U1"
SECRET = "bench-secret-" + "x" * 32
DAY = 86400
# The overview's reads, by their named SQL: the plans printed and checked for full scans.
OVERVIEW_QUERIES = (
    "budget_usage",
    "daily_spend_by_model",
    "spend_by_user",
    "spend_by_channel",
    "cache_savings",
    "relaxed_charges",
)
MODELS = (("pro", 134_000), ("flash", 39_000), ("lite", 20_000))
LANES = ("standard",) * 7 + ("flex",) * 2 + ("batch",)
JOB_COLUMNS = (
    'id, team, channel, "user", platform, kind, request, delivery, state, round, max_attempts, available_at, '
    "attempt, lane, result_image_id, result, created_at, updated_at, finished_at"
)
LEDGER_COLUMNS = (
    'job_id, entry, attempt, team, channel, "user", model, size, lane, cost_micros, status, price_version, created_at'
)
IMAGE_COLUMNS = "id, job_id, role, mime, width, height, size_bytes, sha256, created_at"
SHA = "0" * 64


def fill_rows(rows: int, now: float, seed: int = 0) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """(jobs, images, ledger) rows: one team, `rows` ledger rows, then cache hits of earlier images."""
    rng = random.Random(seed)
    jobs: list[tuple] = []
    images: list[tuple] = []
    ledger: list[tuple] = []
    job_id = 0
    while len(ledger) < rows:
        job_id += 1
        at = now - rng.random() * 90 * DAY
        user, channel = f"U{rng.randrange(40)}", f"C{rng.randrange(12)}"
        (model, price), lane = rng.choice(MODELS), rng.choice(LANES)
        cost = price // 2 if lane != "standard" else price
        request = json.dumps({"prompt": f"bench {job_id}", "model_alias": model, "size": "1K", "lane": lane})
        result = json.dumps({"model_version": model, "cost_usd": str(cost / 1e6)})
        jobs.append(_job(job_id, channel, user, request, lane, job_id, result, at, attempt=1))
        images.append((job_id, job_id, "output", "image/png", 1024, 1024, 1000, SHA, at))
        who = (TEAM, channel, user, model, "1K", lane)
        for entry, amount, status in (("reservation", cost + 5000, "held"), ("settlement", cost, "succeeded")):
            ledger.append((job_id, entry, 0 if entry == "reservation" else 1, *who, amount, status, "bench", at))
        ledger.append((job_id, "release", 0, *who, 5000, "released", "bench", at))
    del ledger[rows:]
    originals = job_id
    for _ in range(originals // 20):  # one request in 20 answered from the cache
        job_id += 1
        at = now - rng.random() * 90 * DAY
        reused = rng.randrange(1, originals + 1)
        cached = json.dumps({"cost_usd": "0", "cached": True})
        jobs.append(_job(job_id, "C0", "U0", json.dumps({"prompt": "again"}), "standard", reused, cached, at))
    return jobs, images, ledger


def _job(
    job_id: int, channel: str, user: str, request: str, lane: str, image: int, result: str, at: float, attempt: int = 0
) -> tuple:
    """A succeeded job's row (JOB_COLUMNS); a cache hit never ran: attempt 0."""
    return (
        *(job_id, TEAM, channel, user, "slack", "imagine", request, "{}", "succeeded", 0, 3, at),
        *(attempt, lane, image, result, at, at, at),
    )


def _placeholders(columns: str) -> str:
    return ", ".join("?" for _ in columns.split(","))


def bulk_sqlite(path: str, jobs: list[tuple], images: list[tuple], ledger: list[tuple]) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("INSERT INTO blobs (sha256, data) VALUES (?, ?)", (SHA, b"png"))
        # Jobs first without their images (they reference each other), then the images, then the link.
        conn.executemany(f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({_placeholders(JOB_COLUMNS)})", jobs)
        conn.executemany(f"INSERT INTO images ({IMAGE_COLUMNS}) VALUES ({_placeholders(IMAGE_COLUMNS)})", images)
        conn.executemany(f"INSERT INTO ledger ({LEDGER_COLUMNS}) VALUES ({_placeholders(LEDGER_COLUMNS)})", ledger)


async def bulk_postgres(url: str, schema: str, jobs: list[tuple], images: list[tuple], ledger: list[tuple]) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f'SET search_path TO "{schema}"')
        await conn.execute("INSERT INTO blobs (sha256, data) VALUES (%s, %s)", (SHA, b"png"))
        # The jobs' image key is checked at commit time only if deferrable: load the jobs without it.
        await _copy(conn, "jobs", JOB_COLUMNS, ((*j[:14], None, *j[15:]) for j in jobs))
        await _copy(conn, "images", IMAGE_COLUMNS, iter(images))
        await conn.execute(
            "CREATE TEMP TABLE job_images (id BIGINT, image BIGINT)",
        )
        await _copy(conn, "job_images", "id, image", ((j[0], j[14]) for j in jobs))
        await conn.execute("UPDATE jobs SET result_image_id = ji.image FROM job_images ji WHERE jobs.id = ji.id")
        await _copy(conn, "ledger", LEDGER_COLUMNS, iter(ledger))
        await conn.execute("VACUUM ANALYZE")


async def _copy(conn: Any, table: str, columns: str, rows: Iterator[tuple]) -> None:
    async with conn.cursor() as cur:
        async with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row)


def _plan_params(now: float) -> dict[str, Any]:
    return {"team": TEAM, "since": period_start(Period.MONTH, now), "limit": 5, "scope": "team", "scope_id": ""}


def sqlite_plans(path: str, now: float) -> dict[str, str]:
    """Each overview query's plan (EXPLAIN QUERY PLAN), its steps joined by '; '."""
    params = _plan_params(now)
    found = {}
    with closing(sqlite3.connect(path)) as conn:
        for name in OVERVIEW_QUERIES:
            numbered, names = sql.numbered(sql.queries("sqlite")[name])
            rows = conn.execute("EXPLAIN QUERY PLAN " + numbered, [params[n] for n in names]).fetchall()
            found[name] = "; ".join(str(r[-1]) for r in rows)
    return found


async def postgres_plans(url: str, schema: str, now: float) -> dict[str, str]:
    import psycopg

    found = {}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f'SET search_path TO "{schema}"')
        for name in OVERVIEW_QUERIES:
            cur = await conn.execute("EXPLAIN " + sql.queries("postgres")[name], _plan_params(now))  # type: ignore[arg-type]
            found[name] = "; ".join(r[0].strip() for r in await cur.fetchall())
    return found


# A step that reads a whole big table: SQLite's "SCAN t" (with or without an index), PostgreSQL's
# "Seq Scan on t" (an empty table such as holds is read whole at no cost, and is left out).
FULL_SCAN = re.compile(r"(?:^|; )SCAN (ledger|jobs|images|[cil])\b|Seq Scan on (ledger|jobs|images)\b")


def scans(found: dict[str, str]) -> list[str]:
    """The overview queries whose plan reads a whole table, as "query: table"."""
    return [f"{name}: {m[1] or m[2]}" for name, plan in found.items() for m in FULL_SCAN.finditer(plan)]


async def time_overview(store: Store, requests: int) -> list[float]:
    service = ImagineService(store, load_catalog())
    sign_in = SignIn(store, SECRET, "http://127.0.0.1", session_seconds=3600)
    app = web.Application()
    add_dashboard(app, service, sign_in)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    token = sign_in.link(TEAM, VIEWER, Role.MODERATOR).rsplit("/", 1)[1]
    opened = await sign_in.open_link(token, "bench")
    assert not hasattr(opened, "problem"), opened
    cookie = opened[1]  # type: ignore[index]
    seconds = []
    try:
        async with aiohttp.ClientSession(cookies={COOKIE: cookie}) as client:
            for i in range(requests + 3):  # three to warm up
                started = time.perf_counter()
                async with client.get(base + "/dashboard/") as r:
                    page = await r.text()
                elapsed = time.perf_counter() - started
                assert r.status == 200 and "Saved this month" in page, page[:500]
                if i >= 3:
                    seconds.append(elapsed)
    finally:
        await runner.cleanup()
    return seconds


async def measure(store: Store, found: dict[str, str], requests: int, show_plans: bool) -> dict:
    if show_plans:
        for name, plan in found.items():
            print(f"   {name}: {plan}")
    seconds = await time_overview(store, requests)
    return {
        **ms_summary(seconds),
        "p95_ms": round(percentile(seconds, 95) * 1000, 1),
        "requests": requests,
        "full_scans": scans(found),
    }


async def run(args: argparse.Namespace) -> dict:
    now = time.time()
    started = time.perf_counter()
    jobs, images, ledger = fill_rows(args.rows, now)
    results: dict[str, Any] = {"rows": len(ledger), "jobs": len(jobs), "fill_seconds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.db")
        store = SQLiteStore(path)
        await store.open()
        try:
            t = time.perf_counter()
            bulk_sqlite(path, jobs, images, ledger)
            results["fill_seconds"]["sqlite"] = round(time.perf_counter() - t, 1)
            results["sqlite"] = await measure(store, sqlite_plans(path, now), args.requests, args.plans)
        finally:
            await store.close()
    if not args.no_postgres:
        await _postgres(args, now, (jobs, images, ledger), results)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return {"dashboard_overview": results}


async def _postgres(args, now: float, rows: tuple[list, list, list], results: dict) -> None:

    from bot.store.postgres import PostgresStore
    from tests.support.postgres import drop_schema

    schema = f"bench_{uuid.uuid4().hex}"
    store = PostgresStore(args.url, schema=schema)
    try:
        await store.open()
    except Exception as exc:  # no server here: say so, keep SQLite's figures
        results["postgres"] = f"skipped: {type(exc).__name__}: {exc}"[:200]
        return
    try:
        t = time.perf_counter()
        await bulk_postgres(args.url, schema, *rows)
        results["fill_seconds"]["postgres"] = round(time.perf_counter() - t, 1)
        found = await postgres_plans(args.url, schema, now)
        results["postgres"] = await measure(store, found, args.requests, args.plans)
    finally:
        await store.close()
        await drop_schema(args.url, schema)


def rows(results: dict) -> list[tuple]:
    r = results["dashboard_overview"]
    out = []
    for key, label in (
        ("sqlite", "SQLite"),
        ("postgres", "PostgreSQL"),
    ):
        figures = r.get(key)
        if figures is None:
            continue
        name = f"dashboard overview, {r['rows']:,} ledger rows ({label})"
        target = f"p95 < {TARGET_P95_MS:.0f} ms"
        if isinstance(figures, str):
            out.append((name, figures, target, ""))
            continue
        scanned = f"; full scans: {', '.join(figures['full_scans'])}" if figures["full_scans"] else ""
        figure = f"p50 {figures['p50_ms']:.0f} / p95 {figures['p95_ms']:.0f} ms, {figures['requests']} GETs{scanned}"
        out.append((name, figure, target, verdict(figures["p95_ms"] < TARGET_P95_MS)))
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--url", default=DEFAULT_URL)
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    p.add_argument("--plans", action="store_true", help="print each overview query's plan")
    return p


if __name__ == "__main__":
    bench_main(run, parser, rows)
