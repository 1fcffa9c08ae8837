"""One team across Slack and Discord: linking with a one-time code, the shared key, exact admission."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal

from bot.access import Caller
from bot.approvals import PendingApproval
from bot.catalog import load_catalog
from bot.orgs import OrgDirectory
from bot.service import ImagineService
from bot.teams import TeamRef
from bot.types import Accepted, ImagineRequest, RefusalReason, Refused
from policies.config import PolicyBook

SLACK_MOD = Caller("T0123", "U1", platform_admin=True, platform="slack")
DISCORD_MOD = Caller("4455", "111", platform_admin=True, platform="discord")
CODE = re.compile(r"`([A-Z0-9]{4}-[A-Z0-9]{4})`")


def code_in(text: str | Refused) -> str:
    assert isinstance(text, str), text
    found = CODE.search(text)
    assert found, text
    return found.group(1)


def request(caller: Caller, prompt: str = "a koi pond", **kw) -> ImagineRequest:
    return ImagineRequest(
        team=caller.team, channel="C1", user=caller.user, platform=caller.platform, prompt=prompt, **kw
    )


async def test_a_moderator_links_from_slack_and_discord_with_a_code(store):
    service = ImagineService(store, load_catalog())
    made = await service.start_link(SLACK_MOD, "C-general")
    assert "Discord server" in made and "15 minutes" in made and "works once" in made
    answer = await service.finish_link(DISCORD_MOD, code_in(made).lower())  # typed in any case
    assert isinstance(answer, str) and answer.startswith("Linked: this server and Slack workspace T0123")
    assert "own budgets are set aside" in answer
    assert await store.team_org("discord", "4455") == "T0123"
    # The maker hears it in the channel where the code was made, through the Slack process's outbox.
    [notice] = await store.claim_deliveries(["slack"], 10, 60)
    assert (notice.kind, notice.payload["channel"]) == ("notice", "C-general")
    assert "Discord server 4455" in notice.payload["text"]


async def test_link_refusals_are_friendly_and_change_nothing(store):
    service = ImagineService(store, load_catalog())
    member = Caller("4455", "222", platform="discord")
    not_mod = await service.start_link(member, "C1")
    assert isinstance(not_mod, Refused) and not_mod.reason is RefusalReason.NOT_MODERATOR
    assert "Only moderators can link this server" in not_mod.detail
    code = code_in(await service.start_link(SLACK_MOD, "C1"))
    assert isinstance(refused := await service.finish_link(member, code), Refused)
    assert refused.reason is RefusalReason.NOT_MODERATOR
    wrong = await service.finish_link(DISCORD_MOD, "ZZZZ-ZZZZ")
    assert isinstance(wrong, Refused) and "doesn't work" in wrong.detail and "Nothing was linked" in wrong.detail
    other_slack = Caller("T0999", "U9", platform_admin=True, platform="slack")
    same = await service.finish_link(other_slack, code)
    assert isinstance(same, Refused) and "made on Slack too" in same.detail and "still works" in same.detail
    assert await store.team_links() == []
    assert isinstance(await service.finish_link(DISCORD_MOD, code), str)
    reused = await service.finish_link(Caller("7788", "333", platform_admin=True, platform="discord"), code)
    assert isinstance(reused, Refused) and "used already" in reused.detail
    again = await service.finish_link(DISCORD_MOD, code_in(await service.start_link(SLACK_MOD, "C1")))
    assert isinstance(again, Refused) and "already linked" in again.detail
    assert "Traceback" not in again.detail


async def test_link_attempts_are_rate_limited_per_team(store):
    service = ImagineService(store, load_catalog())
    for _ in range(10):
        assert isinstance(await service.finish_link(DISCORD_MOD, "AAAA-AAAA"), Refused)
    limited = await service.finish_link(DISCORD_MOD, code_in(await service.start_link(SLACK_MOD, "C1")))
    assert isinstance(limited, Refused) and "Too many link attempts from this server" in limited.detail
    assert await store.team_links() == []


async def test_a_budget_set_on_one_side_is_spent_from_the_other(store):
    service = ImagineService(store, load_catalog())
    await service.link_teams("T0123", "4455")
    budget = await service.set_budget(SLACK_MOD, "0.50", "month")
    assert not isinstance(budget, Refused) and budget.team == "T0123"
    accepted = await service.submit(request(DISCORD_MOD))
    assert isinstance(accepted, Accepted)
    job, _ = await service.status(accepted.job_id)
    assert job is not None and (job.team, job.platform) == ("T0123", "discord")
    usage = await service.usage("4455", "111", platform="discord")
    slack_usage = await service.usage("T0123", "U1", platform="slack")
    assert not isinstance(usage, Refused) and not isinstance(slack_usage, Refused)
    [discord_team] = [s for s in usage.budgets if s.budget.scope.value == "team"]
    [slack_team] = [s for s in slack_usage.budgets if s.budget.scope.value == "team"]
    assert discord_team.budget.limit_micros == 500_000 and discord_team.reserved_micros > 0
    assert discord_team.reserved_micros == slack_team.reserved_micros


async def test_a_team_moderator_moderates_the_organisation(store):
    policies = PolicyBook(teams={"4455": {"moderators": ["222"]}})
    service = ImagineService(store, load_catalog(), policies=policies)
    await service.link_teams("T0123", "4455")
    listed = Caller("4455", "222", platform="discord")
    shown = await service.show_budgets(listed)
    assert not isinstance(shown, Refused)
    assert isinstance(await service.show_budgets(Caller("4455", "333", platform="discord")), Refused)


async def test_unlinking_keeps_the_history_under_the_organisation(store):
    service = ImagineService(store, load_catalog())
    await service.link_teams("T0123", "4455")
    accepted = await service.submit(request(DISCORD_MOD))
    assert isinstance(accepted, Accepted)
    await service.unlink_team(TeamRef("discord", "4455"))
    assert await store.team_org("discord", "4455") is None
    rows = await store.ledger(team="T0123")
    assert [r["job_id"] for r in rows] == [accepted.job_id]  # still the organisation's row, as written
    assert await store.ledger(team="4455") == []


async def test_a_link_made_in_one_process_reaches_another_within_the_cache_time(store_factory, clock):
    first, second = await store_factory(), await store_factory()
    elsewhere = OrgDirectory(second, PolicyBook(), ttl=5, clock=clock)
    assert await elsewhere.key("discord", "4455") == "4455"
    await ImagineService(first, load_catalog()).link_teams("T0123", "4455")
    clock.advance(5.1)
    assert await elsewhere.key("discord", "4455") == "T0123"


async def _ten_image_budget(service: ImagineService, caller: Caller) -> Decimal:
    probe = await service.submit(request(Caller("T-probe", "U0", platform="slack")))
    assert isinstance(probe, Accepted) and probe.estimate_usd
    budget = await service.set_budget(caller, str(10 * probe.estimate_usd), "month")
    assert not isinstance(budget, Refused)
    return probe.estimate_usd


async def test_two_hundred_requests_across_slack_and_discord_admit_exactly_ten(store_factory):
    stores = [await store_factory() for _ in range(8)]
    services = [ImagineService(s, load_catalog()) for s in stores]
    await services[0].link_teams("T0123", "4455")
    estimate = await _ten_image_budget(services[0], DISCORD_MOD)  # set on Discord, spent from both
    # Each its own user (a user's concurrent-jobs quota is not what is measured here).
    teams = [("T0123", "slack"), ("4455", "discord")]
    callers = [Caller(teams[i % 2][0], f"u{i}", platform=teams[i % 2][1]) for i in range(200)]
    outcomes = await asyncio.gather(
        *(services[i % 8].submit(request(caller, confirmed=True)) for i, caller in enumerate(callers))
    )
    admitted = [o for o in outcomes if isinstance(o, Accepted)]
    refused = [o for o in outcomes if isinstance(o, Refused)]
    assert (len(admitted), len(refused)) == (10, 190)
    assert all(r.reason is RefusalReason.BUDGET_EXHAUSTED for r in refused)
    shown = await services[1].show_budgets(SLACK_MOD)
    assert not isinstance(shown, Refused)
    [team] = [s for s in shown if s.budget.scope.value == "team"]
    assert team.reserved_micros == team.budget.limit_micros == 10 * int(estimate * 1_000_000)


async def test_a_dashboard_sign_in_from_a_linked_server_opens_the_organisation(store):
    from urllib.parse import unquote

    from bot.sign_in import Role, SignIn

    sign_in = SignIn(store, "s" * 32, "http://127.0.0.1", session_seconds=3600)
    service = ImagineService(store, load_catalog(), sign_in=sign_in)
    await service.link_teams("T0123", "4455")
    link = await service.dashboard_link(DISCORD_MOD)
    assert isinstance(link, str)
    opened = await sign_in.open_link(unquote(link.rsplit("/", 1)[1]), "127.0.0.1")
    assert not hasattr(opened, "problem"), opened
    session, _ = opened  # type: ignore[misc]
    # The session names the server's own id; each of the web's calls resolves it to the
    # organisation's key (so a session follows its team into and out of an organisation).
    assert (session.team, session.user, session.role) == ("4455", "111", Role.MODERATOR)
    usage = await service.usage(session.team, session.user, platform="web")
    assert not isinstance(usage, Refused) and usage.team == "T0123"


async def test_a_moderator_on_either_side_answers_an_ask_from_the_other(store):
    """[Ask a moderator] from the Discord side of an organisation reaches a Slack moderator,
    whose [Approve] runs the job once past the organisation's budget."""
    service = ImagineService(store, load_catalog())
    await service.link_teams("T0123", "4455")
    assert not isinstance(await service.set_budget(SLACK_MOD, "0.01", "month"), Refused)
    member = Caller("4455", "999", platform="discord")
    refused = await service.submit(request(member))
    assert isinstance(refused, Refused) and refused.ask_token, refused
    asked = await service.ask_moderator(refused.ask_token, member)
    assert isinstance(asked, PendingApproval), asked
    outcome, _ = await service.approve(refused.ask_token, SLACK_MOD)
    assert isinstance(outcome, Accepted), outcome
    job, _ = await service.status(outcome.job_id)
    assert job is not None and (job.team, job.user, job.spec.approved_by) == ("T0123", "999", "U1")
    again, _ = await service.approve(refused.ask_token, DISCORD_MOD)  # a second moderator, same job
    assert isinstance(again, Accepted) and again.job_id == outcome.job_id


async def test_an_alert_channel_serves_the_servers_of_its_organisation_and_no_other(store):
    """Discord's alert channel may carry asks from its own server and the servers linked into one
    organisation with it (adapters/discord/approvals.py), never from an unlinked server."""
    service = ImagineService(store, load_catalog())
    await service.link_teams("T0123", "4455")
    await service.link_teams("T0123", "4466")
    assert await service.same_organisation("discord", "4455", "4455")
    assert await service.same_organisation("discord", "4455", "4466")
    assert not await service.same_organisation("discord", "4455", "7777")
    assert not await service.same_organisation("discord", "7777", "7788")
