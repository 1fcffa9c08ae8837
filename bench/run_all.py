"""Every benchmark in sequence, then one combined table.

    python bench/run_all.py [--quota-jobs 300] [--soak-minutes 10] [--only slack_ack,pipeline] [--skip memory]

Each bench runs with its own defaults (see each script's --help), except the quota
bench's job count, which sets how long it takes (~1 minute per --quota-jobs/--rpm,
about 4.5 minutes at the default 300): pass e.g. --quota-jobs 90 for a quick pass;
and the soak's length, last and longest (~10 minutes of load, plus start-up, draining and
pruning): pass e.g. --soak-minutes 2, or --skip soak.
Each bench's figures are merged into bench/results.json as soon as it finishes, so an
interrupted run keeps what it measured. A bench that fails is reported and the rest
still run; the exit code is then 1.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import TABLE_HEADERS, merge_results, print_table  # noqa: E402

# In the order they run: the quick ones first (the bill beside the budget-exactness row).
BENCHES = (
    "queue_and_budget",
    "billing",
    "hedging",
    "queue_postgres",
    "scaling",
    "dashboard",
    "slack_ack",
    "pipeline",
    "memory",
    "quota",
    "soak",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quota-jobs", type=int, default=300, help="jobs for bench/quota.py (default 300)")
    parser.add_argument(
        "--soak-minutes",
        type=float,
        default=10.0,
        help="minutes of load for bench/soak.py (default 10: it runs last and takes ~10 min, plus a minute to drain)",
    )
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated subset to run")
    parser.add_argument("--skip", default="", help="comma-separated benches to leave out")
    args = parser.parse_args()
    chosen = [b for b in args.only.split(",") if b and b not in args.skip.split(",")]
    unknown = set(chosen) - set(BENCHES)
    if unknown:
        parser.error(f"unknown bench(es): {', '.join(sorted(unknown))}; known: {', '.join(BENCHES)}")
    argv = {"quota": ["--jobs", str(args.quota_jobs)], "soak": ["--minutes", str(args.soak_minutes)]}
    table: list[tuple] = []
    failed = []
    for name in (b for b in BENCHES if b in chosen):
        module = importlib.import_module(f"bench.{name}")
        bench_args = module.parser().parse_args(argv.get(name, []))
        print(f"== {name} ...", flush=True)
        started = time.monotonic()
        try:
            results = asyncio.run(module.run(bench_args))
        except Exception:  # report it, run the others
            traceback.print_exc()
            failed.append(name)
            table.append((name, "FAILED (see the trace above)", "", ""))
            continue
        merge_results(results)
        rows = module.rows(results)
        print_table(TABLE_HEADERS, rows)
        print(f"   ({time.monotonic() - started:.0f} s)\n", flush=True)
        table += rows
    print("== all benchmarks")
    print_table(TABLE_HEADERS, table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
