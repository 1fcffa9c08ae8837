"""The Store contract for the budget audit and the filtered ledger the dashboard reads: every
budget change recorded with who, from what and to what, in the change's own transaction."""

from __future__ import annotations

import pytest

from bot.ledger_view import LedgerFilter
from bot.money.budgets import Budget, Period, Scope
from tests.support.store_contract import settle

MONTH_50 = Budget("T1", Scope.TEAM, "", 50_000_000, Period.MONTH, soft_threshold=0.8)


async def test_a_first_set_a_change_and_a_removal_are_audited_newest_first(store, clock):
    await store.set_budget(MONTH_50, "U-mod", "slack")
    clock.advance(60)
    await store.set_budget(Budget("T1", Scope.TEAM, "", 20_000_000, Period.WEEK, soft_threshold=0.5), "cli", "cli")
    clock.advance(60)
    assert await store.delete_budget("T1", Scope.TEAM, "", "U-web", "web")
    changes = await store.budget_changes("T1", 10)
    assert [(c["user"], c["platform"], c["scope"], c["scope_id"]) for c in changes] == [
        ("U-web", "web", "team", ""),
        ("cli", "cli", "team", ""),
        ("U-mod", "slack", "team", ""),
    ]
    removed, changed, first = changes
    assert (removed["old_limit_micros"], removed["old_period"], removed["new_limit_micros"]) == (
        20_000_000,
        "week",
        None,
    )
    assert (changed["old_limit_micros"], changed["old_period"], changed["old_soft_threshold"]) == (
        50_000_000,
        "month",
        pytest.approx(0.8),
    )
    assert (changed["new_limit_micros"], changed["new_period"], changed["new_soft_threshold"]) == (
        20_000_000,
        "week",
        pytest.approx(0.5),
    )
    assert first["old_limit_micros"] is None and first["new_limit_micros"] == 50_000_000
    assert [c["created_at"] for c in changes] == [clock.now, clock.now - 60, clock.now - 120]
    assert await store.budget_changes("T1", 1) == [removed]


async def test_removing_no_budget_records_nothing_and_teams_see_only_their_own_changes(store):
    assert not await store.delete_budget("T1", Scope.USER, "U1", "U-web", "web")
    await store.set_budget(Budget("T2", Scope.CHANNEL, "C9", 1_000_000, Period.DAY), "U-other", "discord")
    assert await store.budget_changes("T1", 10) == []
    [theirs] = await store.budget_changes("T2", 10)
    assert (theirs["scope"], theirs["scope_id"], theirs["team"]) == ("channel", "C9", "T2")


async def test_the_ledger_filters_by_date_user_model_and_entry_newest_first(store, clock):
    day = 86400
    clock.now = 1_800_000_000.0 - 1_800_000_000.0 % day + 3600
    first = await settle(store, "T1", "pro", 100, "a", user="U1")
    clock.advance(day)
    second = await settle(store, "T1", "flash", 200, "b", user="U2")
    third = await settle(store, "T1", "pro", 300, "c", user="U1")
    await settle(store, "T2", "pro", 999, "other team", user="U1")

    async def jobs(filters: LedgerFilter, limit: int = 50, offset: int = 0) -> list[int]:
        return [r["job_id"] for r in await store.ledger_rows("T1", filters, limit=limit, offset=offset)]

    assert await jobs(LedgerFilter()) == [third, second, first]
    assert await jobs(LedgerFilter(user="U1")) == [third, first]
    assert await jobs(LedgerFilter(model="flash")) == [second]
    assert await jobs(LedgerFilter(since=clock.now - clock.now % day)) == [third, second]
    assert await jobs(LedgerFilter(until=clock.now - clock.now % day)) == [first]
    assert await jobs(LedgerFilter(lane="batch")) == []
    assert await jobs(LedgerFilter(lane="standard", channel="C1"), limit=1, offset=1) == [second]
    assert await jobs(LedgerFilter(), limit=2**62) == [third, second, first]  # every row, as the CSV asks
    # All entries: each job's reservation, settlement and release.
    rows = await store.ledger_rows("T1", LedgerFilter(entry=None, user="U2"), limit=50)
    assert sorted(r["entry"] for r in rows) == ["release", "reservation", "settlement"]
