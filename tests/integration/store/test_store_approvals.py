"""The Store contract for approvals ([Ask a moderator]): offered -> pending -> approved | denied |
expired, each change once (a conditional UPDATE), an approval claimed in its job's own transaction,
and nothing held while a request waits."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bot.money.admission import APPROVAL_ANSWERED, Admission, Denied
from bot.money.quotas import QuotaLimits
from bot.types import Submitted
from tests.support.jobs import new_job, spec
from tests.support.store_contract import settle, team_budget

DAY = 24 * 3600.0
ASKED = ("T1", "slack", "C1", "U1")
REQUEST = {"prompt": "a koi pond", "model": "pro", "size": "1K", "delivery": {"channel": "C1"}}


def said(row) -> str:
    return f"{row['state']} for {row['user']}"


async def offered(store, token="tok") -> None:
    await store.offer_approval(token, ASKED, REQUEST, 134_000, "the team budget is used up", DAY)


def approved_admission(token: str, by: str = "M1") -> Admission:
    return Admission(134_000, "test-prices", QuotaLimits(None, None, None), approval_token=token, approved_by=by)


def overage_job(token: str):
    job = new_job(key=f"approval:{token}")
    return replace(job, spec=replace(spec(), approved_by="M1"))


async def test_only_the_requester_asks_and_only_once(store):
    await offered(store)
    assert await store.ask_approval("tok", "U2", DAY) is None
    asked = await store.ask_approval("tok", "U1", DAY)
    assert asked is not None and asked["state"] == "pending" and asked["request"] == REQUEST
    assert await store.ask_approval("tok", "U1", DAY) is None
    assert (await store.approval("tok"))["state"] == "pending"


async def test_an_approval_is_claimed_with_its_job_past_the_budget_and_the_ledger_names_the_approver(store):
    await store.set_budget(replace(team_budget(), limit_micros=1), "M1")  # used up by any image
    await offered(store)
    # Not asked yet: an offer cannot be approved.
    assert await store.submit(overage_job("tok"), [], approved_admission("tok")) == Denied(APPROVAL_ANSWERED, 0, 0)
    await store.ask_approval("tok", "U1", DAY)
    submitted = await store.submit(overage_job("tok"), [], approved_admission("tok"))
    assert isinstance(submitted, Submitted) and not submitted.duplicate
    row = await store.approval("tok")
    assert (row["state"], row["answered_by"]) == ("approved", "M1")
    [reservation] = await store.ledger(team="T1")
    assert (reservation["entry"], reservation["approved_by"], reservation["cost_micros"]) == (
        "reservation",
        "M1",
        134_000,
    )
    # A second press: the key gives the same job back, never a second one.
    again = await store.submit(overage_job("tok"), [], approved_admission("tok"))
    assert isinstance(again, Submitted) and again.duplicate and again.job_id == submitted.job_id
    assert await store.deny_approval("tok", "M2", said) is None


async def test_approve_and_deny_at_once_in_two_stores_change_the_approval_once(store_factory):
    stores = [await store_factory() for _ in range(4)]
    for n in range(3):
        await offered(stores[0], f"tok{n}")
        await stores[0].ask_approval(f"tok{n}", "U1", DAY)
        answers = await asyncio.gather(
            stores[0].submit(overage_job(f"tok{n}"), [], approved_admission(f"tok{n}")),
            stores[1].submit(replace(overage_job(f"tok{n}"), idempotency_key=None), [], approved_admission(f"tok{n}")),
            stores[2].deny_approval(f"tok{n}", "M2", said),
            stores[3].deny_approval(f"tok{n}", "M3", said),
        )
        jobs = [a for a in answers[:2] if isinstance(a, Submitted)]
        denials = [a for a in answers[2:] if a is not None]
        assert len(jobs) + len(denials) == 1, answers
        state = (await stores[0].approval(f"tok{n}"))["state"]
        assert state == ("approved" if jobs else "denied")
    assert len({j["job_id"] for j in await stores[0].ledger(team="T1", entry="reservation")}) == len(
        [s for s in [await stores[0].approval(f"tok{n}") for n in range(3)] if s["state"] == "approved"]
    )


async def test_a_denial_tells_the_requester_and_holds_nothing(store):
    await offered(store)
    await store.ask_approval("tok", "U1", DAY)
    denied = await store.deny_approval("tok", "M1", said)
    assert denied is not None and denied["state"] == "denied" and denied["answered_by"] == "M1"
    assert await store.deny_approval("tok", "M1", said) is None
    assert await store.submit(overage_job("tok"), [], approved_admission("tok")) == Denied(APPROVAL_ANSWERED, 0, 0)
    assert await store.ledger(team="T1") == []
    [(notice, _)] = await store.claim_for_dispatch(["slack"], 10, 60, delivered=[])
    assert (notice.kind, notice.job_id) == ("notice", None)
    assert notice.payload == {"channel": "C1", "user": "U1", "thread_ts": None, "text": "denied for U1"}


async def test_unanswered_requests_lapse_after_a_day_and_untaken_offers_go(store, clock):
    await offered(store, "asked")
    await offered(store, "never-asked")
    await store.ask_approval("asked", "U1", DAY)
    clock.advance(DAY - 60)
    assert await store.expire_approvals(said) == []
    clock.advance(120)
    [lapsed] = await store.expire_approvals(said)
    assert (lapsed["token"], lapsed["state"]) == ("asked", "expired")
    assert await store.approval("never-asked") is None
    assert await store.expire_approvals(said) == []
    assert await store.submit(overage_job("asked"), [], approved_admission("asked")) == Denied(APPROVAL_ANSWERED, 0, 0)
    [(notice, _)] = await store.claim_for_dispatch(["slack"], 10, 60, delivered=[])
    assert notice.payload["text"] == "expired for U1"


def role_day(limit: int):
    from bot.money.budgets import Budget, Period, Scope

    return Budget(
        team="T1",
        scope=Scope.USER,
        scope_id="U1",
        limit_micros=limit,
        period=Period.DAY,
        soft_threshold=1.0,
        role="Artists",
    )


async def test_an_approval_passes_the_team_budget_but_never_a_role_limit(store):
    """A moderator approves past the team's budgets, not past a person's per-role daily dollars."""
    await store.set_budget(replace(team_budget(), limit_micros=1), "M1")  # used up by any image
    await offered(store)
    await store.ask_approval("tok", "U1", DAY)
    over_role = replace(approved_admission("tok"), extra_budgets=(role_day(100_000),))  # 134,000 > 100,000
    denied = await store.submit(overage_job("tok"), [], over_role)
    assert isinstance(denied, Denied) and denied.budget is not None and denied.budget.role == "Artists"
    assert (await store.approval("tok"))["state"] == "pending"  # not claimed: it may be approved later
    within_role = replace(approved_admission("tok"), extra_budgets=(role_day(200_000),))
    assert isinstance(await store.submit(overage_job("tok"), [], within_role), Submitted)


async def test_a_billed_retry_of_an_approved_overage_is_not_charged_past_what_was_approved(store):
    from bot.money.admission import Charge
    from bot.store.ports import final_delivery_key
    from bot.types import JobState, NewDelivery

    await offered(store)
    await store.ask_approval("tok", "U1", DAY)
    submitted = await store.submit(replace(overage_job("tok"), max_attempts=3), [], approved_admission("tok"))
    job = await store.lease("w", 60)
    state = await store.fail(
        job.id,
        job.worker_id,
        job.attempt,
        error_class="x",
        detail="x",
        retryable=True,
        final_state=JobState.FAILED,
        retry_at=None,
        delivery=NewDelivery(final_delivery_key(job.id), "failure", {}),
        charge=Charge(60_000, None, "failed"),
    )
    assert state is JobState.FAILED
    finished = await store.get_job(submitted.job_id)
    assert finished.error_class == "budget_exhausted" and "approved" in finished.error_detail
    assert [(r["entry"], r["cost_micros"]) for r in await store.ledger(team="T1")] == [
        ("reservation", 134_000),
        ("settlement", 60_000),
        ("release", 134_000 - 60_000),
    ]


async def test_a_failed_alert_post_sets_the_request_back_so_it_can_be_asked_again(store):
    await offered(store)
    await store.ask_approval("tok", "U1", DAY)
    assert await store.unask_approval("tok") is True
    assert (await store.approval("tok"))["state"] == "offered"
    assert await store.unask_approval("tok") is False  # only a pending request goes back
    assert await store.ask_approval("tok", "U1", DAY) is not None


async def test_an_answered_request_drops_its_pictures_and_is_pruned_after_the_retention_days(store, clock):
    with_pictures = {**REQUEST, "images": [{"mime": "image/png", "data": "aGVsbG8="}]}
    for token in ("approved", "denied", "waiting"):
        await store.offer_approval(token, ASKED, with_pictures, 134_000, "used up", DAY)
        await store.ask_approval(token, "U1", DAY)
    await store.submit(overage_job("approved"), [], approved_admission("approved"))
    await store.deny_approval("denied", "M1", said)
    for token in ("approved", "denied"):
        assert (await store.approval(token))["request"]["images"] == []
    assert (await store.approval("waiting"))["request"]["images"] == with_pictures["images"]
    clock.advance(3600)
    assert await store.prune("approvals", clock() - 7200, 100) == 0  # answered an hour ago: kept
    assert await store.prune("approvals", clock(), 100) == 2
    assert await store.approval("approved") is None and await store.approval("denied") is None
    assert (await store.approval("waiting"))["state"] == "pending"  # still waiting: never pruned


async def test_every_ledger_row_of_an_approved_job_names_the_approver_and_counts_as_overage(store):
    """The settlement and the release too, on every store (PostgreSQL completes a job in one
    statement of its own): usage's overage line reads the approver off the settlement."""
    job = await settle(store, "T1", "pro", 100_000, "over", approved_by="M1")
    rows = await store.ledger(team="T1")
    assert {r["entry"] for r in rows} == {"reservation", "settlement", "release"}
    assert all(r["job_id"] == job and r["approved_by"] == "M1" for r in rows), rows
    assert await store.overage_spent("T1", since=0) == 100_000
