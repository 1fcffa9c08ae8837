"""Exact admission across linked platforms with several processes on one database: 200 requests,
half from Slack and half from Discord (linked teams), against one budget for exactly 10 images,
from four processes at once, admit exactly 10."""

from __future__ import annotations

import asyncio
import multiprocessing
from decimal import Decimal

import pytest

from bot.access import Caller
from bot.catalog import load_catalog
from bot.service import ImagineService
from bot.types import Accepted, ImagineRequest, Refused
from tests.support.postgres import drop_schema, unique_schema

PROCESSES = 4
REQUESTS = 200


def _open(kind: str, where: str, schema: str | None):
    from bot.store.postgres import PostgresStore
    from bot.store.sqlite import SQLiteStore

    return PostgresStore(where, schema=schema, max_size=4) if kind == "postgres" else SQLiteStore(where)


def _request(i: int) -> ImagineRequest:
    team, platform = ("T0123", "slack") if i % 2 else ("4455", "discord")
    # Each its own user: a user's concurrent-jobs quota is not what is measured here.
    return ImagineRequest(team=team, channel="C1", user=f"u{i}", platform=platform, prompt="a koi pond", confirmed=True)


async def _submit_share(kind: str, where: str, schema: str | None, n: int, start) -> tuple[int, int]:
    store = _open(kind, where, schema)
    await store.open()
    try:
        service = ImagineService(store, load_catalog())
        await asyncio.to_thread(start.wait)  # every process opened: go at once
        mine = range(n, REQUESTS, PROCESSES)
        outcomes = await asyncio.gather(*(service.submit(_request(i)) for i in mine))
        return sum(isinstance(o, Accepted) for o in outcomes), sum(isinstance(o, Refused) for o in outcomes)
    finally:
        await store.close()


def _process(kind: str, where: str, schema: str | None, n: int, start, results) -> None:
    results.put(asyncio.run(_submit_share(kind, where, schema, n, start)))


async def _prepare(kind: str, where: str, schema: str | None) -> Decimal:
    store = _open(kind, where, schema)
    await store.open()
    try:
        service = ImagineService(store, load_catalog())
        await service.link_teams("T0123", "4455")
        probe = await service.submit(
            ImagineRequest(team="T-probe", channel="C", user="U0", platform="slack", prompt="a koi pond")
        )
        assert isinstance(probe, Accepted) and probe.estimate_usd
        moderator = Caller("T0123", "U1", platform_admin=True, platform="slack")
        assert not isinstance(await service.set_budget(moderator, str(10 * probe.estimate_usd)), Refused)
        return probe.estimate_usd
    finally:
        await store.close()


async def _reserved(kind: str, where: str, schema: str | None) -> int:
    store = _open(kind, where, schema)
    await store.open()
    try:
        [status] = [s for s in await store.budget_statuses("T0123", None, None) if s.budget.scope.value == "team"]
        return status.reserved_micros
    finally:
        await store.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_linked_slack_and_discord_in_four_processes_admit_exactly_ten(kind, tmp_path, request):
    schema = None
    if kind == "postgres":
        where, schema = request.getfixturevalue("postgres_url"), unique_schema()
    else:
        where = str(tmp_path / "shared.db")
    try:
        estimate = asyncio.run(_prepare(kind, where, schema))
        ctx = multiprocessing.get_context("spawn")
        start, results = ctx.Barrier(PROCESSES), ctx.Queue()
        processes = [
            ctx.Process(target=_process, args=(kind, where, schema, n, start, results)) for n in range(PROCESSES)
        ]
        for p in processes:
            p.start()
        shares = [results.get(timeout=180) for _ in processes]
        for p in processes:
            p.join(timeout=60)
        assert sum(a for a, _ in shares) == 10
        assert sum(r for _, r in shares) == REQUESTS - 10
        assert asyncio.run(_reserved(kind, where, schema)) == 10 * int(estimate * 1_000_000)
    finally:
        if schema is not None:
            asyncio.run(drop_schema(where, schema))
