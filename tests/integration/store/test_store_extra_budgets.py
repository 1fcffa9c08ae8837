"""The Store contract for budgets that are no stored row (a role's per-user day, issue 18):
checked and held in the same transaction as every other budget, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bot.money.admission import Admission, Denied
from bot.money.budgets import Budget, Period, Scope
from bot.money.quotas import QuotaLimits
from bot.types import Submitted
from tests.support.jobs import new_job

EST = 135_600  # micro-dollars: one Pro 2K estimate


def role_day(limit: int, user: str = "U1") -> Budget:
    day = Budget(team="T1", scope=Scope.USER, scope_id=user, limit_micros=limit, period=Period.DAY)
    return replace(day, soft_threshold=1.0, role="Interns")


def with_role_day(limit: int, user: str = "U1") -> Admission:
    return Admission(EST, "test-prices", QuotaLimits(None, None, None), extra_budgets=(role_day(limit, user),))


async def test_concurrent_submits_of_one_user_admit_exactly_what_the_role_day_allows(store_factory):
    stores = [await store_factory() for _ in range(4)]
    outcomes = await asyncio.gather(
        *(stores[i % 4].submit(new_job(prompt=f"p{i}"), [], with_role_day(3 * EST)) for i in range(100))
    )
    assert sum(isinstance(o, Submitted) for o in outcomes) == 3
    denied = [o for o in outcomes if isinstance(o, Denied)]
    assert len(denied) == 97 and all(d.budget == role_day(3 * EST) and d.current == 3 * EST for d in denied)
    [status] = await stores[0].budget_statuses("T1", None, "U1", None, (role_day(3 * EST),))
    assert (status.reserved_micros, status.remaining_micros) == (3 * EST, 0)


async def test_a_role_day_is_the_users_own(store):
    for i in range(2):
        assert isinstance(await store.submit(new_job(prompt=f"a{i}"), [], with_role_day(2 * EST)), Submitted)
    other = replace(new_job(prompt="b"), user="U2")
    assert isinstance(await store.submit(other, [], with_role_day(2 * EST, user="U2")), Submitted)
    assert isinstance(await store.submit(new_job(prompt="a2"), [], with_role_day(2 * EST)), Denied)
