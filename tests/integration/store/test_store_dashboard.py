"""The Store contract for the web dashboard: one-time sign-in links and spend per day by model."""

from __future__ import annotations

import asyncio

from tests.support.store_contract import settle

DAY = 86400


async def test_a_sign_in_link_is_claimed_once(store, clock):
    expires = clock.now + 600
    assert await store.use_sign_in_link("link-1", "T1", "U1", expires) is True
    assert await store.use_sign_in_link("link-1", "T1", "U1", expires) is False
    assert await store.use_sign_in_link("link-2", "T1", "U1", expires) is True


async def test_of_many_opens_at_once_in_many_processes_exactly_one_signs_in(store_factory, clock):
    stores = [await store_factory() for _ in range(4)]
    claims = await asyncio.gather(
        *(stores[i % 4].use_sign_in_link("link-x", "T1", "U1", clock.now + 600) for i in range(40))
    )
    assert claims.count(True) == 1 and claims.count(False) == 39


async def test_claims_of_expired_links_are_pruned(store, clock):
    await store.use_sign_in_link("old", "T1", "U1", clock.now + 600)
    clock.advance(601)
    # The next claim prunes it (the link itself is refused as expired before it gets here).
    await store.use_sign_in_link("new", "T1", "U1", clock.now + 600)
    assert await store.use_sign_in_link("old", "T1", "U1", clock.now + 600) is True


async def test_daily_spend_sums_settlements_per_utc_day_and_model(store, clock):
    clock.now = 1_800_000_000.0 - 1_800_000_000.0 % DAY + 3600  # 01:00 UTC
    day0 = clock.now - 3600
    await settle(store, "T1", "pro", 100_000, "a")
    await settle(store, "T1", "pro", 50_000, "b")
    await settle(store, "T1", "flash", 20_000, "c")
    await settle(store, "T2", "pro", 999_000, "other team")
    clock.advance(22 * 3600 + 59 * 60)  # 23:59, the same day
    await settle(store, "T1", "flash", 5_000, "d")
    clock.advance(120)  # the next day
    await settle(store, "T1", "pro", 7_000, "e")
    rows = await store.daily_spend_by_model("T1", since=day0)
    assert rows == [
        {"day": day0, "model": "flash", "micros": 25_000},
        {"day": day0, "model": "pro", "micros": 150_000},
        {"day": day0 + DAY, "model": "pro", "micros": 7_000},
    ]
    assert await store.daily_spend_by_model("T1", since=day0 + DAY) == [
        {"day": day0 + DAY, "model": "pro", "micros": 7_000}
    ]
    assert await store.daily_spend_by_model("T3", since=0) == []


async def test_top_spenders_by_user_and_channel(store, clock):
    since = clock.now
    for team, user, cost in (("T1", "U1", 100), ("T1", "U2", 300), ("T1", "U1", 250), ("T1", "U3", 50)):
        await settle(store, team, "pro", cost, f"{user}{cost}", user=user)
    await settle(store, "T2", "pro", 9_999, "other team", user="U1")
    top = await store.top_spenders("T1", since=since, limit=2)
    assert top["user"] == [("U1", 350), ("U2", 300)]
    assert top["channel"] == [("C1", 700)]
    assert await store.top_spenders("T1", since=clock.now + 1, limit=5) == {"user": [], "channel": []}
