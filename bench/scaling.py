"""Cost against queue size: lease, queue position and `usage` with 1,000, 10,000 and 100,000 queued jobs.

    python bench/scaling.py [--sizes 1000,10000,100000] [--teams 50] [--leases 200]
                            [--url postgresql://...] [--no-postgres] [--plans]

For each size, on SQLite and on PostgreSQL (a throwaway schema), a fresh store gets one real
submit per team through ImagineService (its job, hold and reservation row), then copies of
those rows made in bulk SQL up to the size (what further submits of the same teams would have
made: the same rows, each one round later), and as many finished jobs as queued ones (their
reservation, settlement and release rows, before this month) plus 20 per team this month. A few
more real submits go through the service on the full queue. Then, timed one call after another:

- lease: the store's `lease` (what each worker slot calls), `--leases` times;
- position: the store's `position` (what chat and the web's playground show as "position in
  queue") of a job just submitted by a team with nothing queued, and of the last job queued;
- usage: the store's `ledger` for one team's settlements since the month's start (what
  `python -m bot usage --team T` reads).

Flat means the 100,000-job figure is within 3x the 1,000-job one, and no plan reads a whole
jobs, holds or ledger table or sorts the whole queue. Each query's plan at the largest size is
kept in results.json (and printed with --plans). PostgreSQL is ANALYZEd after the fill
(autovacuum would be by then); SQLite is left as the bot leaves it (no ANALYZE), its WAL
checkpointed.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_main, percentile, verdict  # noqa: E402
from bench.queue_and_budget import NO_LIMITS  # noqa: E402
from bot.catalog import load_catalog  # noqa: E402
from bot.money.budgets import Period, period_start  # noqa: E402
from bot.service import ImagineService  # noqa: E402
from bot.store import sql  # noqa: E402
from bot.store.ports import Store  # noqa: E402
from bot.store.sqlite import SQLiteStore  # noqa: E402
from bot.types import Accepted, ImagineRequest  # noqa: E402
from policies.config import PolicyBook  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
FLAT_FACTOR = 3.0  # the largest size's time within this multiple of the smallest's
THIS_MONTH_PER_TEAM = 20
USAGE_TEAM = "T1"
# The named statements behind lease, position and usage whose plans are checked.
PLANNED = ("lease_pick", "reclaim_pick", "unannounced_pick", "team_last_round", "position", "team_ledger_entry")

# Bulk copies of the real submits' rows (ids lo..hi), written once for both databases. Each
# statement copies the templates in id order, round after round, and ids are given in insert
# order: a copy's template is found by arithmetic on its id, by primary key, not by team.
TEMPLATE = "(:lo + (j.id - :base - 1) % (:hi - :lo + 1))"
COPY_QUEUED = """
WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < :copies)
INSERT INTO jobs (team, channel, "user", platform, kind, request, delivery, cache_key, lane, state, round,
    attempt, max_attempts, available_at, announce_by, created_at, updated_at)
SELECT t.team, t.channel, t."user", t.platform, t.kind, t.request, t.delivery, t.cache_key, t.lane, t.state,
    t.round + k.n, t.attempt, t.max_attempts, t.available_at, t.announce_by, t.created_at, t.updated_at
FROM jobs t, k WHERE t.id BETWEEN :lo AND :hi ORDER BY k.n, t.id
"""
COPY_HOLDS = f"""
INSERT INTO holds (job_id, team, channel, "user", amount_micros, price_version, default_limit_micros,
    default_period, created_at)
SELECT j.id, h.team, h.channel, h."user", h.amount_micros, h.price_version, h.default_limit_micros,
    h.default_period, h.created_at
FROM jobs j JOIN holds h ON h.job_id = {TEMPLATE} WHERE j.id > :base
"""
LEDGER_COLUMNS = """job_id, entry, attempt, team, channel, "user", model, size, lane, prompt_tokens,
    output_tokens, image_tokens, cost_micros, status, price_version, created_at, hedge"""
COPY_RESERVATIONS = f"""
INSERT INTO ledger ({LEDGER_COLUMNS})
SELECT j.id, l.entry, l.attempt, l.team, l.channel, l."user", l.model, l.size, l.lane, l.prompt_tokens,
    l.output_tokens, l.image_tokens, l.cost_micros, l.status, l.price_version, l.created_at, l.hedge
FROM jobs j JOIN ledger l ON l.job_id = {TEMPLATE} WHERE j.id > :base
"""
# Finished jobs, `copies` per team, the n-th created `step` seconds before the (n-1)-th, from :at.
COPY_FINISHED = """
WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < :copies)
INSERT INTO jobs (team, channel, "user", platform, kind, request, delivery, cache_key, lane, state, round,
    attempt, max_attempts, available_at, result, created_at, updated_at, started_at, finished_at)
SELECT t.team, t.channel, t."user", t.platform, t.kind, t.request, t.delivery, t.cache_key, t.lane, 'succeeded',
    0, 1, t.max_attempts, :at - k.n * :step, :result, :at - k.n * :step, :at - k.n * :step, :at - k.n * :step,
    :at - k.n * :step
FROM jobs t, k WHERE t.id BETWEEN :lo AND :hi ORDER BY k.n, t.id
"""
FINISHED_LEDGER = f"""
WITH e(entry, attempt, status, share) AS (VALUES ('reservation', 0, 'held', 100), ('settlement', 1, 'succeeded', 90),
    ('release', 0, 'released', 10))
INSERT INTO ledger ({LEDGER_COLUMNS})
SELECT j.id, e.entry, e.attempt, j.team, j.channel, j."user", l.model, l.size, l.lane, l.prompt_tokens,
    l.output_tokens, l.image_tokens, l.cost_micros * e.share / 100, e.status, l.price_version, j.created_at, 0
FROM jobs j JOIN ledger l ON l.job_id = {TEMPLATE}, e
WHERE j.id > :base
"""


def request(team: int, i: int) -> ImagineRequest:
    return ImagineRequest(team=f"T{team}", channel="C", user=f"U{i % 7}", platform="bench", prompt=f"p{i:06d}")


async def submit(service: ImagineService, team: int, i: int) -> int:
    outcome = await service.submit(request(team, i))
    assert isinstance(outcome, Accepted), outcome
    return outcome.job_id


async def fill(store: Store, execute, size: int, teams: int, now: float) -> dict[str, Any]:
    """The store filled to `size` queued jobs; returns the ids the measurements need."""
    service = ImagineService(store, load_catalog(), policies=PolicyBook(NO_LIMITS))
    ids = [await submit(service, t, t) for t in range(teams)]
    lo, hi = ids[0], ids[-1]
    assert hi - lo + 1 == teams
    await execute(COPY_QUEUED, copies=size // teams - 1, lo=lo, hi=hi)
    await execute(COPY_HOLDS, lo=lo, hi=hi, base=hi)
    await execute(COPY_RESERVATIONS, lo=lo, hi=hi, base=hi)
    first = (await execute("SELECT MAX(id) FROM jobs"))[0]
    result = '{"cost_usd": "0.134"}'
    month = period_start(Period.MONTH, now)
    await execute(COPY_FINISHED, copies=size // teams, lo=lo, hi=hi, at=month - 1, step=60, result=result)
    await execute(COPY_FINISHED, copies=THIS_MONTH_PER_TEAM, lo=lo, hi=hi, at=now - 1, step=1, result=result)
    await execute(FINISHED_LEDGER, lo=lo, hi=hi, base=first)
    # A few real submits on the full queue, timed (each counts its position too).
    submits = []
    for i in range(5):
        started = time.perf_counter()
        await submit(service, i, size + i)
        submits.append(time.perf_counter() - started)
    last = await submit(service, teams - 1, size + 99)  # the end of the queue
    return {"service": service, "last": last, "submit_s": submits, "month": month, "teams": teams}


async def measure(store: Store, filled: dict[str, Any], leases: int) -> dict[str, Any]:
    lease = []
    for i in range(leases):
        started = time.perf_counter()
        job = await store.lease(f"bench-{i}", 300.0)
        lease.append(time.perf_counter() - started)
        assert job is not None
    # Submitted after the leases, by a team with nothing queued: its place is in the round served now.
    fresh = await submit(filled["service"], filled["teams"], 0)
    position_fresh = await _timed(lambda: store.position(fresh), 50)
    position_last = await _timed(lambda: store.position(filled["last"]), 10)
    usage = await _timed(lambda: store.ledger(team=USAGE_TEAM, since=filled["month"], entry="settlement"), 10)
    return {
        "submit_ms": _ms(filled["submit_s"]),
        "lease_ms": _ms(lease),
        "lease_p99_ms": round(percentile(lease, 99) * 1000, 2),
        "position_fresh_ms": _ms(position_fresh[0]),
        "position_fresh": position_fresh[1],
        "position_last_ms": _ms(position_last[0]),
        "position_last": position_last[1],
        "usage_ms": _ms(usage[0]),
        "usage_rows": len(usage[1]),
    }


async def _timed(call, times: int) -> tuple[list[float], Any]:
    seconds, answer = [], None
    for _ in range(times):
        started = time.perf_counter()
        answer = await call()
        seconds.append(time.perf_counter() - started)
    return seconds, answer


def _ms(seconds: list[float]) -> float:
    """The median, in milliseconds."""
    return round(percentile(seconds, 50) * 1000, 2)


def _plan_params(filled: dict[str, Any], now: float) -> dict[str, Any]:
    return {"flex": True, "now": now, "only": None, "team": "T1", "lane": "standard", "id": filled["last"], "limit": 8}


def _ledger_params(filled: dict[str, Any]) -> dict[str, Any]:
    return {"team": USAGE_TEAM, "since": filled["month"], "entry": "settlement"}


def sqlite_plans(path: str, filled: dict[str, Any], now: float) -> dict[str, str]:
    params = _plan_params(filled, now) | _ledger_params(filled)
    found = {}
    with closing(sqlite3.connect(path)) as conn:
        for name in PLANNED:
            numbered, names = sql.numbered(sql.queries("sqlite")[name])
            rows = conn.execute("EXPLAIN QUERY PLAN " + numbered, [params[n] for n in names]).fetchall()
            found[name] = "; ".join(str(r[-1]) for r in rows)
    return found


async def postgres_plans(url: str, schema: str, filled: dict[str, Any], now: float) -> dict[str, str]:
    import psycopg

    params = _plan_params(filled, now) | _ledger_params(filled)
    found = {}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f'SET search_path TO "{schema}"')
        for name in PLANNED:
            cur = await conn.execute("EXPLAIN " + sql.queries("postgres")[name], params)  # type: ignore[arg-type]
            found[name] = "; ".join(r[0].strip() for r in await cur.fetchall())
    return found


# A step that reads a whole big table: SQLite's "SCAN t", PostgreSQL's "Seq Scan on t". SQLite's
# "SCAN t USING INDEX i" walks an index in its order (lease_pick over the partial jobs_runnable,
# stopping at its LIMIT): not a table scan.
SCAN = re.compile(
    r"(?:^|; )SCAN (jobs|holds|ledger|[jolh])\b(?! USING (?:COVERING )?INDEX)|Seq Scan on (jobs|holds|ledger)\b"
)
# A sort (SQLite's temp b-tree, PostgreSQL's Sort) of every row found, to return the first: what
# lease_pick must read from an index in order instead. (Usage sorts the rows it returns: fine.)
SORT = re.compile(r"TEMP B-TREE|Sort\b")
FIRST_ROW_ONLY = ("lease_pick",)


def growing(plans: dict[str, str]) -> list[str]:
    """The steps whose work grows with the table, as "query: step"."""
    found = [(name, m[0]) for name, plan in plans.items() for m in SCAN.finditer(plan)]
    found += [(name, m[0]) for name, plan in plans.items() if name in FIRST_ROW_ONLY for m in SORT.finditer(plan)]
    return [f"{name}: {step.strip('; ')}" for name, step in found]


# -- the two databases ----------------------------------------------------------------------------------


async def on_sqlite(size: int, args: argparse.Namespace) -> tuple[dict, dict[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "bench.db")
        store = SQLiteStore(path)
        await store.open()
        try:
            with closing(sqlite3.connect(path, isolation_level=None)) as conn:

                async def execute(statement: str, **params: Any) -> Any:
                    with conn:
                        return conn.execute(statement, params).fetchone()

                now = time.time()
                started = time.perf_counter()
                filled = await fill(store, execute, size, args.teams, now)
                # The bulk copies' pages out of the WAL, as a running bot's checkpoints would have put them.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                fill_s = time.perf_counter() - started
            figures = await measure(store, filled, args.leases)
            plans = sqlite_plans(path, filled, time.time())
        finally:
            await store.close()
    return {**figures, "fill_seconds": round(fill_s, 1)}, plans


async def on_postgres(size: int, args: argparse.Namespace) -> tuple[dict, dict[str, str]]:
    import psycopg

    from bot.store.postgres import PostgresStore
    from tests.support.postgres import drop_schema

    schema = f"bench_{uuid.uuid4().hex}"
    store = PostgresStore(args.url, schema=schema)
    await store.open()
    try:
        async with await psycopg.AsyncConnection.connect(args.url, autocommit=True) as conn:
            await conn.execute(f'SET search_path TO "{schema}"')

            async def execute(statement: str, **params: Any) -> Any:
                statement = re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", statement.replace("%", "%%"))
                cur = await conn.execute(statement, params)
                return await cur.fetchone() if cur.description else None

            now = time.time()
            started = time.perf_counter()
            filled = await fill(store, execute, size, args.teams, now)
            await conn.execute("VACUUM ANALYZE")
            fill_s = time.perf_counter() - started
        figures = await measure(store, filled, args.leases)
        plans = await postgres_plans(args.url, schema, filled, time.time())
    finally:
        await store.close()
        await drop_schema(args.url, schema)
    return {**figures, "fill_seconds": round(fill_s, 1)}, plans


async def run(args: argparse.Namespace) -> dict:
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, Any] = {"sizes": sizes, "teams": args.teams, "leases": args.leases}
    backends = [("sqlite", on_sqlite)] + ([] if args.no_postgres else [("postgres", on_postgres)])
    for name, measure_on in backends:
        by_size: dict[str, Any] = {}
        for size in sizes:
            figures, plans = await measure_on(size, args)
            by_size[str(size)] = figures
            if args.plans:
                print(f"   {name}, {size:,} queued:")
                for query, plan in plans.items():
                    print(f"     {query}: {plan}")
        results[name] = {"by_size": by_size, "plans": plans, "growing_steps": growing(plans)}
    return {"queue_scaling": results}


# What each row measures, and whether it must stay flat: the last job's position is the count of
# the jobs ahead of it, so it grows with them (but must read no more than them, by index), and
# submit sums the team's holds and counts the new job's place (information, no target here).
MEASURED = (
    ("lease_ms", "per lease", True),
    ("position_fresh_ms", "position of a new team's job", True),
    ("position_last_ms", "position of the last job queued", False),
    ("usage_ms", f"usage ({USAGE_TEAM}'s settlements this month)", True),
    ("submit_ms", "submit on the full queue", None),
)


def rows(results: dict) -> list[tuple]:
    r = results["queue_scaling"]
    sizes = [str(s) for s in r["sizes"]]
    out = []
    for name, label in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        if name not in r:
            continue
        by_size, steps = r[name]["by_size"], r[name]["growing_steps"]
        for key, what, must_be_flat in MEASURED:
            figures = [by_size[s][key] for s in sizes]
            scanned = [s for s in steps if s.split(":")[0] in _queries_of(key)]
            figure = " / ".join(f"{f:g}" for f in figures) + f" ms at {' / '.join(_k(s) for s in sizes)} queued"
            if scanned:
                figure += f"; plan: {', '.join(scanned)}"
            if must_be_flat is None:
                out.append((f"scaling ({label}): {what}", figure, "(information)", ""))
                continue
            flat = figures[-1] <= FLAT_FACTOR * max(figures[0], 0.1)
            target = f"flat (<= {FLAT_FACTOR:g}x), by index" if must_be_flat else "by index (counts the jobs ahead)"
            met = not scanned and (flat or not must_be_flat)
            out.append((f"scaling ({label}): {what}", figure, target, verdict(met)))
    return out


def _queries_of(key: str) -> tuple[str, ...]:
    return {
        "lease_ms": ("lease_pick", "reclaim_pick", "unannounced_pick"),
        "position_fresh_ms": ("position",),
        "position_last_ms": ("position",),
        "usage_ms": ("team_ledger_entry",),
        "submit_ms": ("team_last_round", "position"),
    }[key]


def _k(size: str) -> str:
    n = int(size)
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,10000,100000", help="queued jobs at each step, comma-separated")
    p.add_argument("--teams", type=int, default=50)
    p.add_argument("--leases", type=int, default=200, help="leases timed at each size")
    p.add_argument("--url", default=DEFAULT_URL)
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    p.add_argument("--plans", action="store_true", help="print each query's plan at every size")
    return p


if __name__ == "__main__":
    bench_main(run, parser, rows)
