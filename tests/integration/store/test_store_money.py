"""The Store contract for money: atomic admission, holds, settlement, release."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bot.money.admission import Admission, Charge, Denied
from bot.money.budgets import Budget, Period, Scope
from bot.money.quotas import QuotaLimits
from bot.store.ports import final_delivery_key
from bot.types import CheckedImage, JobState, Lane, NewDelivery, Submitted, Usage
from tests.support.images import png_bytes
from tests.support.jobs import new_job, spec
from tests.support.probe import eventually

EST = 135_600  # micro-dollars: one Pro 2K estimate
NO_QUOTAS = QuotaLimits(None, None, None)


def admission(estimate: int = EST, quotas: QuotaLimits = NO_QUOTAS) -> Admission:
    return Admission(estimate, "test-prices", quotas)


def team_budget(limit: int, period: Period = Period.MONTH, team: str = "T1") -> Budget:
    return Budget(team=team, scope=Scope.TEAM, scope_id="", limit_micros=limit, period=period)


def image() -> CheckedImage:
    return CheckedImage(png_bytes(), "image/png", 8, 8, "0" * 64)


async def finish(store, job, cost: int, status: str = "succeeded"):
    return await store.complete(
        job.id,
        job.worker_id,
        job.attempt,
        image(),
        {},
        NewDelivery(final_delivery_key(job.id), "result", {}),
        Charge(cost, Usage(prompt_tokens=10, image_tokens=1120), status),
    )


async def fail(store, job, *, retryable: bool, charge: Charge | None = None, state=JobState.FAILED):
    return await store.fail(
        job.id,
        job.worker_id,
        job.attempt,
        error_class="x",
        detail="x",
        retryable=retryable,
        final_state=state,
        retry_at=None,
        delivery=NewDelivery(final_delivery_key(job.id), "failure", {}),
        charge=charge,
    )


async def team_status(store, team="T1"):
    [status] = await store.budget_statuses(team, None, None)
    return status


async def entries(store, job_id: int) -> list[tuple[str, int, str]]:
    return [(r["entry"], r["cost_micros"], r["status"]) for r in await store.ledger() if r["job_id"] == job_id]


async def test_two_hundred_concurrent_submits_admit_exactly_what_fits(store_factory):
    first = await store_factory()
    await first.set_budget(team_budget(10 * EST), "mod")
    stores = [first] + [await store_factory() for _ in range(7)]
    outcomes = await asyncio.gather(
        *(stores[i % len(stores)].submit(new_job(prompt=f"p{i}"), [], admission()) for i in range(200))
    )
    admitted = [o for o in outcomes if isinstance(o, Submitted)]
    denied = [o for o in outcomes if isinstance(o, Denied)]
    assert (len(admitted), len(denied)) == (10, 190)
    assert all(d.limit == "budget" and d.allowed == 10 * EST for d in denied)
    status = await team_status(first)
    assert status.reserved_micros == 10 * EST and status.remaining_micros == 0
    # Settled at their full estimate, the ledger still stays within the limit.
    for _ in admitted:
        job = await first.lease("w", 60)
        await finish(first, job, EST)
    status = await team_status(first)
    assert status.spent_micros == 10 * EST <= status.budget.limit_micros and status.reserved_micros == 0


async def test_success_settles_usage_and_releases_the_rest(store):
    await store.set_budget(team_budget(1_000_000), "mod")
    submitted = await store.submit(new_job(), [], admission())
    job = await store.lease("w", 60)
    await finish(store, job, 134_402)
    assert await entries(store, submitted.job_id) == [
        ("reservation", EST, "held"),
        ("settlement", 134_402, "succeeded"),
        ("release", EST - 134_402, "released"),
    ]
    status = await team_status(store)
    assert (status.spent_micros, status.reserved_micros) == (134_402, 0)
    # What was spent, by the team and by the one who asked; no user (None or "") means everyone.
    assert await store.spent("T1", since=0) == await store.spent("T1", user="", since=0) == 134_402
    assert await store.spent("T1", user=job.user, since=0) == 134_402
    assert await store.spent("T1", user="someone else", since=0) == 0


async def test_a_completion_sent_again_after_its_answer_was_lost_charges_and_delivers_once(store):
    await store.set_budget(team_budget(1_000_000), "mod")
    submitted = await store.submit(new_job(), [], admission())
    job = await store.lease("w", 60)
    image_id = await finish(store, job, 134_402)
    assert image_id is not None
    assert await finish(store, job, 134_402) is None  # the worker's retry finds the job finished
    assert await entries(store, submitted.job_id) == [
        ("reservation", EST, "held"),
        ("settlement", 134_402, "succeeded"),
        ("release", EST - 134_402, "released"),
    ]
    results = [d for d in await store.claim_deliveries(["cli"], 10, 60) if d.kind == "result"]
    assert [(d.job_id, d.payload["image_id"]) for d in results] == [(submitted.job_id, image_id)]
    assert (await store.get_job(submitted.job_id)).result_image_id == image_id


async def test_a_call_that_cost_more_than_its_hold_is_settled_in_full_releases_nothing_and_warns(store, caplog):
    submitted = await store.submit(new_job(), [], admission())
    job = await store.lease("w", 60)
    await finish(store, job, EST + 5)
    assert await entries(store, submitted.job_id) == [
        ("reservation", EST, "held"),
        ("settlement", EST + 5, "succeeded"),
        ("release", 0, "released"),
    ]
    assert f"job {job.id} cost {EST + 5} micro-USD, more than the {EST} held for it" in caplog.text


async def test_the_ledger_lists_one_kind_of_entry_of_one_team_since_a_time(store, clock):
    """What `usage` reads: a team's settlements since a time, not its reservations or other teams'."""
    await store.set_budget(team_budget(1_000_000), "mod")
    await store.set_budget(team_budget(1_000_000, team="T2"), "mod")
    early = await store.submit(new_job(), [], admission())
    await finish(store, await store.lease("w", 60), 100_000)
    clock.advance(3600)
    later = await store.submit(new_job(prompt="later"), [], admission())
    await finish(store, await store.lease("w", 60), 120_000)
    await store.submit(new_job(prompt="queued"), [], admission())
    await store.submit(new_job(team="T2"), [], admission())

    def of(rows):
        return [(r["job_id"], r["entry"], r["cost_micros"]) for r in rows]

    assert of(await store.ledger(team="T1", entry="settlement")) == [
        (early.job_id, "settlement", 100_000),
        (later.job_id, "settlement", 120_000),
    ]
    since = clock() - 1
    assert of(await store.ledger(team="T1", since=since, entry="settlement")) == [(later.job_id, "settlement", 120_000)]
    assert {r["team"] for r in await store.ledger(entry="reservation")} == {"T1", "T2"}
    assert len(await store.ledger(team="T1", since=since)) == 4  # later's three rows and the queued one's reservation


async def test_failure_and_cancel_release_the_whole_hold(store):
    await store.set_budget(team_budget(1_000_000), "mod")
    failing = await store.submit(new_job(prompt="a"), [], admission())
    cancelled = await store.submit(new_job(prompt="b"), [], admission())
    job = await store.lease("w", 60)
    assert job.id == failing.job_id
    await fail(store, job, retryable=False)
    assert await store.cancel(cancelled.job_id)
    for job_id in (failing.job_id, cancelled.job_id):
        assert await entries(store, job_id) == [("reservation", EST, "held"), ("release", EST, "released")]
    status = await team_status(store)
    assert (status.spent_micros, status.reserved_micros) == (0, 0)


async def test_a_retry_keeps_its_hold_and_a_blocked_answer_is_settled_from_usage(store):
    await store.set_budget(team_budget(1_000_000), "mod")
    submitted = await store.submit(new_job(), [], admission())
    job = await store.lease("w", 60)
    assert await fail(store, job, retryable=True) is JobState.QUEUED
    assert (await team_status(store)).reserved_micros == EST
    job = await store.lease("w", 60)
    blocked = Charge(24, Usage(prompt_tokens=12), "blocked")
    assert await fail(store, job, retryable=False, charge=blocked, state=JobState.BLOCKED) is JobState.BLOCKED
    assert await entries(store, submitted.job_id) == [
        ("reservation", EST, "held"),
        ("settlement", 24, "blocked"),
        ("release", EST - 24, "released"),
    ]


async def test_a_dead_lettered_job_leaves_no_phantom_hold(store, clock):
    await store.set_budget(team_budget(1_000_000), "mod")
    await store.submit(new_job(max_attempts=1), [], admission())
    await store.lease("w", 30)
    clock.advance(31)  # the worker died
    assert await store.lease("w", 30) is None
    assert (await team_status(store)).reserved_micros == 0


async def test_budget_period_rolls_over_at_the_utc_boundary(store, clock):
    clock.now = 1_798_761_600.0 - 3600  # 2026-12-31 23:00 UTC
    await store.set_budget(team_budget(EST, Period.DAY), "mod")
    assert isinstance(await store.submit(new_job(prompt="a"), [], admission()), Submitted)
    await finish(store, await store.lease("w", 60), EST)
    denied = await store.submit(new_job(prompt="b"), [], admission())
    assert isinstance(denied, Denied) and denied.current == EST
    assert denied.resets_at == 1_798_761_600.0
    clock.advance(3600)  # midnight: a new day, a new budget
    assert isinstance(await store.submit(new_job(prompt="c"), [], admission()), Submitted)


async def test_channel_and_user_budgets_bind_only_their_scope(store):
    await store.set_budget(Budget("T1", Scope.CHANNEL, "C-design", EST, Period.DAY), "mod")
    await store.set_budget(Budget("T1", Scope.USER, "U-busy", EST, Period.DAY), "mod")

    def job(channel: str, user: str, prompt: str):
        j = new_job(prompt=prompt)
        return type(j)(**{**j.__dict__, "channel": channel, "user": user})

    assert isinstance(await store.submit(job("C-design", "U1", "a"), [], admission()), Submitted)
    denied = await store.submit(job("C-design", "U2", "b"), [], admission())
    assert isinstance(denied, Denied) and denied.budget.scope is Scope.CHANNEL
    assert isinstance(await store.submit(job("C-other", "U-busy", "c"), [], admission()), Submitted)
    denied = await store.submit(job("C-other", "U-busy", "d"), [], admission())
    assert isinstance(denied, Denied) and denied.budget.scope is Scope.USER
    assert isinstance(await store.submit(job("C-other", "U3", "e"), [], admission()), Submitted)


async def test_a_duplicate_submit_holds_money_once(store):
    await store.set_budget(team_budget(10 * EST), "mod")
    key_job = new_job(key="slack:Ev9")
    await store.submit(key_job, [], admission())
    again = await store.submit(key_job, [], admission())
    assert again.duplicate
    assert (await team_status(store)).reserved_micros == EST


async def test_quotas_name_the_limit_and_the_current_figure(store):
    quotas = QuotaLimits(user_images_per_day=None, user_concurrent_jobs=2, team_queued_jobs=None)
    for i in range(2):
        assert isinstance(await store.submit(new_job(prompt=str(i)), [], admission(quotas=quotas)), Submitted)
    denied = await store.submit(new_job(prompt="x"), [], admission(quotas=quotas))
    assert (denied.limit, denied.allowed, denied.current) == ("user_concurrent_jobs", 2, 2)

    team_cap = QuotaLimits(None, None, team_queued_jobs=2)
    denied = await store.submit(new_job(prompt="y"), [], admission(quotas=team_cap))
    assert (denied.limit, denied.allowed, denied.current) == ("team_queued_jobs", 2, 2)


async def test_images_per_day_counts_today_and_not_failures(store, clock):
    quotas = QuotaLimits(user_images_per_day=2, user_concurrent_jobs=None, team_queued_jobs=None)
    await store.submit(new_job(prompt="a"), [], admission(quotas=quotas))
    job = await store.lease("w", 60)
    await fail(store, job, retryable=False)  # made no image: does not use up the day
    await store.submit(new_job(prompt="b"), [], admission(quotas=quotas))
    await store.submit(new_job(prompt="c"), [], admission(quotas=quotas))
    denied = await store.submit(new_job(prompt="d"), [], admission(quotas=quotas))
    assert (denied.limit, denied.allowed, denied.current) == ("user_images_per_day", 2, 2)
    assert denied.resets_at is not None and denied.resets_at > clock.now
    clock.now = denied.resets_at
    assert isinstance(await store.submit(new_job(prompt="e"), [], admission(quotas=quotas)), Submitted)


async def test_budgets_can_be_replaced_and_removed(store):
    await store.set_budget(team_budget(EST), "mod")
    await store.set_budget(team_budget(5 * EST, Period.WEEK), "mod2")
    [budget] = await store.budgets("T1")
    assert (budget.limit_micros, budget.period) == (5 * EST, Period.WEEK)
    assert await store.delete_budget("T1", Scope.TEAM, "")
    assert await store.budgets("T1") == []


async def test_every_billed_call_is_settled_even_when_retried_or_the_lease_was_lost(store, clock):
    await store.set_budget(team_budget(1_000_000), "mod")
    submitted = await store.submit(new_job(), [], admission())
    job = await store.lease("w1", 30)
    # Attempt 1 came back with an unreadable image: billed, and retried.
    await fail(store, job, retryable=True, charge=Charge(1000, None, "failed"))
    job = await store.lease("w1", 30)
    clock.advance(31)  # attempt 2's worker stalls; attempt 3 takes over
    third = await store.lease("w2", 30)
    assert await finish(store, job, 2000) is None  # the late worker may not finish the job ...
    await finish(store, third, 3000)
    rows = [
        (r["entry"], r["attempt"], r["cost_micros"]) for r in await store.ledger() if r["job_id"] == submitted.job_id
    ]
    # ... but its call is on the ledger, and the hold releases what the three calls did not use.
    assert rows == [
        ("reservation", 0, EST),
        ("settlement", 1, 1000),
        ("settlement", 2, 2000),
        ("settlement", 3, 3000),
        ("release", 0, EST - 6000),
    ]
    status = await team_status(store)
    assert (status.spent_micros, status.reserved_micros) == (6000, 0)


async def test_a_billed_failure_that_uses_up_the_budget_is_not_retried(store):
    await store.set_budget(team_budget(EST + 50_000), "mod")
    submitted = await store.submit(new_job(max_attempts=3), [], admission())
    job = await store.lease("w", 60)
    # The route bills failed calls: 60,000 spent + 135,600 still held > 185,600.
    state = await fail(store, job, retryable=True, charge=Charge(60_000, None, "failed"))
    assert state is JobState.FAILED
    finished = await store.get_job(submitted.job_id)
    assert finished.error_class == "budget_exhausted"
    assert [(r["entry"], r["cost_micros"]) for r in await store.ledger()] == [
        ("reservation", EST),
        ("settlement", 60_000),
        ("release", EST - 60_000),
    ]
    status = await team_status(store)
    assert status.spent_micros == 60_000 and status.reserved_micros == 0


async def test_submits_racing_completions_never_admit_over_the_budget(store_factory):
    """Jobs finishing (charge added, hold removed in one commit) while others are
    admitted: an admission must see each finish whole, or it admits one too many."""
    stores = [await store_factory() for _ in range(6)]
    submitters, workers = stores[:3], stores[3:]
    for round_ in range(3):
        team = f"R{round_}"
        await stores[0].set_budget(team_budget(20 * EST, team=team), "mod")
        stop = asyncio.Event()

        async def submit_all(store, n: int = 30, team: str = team) -> None:
            for i in range(n):
                job = new_job(team, prompt=f"{id(store)}-{i}")
                await store.submit(job, [], admission())

        async def work(store, stop: asyncio.Event = stop) -> None:
            while not stop.is_set():
                job = await store.lease(f"w{id(store)}", 60)
                if job is None:
                    await asyncio.sleep(0)
                    continue
                await finish(store, job, EST)

        async def drained() -> bool:
            counts = await stores[0].counts_by_state()
            return not counts.get("queued") and not counts.get("running")

        running = [asyncio.create_task(work(s)) for s in workers]
        await asyncio.gather(*(submit_all(s) for s in submitters))
        # The workers finish every job admitted: waited for, not guessed at with a fixed sleep.
        await eventually(drained, 30, what="the workers finishing every admitted job")
        stop.set()
        await asyncio.gather(*running)
        [status] = await stores[0].budget_statuses(team, None, None)
        assert status.spent_micros + status.reserved_micros <= 20 * EST
        assert status.spent_micros >= 10 * EST  # the race really happened: jobs finished meanwhile


def default_budget(limit: int, team: str = "T1") -> Budget:
    return Budget(team=team, scope=Scope.TEAM, scope_id="", limit_micros=limit, period=Period.MONTH, default=True)


def capped(limit: int, estimate: int = EST, quotas: QuotaLimits = NO_QUOTAS) -> Admission:
    """An admission carrying a default team budget, as the service builds it."""
    return Admission(estimate, "test-prices", quotas, default_team_budget=default_budget(limit))


async def test_a_team_with_no_budget_of_its_own_is_capped_by_the_default(store):
    for prompt in ("a", "b"):
        assert isinstance(await store.submit(new_job(prompt=prompt), [], capped(2 * EST)), Submitted)
    denied = await store.submit(new_job(prompt="c"), [], capped(2 * EST))
    assert isinstance(denied, Denied) and denied.limit == "budget"
    assert denied.budget == default_budget(2 * EST) and (denied.allowed, denied.current) == (2 * EST, 2 * EST)
    [status] = await store.budget_statuses("T1", None, None, default_budget(2 * EST))
    assert status.budget.default and status.reserved_micros == 2 * EST


async def test_a_team_budget_of_its_own_replaces_the_default(store):
    await store.set_budget(team_budget(5 * EST), "mod")
    for i in range(5):  # past the default's two, up to the team's own five
        assert isinstance(await store.submit(new_job(prompt=str(i)), [], capped(2 * EST)), Submitted)
    denied = await store.submit(new_job(prompt="x"), [], capped(2 * EST))
    assert isinstance(denied, Denied) and denied.budget == team_budget(5 * EST) and not denied.budget.default


async def test_two_hundred_concurrent_submits_admit_exactly_what_the_default_allows(store_factory):
    stores = [await store_factory() for _ in range(8)]
    outcomes = await asyncio.gather(
        *(stores[i % len(stores)].submit(new_job(prompt=f"p{i}"), [], capped(10 * EST)) for i in range(200))
    )
    admitted = [o for o in outcomes if isinstance(o, Submitted)]
    denied = [o for o in outcomes if isinstance(o, Denied)]
    assert (len(admitted), len(denied)) == (10, 190)
    assert all(d.budget == default_budget(10 * EST) for d in denied)
    [status] = await stores[0].budget_statuses("T1", None, None, default_budget(10 * EST))
    assert status.reserved_micros == 10 * EST and status.remaining_micros == 0


async def test_a_billed_failure_that_uses_up_the_default_budget_is_not_retried(store):
    submitted = await store.submit(new_job(max_attempts=3), [], capped(EST + 50_000))
    job = await store.lease("w", 60)
    # 60,000 spent + 135,600 still held > the default's 185,600: no retry.
    state = await fail(store, job, retryable=True, charge=Charge(60_000, None, "failed"))
    assert state is JobState.FAILED
    assert (await store.get_job(submitted.job_id)).error_class == "budget_exhausted"
    [status] = await store.budget_statuses("T1", None, None, default_budget(EST + 50_000))
    assert (status.spent_micros, status.reserved_micros) == (60_000, 0)


async def test_a_billed_failure_within_the_default_budget_is_retried(store):
    submitted = await store.submit(new_job(max_attempts=3), [], capped(EST + 70_000))
    job = await store.lease("w", 60)
    assert await fail(store, job, retryable=True, charge=Charge(60_000, None, "failed")) is JobState.QUEUED
    assert (await store.get_job(submitted.job_id)).held_micros == EST


async def test_a_job_shows_the_money_held_for_it(store):
    submitted = await store.submit(new_job(), [], admission())
    assert (await store.get_job(submitted.job_id)).held_micros == EST
    job = await store.lease("w", 60)
    assert job.held_micros == EST
    await finish(store, job, 100_000)
    assert (await store.get_job(submitted.job_id)).held_micros == 0
    unmetered = await store.submit(new_job(prompt="no admission"), [])
    assert (await store.get_job(unmetered.job_id)).held_micros == 0


async def test_a_batched_job_shows_the_money_held_for_it(store):
    relaxed = replace(new_job(), spec=spec(lane=Lane.BATCH))
    submitted = await store.submit(relaxed, [], admission(EST // 2))
    batch = await store.open_batch(10)
    assert [(j.id, j.held_micros) for j in batch.jobs] == [(submitted.job_id, EST // 2)]
    await store.batch_submitted(batch.id, "batches/1", 0)
    [due] = await store.due_batches(60, 900)
    assert [j.held_micros for j in due.jobs] == [EST // 2]


def cacheable(prompt: str = "a koi pond"):
    return replace(new_job(prompt=prompt), cache_key=f"cache:{prompt}")


async def make_cached(store, prompt: str = "a koi pond", quotas: QuotaLimits = NO_QUOTAS) -> int:
    """A succeeded job whose answer later identical requests may reuse."""
    first = await store.submit(cacheable(prompt), [], admission(quotas=quotas))
    assert isinstance(first, Submitted) and not first.cached
    await finish(store, await store.lease("w", 60), EST)
    return first.job_id


async def test_cache_hits_count_toward_the_daily_image_quota(store):
    daily = QuotaLimits(user_images_per_day=1, user_concurrent_jobs=None, team_queued_jobs=None)
    await make_cached(store, quotas=daily)
    outcomes = [await store.submit(cacheable(), [], admission(quotas=daily), cache_ttl=3600) for _ in range(5)]
    assert all(isinstance(o, Denied) for o in outcomes)
    assert {(o.limit, o.allowed, o.current) for o in outcomes} == {("user_images_per_day", 1, 1)}
    assert await store.counts_by_state() == {"succeeded": 1}
    # Within the quota, a hit is still answered at once, at $0 and with no hold.
    roomy = QuotaLimits(user_images_per_day=2, user_concurrent_jobs=None, team_queued_jobs=None)
    hit = await store.submit(cacheable(), [], admission(quotas=roomy), cache_ttl=3600)
    assert hit.cached and (await store.get_job(hit.job_id)).held_micros == 0
    assert [r["entry"] for r in await store.ledger() if r["job_id"] == hit.job_id] == []


async def test_cache_hits_count_toward_the_concurrent_job_quota(store):
    one_at_a_time = QuotaLimits(user_images_per_day=None, user_concurrent_jobs=1, team_queued_jobs=None)
    await make_cached(store)
    await store.submit(new_job(prompt="still waiting"), [], admission(quotas=one_at_a_time))
    denied = await store.submit(cacheable(), [], admission(quotas=one_at_a_time), cache_ttl=3600)
    assert isinstance(denied, Denied) and (denied.limit, denied.current) == ("user_concurrent_jobs", 1)


async def test_cache_hits_cost_nothing_so_a_spent_budget_does_not_refuse_them(store):
    await store.set_budget(team_budget(EST), "mod")
    await make_cached(store)
    hit = await store.submit(cacheable(), [], admission(), cache_ttl=3600)
    assert isinstance(hit, Submitted) and hit.cached
