"""Per-role limits through the service, on SQLite and PostgreSQL: a role's images a day and
dollars a day are admitted exactly, however many requests race; its models and sizes are
refused before anything is queued; a moderator with the same request passes (issue 18)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from bot.attachments import DeclaredFile
from bot.catalog import load_catalog
from bot.money.pricing import estimate
from bot.service import Caller, ImagineService
from bot.types import Accepted, ImagineRequest, Lane, RefusalReason, Refused
from policies.config import PolicyBook
from policies.roles import PlatformRole

INTERNS = PlatformRole("1001", "Interns")
OPEN = dict(confirm_above_usd=None, user_concurrent_jobs=None, team_queued_jobs=None, soft_threshold="1.0")


def service_for(store, clock, roles: dict, **team) -> ImagineService:
    policies = PolicyBook(teams={"T1": {**OPEN, "roles": roles, **team}})
    return ImagineService(store, load_catalog(), policies=policies, clock=clock)


def request(prompt="a koi pond", *, user="U1", roles=(INTERNS,), **kw) -> ImagineRequest:
    return ImagineRequest(team="T1", channel="C1", user=user, platform="discord", prompt=prompt, roles=roles, **kw)


async def test_a_roles_images_a_day_admit_exactly_that_many_and_the_refusal_names_the_role(store, clock):
    service = service_for(store, clock, {"1001": {"user_images_per_day": 3}}, moderators=["U-mod"])
    outcomes = await asyncio.gather(*(service.submit(request(f"p{i:02}", model="flash")) for i in range(20)))
    assert sum(isinstance(o, Accepted) for o in outcomes) == 3
    refused = [o for o in outcomes if isinstance(o, Refused)]
    assert {o.reason for o in refused} == {RefusalReason.QUOTA_EXCEEDED}
    assert refused[0].detail.startswith("Your role Interns allows 3 images a day; you have made 3. It resets ")
    # The same request from a moderator holding the same role, or from a user without it, passes.
    assert isinstance(await service.submit(request("again", model="flash", user="U-mod")), Accepted)
    assert isinstance(await service.submit(request("again", model="flash", user="U2", roles=())), Accepted)
    # Before any download, an attachment is refused the same way.
    refused_early = await service.check_attachments(request("again"), [DeclaredFile("a.png", 10, "image/png")])
    assert refused_early is not None and "Your role Interns allows 3 images a day" in refused_early.detail


async def test_a_roles_dollars_a_day_are_held_exactly_under_concurrency(store_factory, clock):
    stores = [await store_factory() for _ in range(3)]
    one = estimate(load_catalog().resolve("flash"), "1K", Lane.STANDARD, prompt_chars=len("p000"))
    roles = {"1001": {"user_daily_usd": str(one * 4)}}
    services = [service_for(s, clock, roles) for s in stores]
    outcomes = await asyncio.gather(
        *(services[i % 3].submit(request(f"p{i:03}", model="flash", size="1K")) for i in range(60))
    )
    assert sum(isinstance(o, Accepted) for o in outcomes) == 4
    refused = [o for o in outcomes if isinstance(o, Refused)]
    assert {o.reason for o in refused} == {RefusalReason.BUDGET_EXHAUSTED}
    assert refused[0].detail.startswith(f"Your role Interns allows ${one * 4:,.2f} a day; ")
    assert "already spent or held and this image needs up to" in refused[0].detail
    # Another user's day is their own.
    assert isinstance(await services[0].submit(request("p999", model="flash", size="1K", user="U2")), Accepted)


async def test_a_roles_models_and_sizes_are_refused_before_anything_is_queued(store, clock):
    service = service_for(store, clock, {"1001": {"models": ["flash"], "sizes": ["1K", "2K"]}}, moderators=["U-mod"])
    outcome = await service.submit(request(model="pro"))
    assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.NOT_ALLOWED_HERE
    assert outcome.detail == "Your role Interns allows flash; pro isn't one of them. Nothing was charged."
    outcome = await service.submit(request(model="flash", size="4K"))
    assert isinstance(outcome, Refused) and "allows 1K, 2K; 4K isn't one of them" in outcome.detail
    assert await store.ledger() == []
    assert isinstance(await service.submit(request(model="pro", size="4K", user="U-mod")), Accepted)
    # Reroll by a role-limited user is held to the role too (its roles come with the press).
    mod_job = (await store.ledger())[0]["job_id"]
    rerun = await service.rerun(
        mod_job, Caller("T1", "U1", platform="discord", roles=(INTERNS,)), platform="discord", channel="C1"
    )
    assert isinstance(rerun, Refused) and "Your role Interns allows flash" in rerun.detail


async def test_roles_are_never_taken_from_a_kept_question(store, clock):
    """A question's [Run] is answered with the roles of whoever presses it now."""
    service = service_for(store, clock, {"1001": {"models": ["flash"]}}, confirm_above_usd=Decimal("0.01"))
    question = await service.submit(request(model="pro", roles=()))  # not an intern when asked
    token = await service.hold_confirmation(question)
    outcome, _ = await service.confirm(token, Caller("T1", "U1", platform="discord", roles=(INTERNS,)))
    assert isinstance(outcome, Refused) and "Your role Interns allows flash" in outcome.detail


async def test_an_approval_runs_with_the_roles_the_platform_reported_when_it_was_refused(store, clock):
    """Discord sends roles with the interaction: the requester's, kept with the approval, bind
    the approved run, never the strictest ones (the moderator's press carries only their own)."""
    from bot.approvals import PendingApproval
    from bot.money.budgets import Budget, Period, Scope

    artists = PlatformRole("1002", "Artists")
    roles = {"1001": {"models": ["flash"]}, "1002": {"models": ["pro", "flash"]}}
    service = service_for(store, clock, roles, moderators=["U-mod"], approvals=True)
    await store.set_budget(Budget("T1", Scope.TEAM, "", 1, Period.MONTH), "U-mod")  # used up by any image
    refused = await service.submit(request(model="pro", roles=(artists,)))
    assert isinstance(refused, Refused) and refused.reason is RefusalReason.BUDGET_EXHAUSTED and refused.ask_token
    asked = await service.ask_moderator(refused.ask_token, Caller("T1", "U1", platform="discord", roles=(artists,)))
    assert isinstance(asked, PendingApproval), asked
    outcome, ran = await service.approve(refused.ask_token, Caller("T1", "U-mod", platform="discord", roles=()))
    assert isinstance(outcome, Accepted), outcome
    assert ran is not None and ran.roles == (artists,)
