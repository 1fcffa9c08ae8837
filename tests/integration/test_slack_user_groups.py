"""Slack user groups as roles, through the real slack_sdk against the fake Slack: membership
kept a minute, a group Slack does not know has no members, names from usergroups.list, and
a failure the core must treat as roles unknown (issue 18)."""

from __future__ import annotations

import asyncio

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.roles import FAILURE_TTL, MEMBERS_TTL, SlackUserGroups
from bot.roles import RoleLookupFailed, Standing
from policies.roles import PlatformRole
from tests.support.clock import FakeClock


def directory(slack, clock, *, admins=(), **options) -> SlackUserGroups:
    async def is_admin(team: str, user: str) -> bool:
        return user in admins

    return SlackUserGroups(AsyncWebClient(token=slack.bot_token, base_url=slack.url), is_admin, clock, **options)


async def test_members_are_kept_a_minute_then_asked_again(slack):
    slack.add_usergroup("S1", name="Interns", users=["U1"])
    clock = FakeClock()
    groups = directory(slack, clock)
    assert await groups.standing("T1", "U1", ["S1"]) == Standing((PlatformRole("S1", "Interns"),))
    slack.add_usergroup("S1", name="Interns", users=[])  # U1 leaves the group in Slack
    clock.advance(MEMBERS_TTL - 1)
    assert (await groups.standing("T1", "U1", ["S1"])).roles  # still kept
    clock.advance(2)
    assert await groups.standing("T1", "U1", ["S1"]) == Standing(())
    assert len(slack.calls_to("usergroups.users.list")) == 2


async def test_a_burst_of_requests_makes_one_round_of_lookups(slack):
    slack.add_usergroup("S1", name="Interns", users=["U1"])
    slack.add_usergroup("S2", name="Design", users=["U2"])
    groups = directory(slack, FakeClock())
    found = await asyncio.gather(*(groups.standing("T1", f"U{n % 3}", ["S1", "S2"]) for n in range(30)))
    assert {s.roles for s in found} == {(PlatformRole("S1", "Interns"),), (PlatformRole("S2", "Design"),), ()}
    assert sorted(c.args["usergroup"] for c in slack.calls_to("usergroups.users.list")) == ["S1", "S2"]


async def test_an_unknown_group_has_no_members_and_unnamed_groups_go_by_their_id(slack):
    slack.add_usergroup("S1", name="Interns", users=["U1"])
    slack.fail_next("usergroups.list", "internal_error")
    groups = directory(slack, FakeClock())
    assert await groups.standing("T1", "U1", ["S-gone", "S1"]) == Standing((PlatformRole("S1", "S1"),))


async def test_an_admin_is_not_looked_up(slack):
    groups = directory(slack, FakeClock(), admins=("U1",))
    assert await groups.standing("T1", "U1", ["S1"]) == Standing((), platform_admin=True)
    assert slack.calls_to("usergroups.users.list") == []


@pytest.mark.parametrize("failure", ["missing_scope", "ratelimited"])
async def test_any_other_failure_means_the_roles_are_unknown(slack, failure):
    slack.add_usergroup("S1", name="Interns", users=["U1"])
    slack.fail_next("usergroups.users.list", failure, status=429 if failure == "ratelimited" else 200)
    with pytest.raises(RoleLookupFailed, match=failure):
        await directory(slack, FakeClock()).standing("T1", "U1", ["S1"])


async def test_a_lookup_slack_does_not_answer_in_time_fails_and_is_not_retried_at_once(slack):
    slack.add_usergroup("S1", name="Interns", users=["U1"])
    slack.hold("usergroups.users.list")
    clock = FakeClock()
    groups = directory(slack, clock, lookup_timeout=1)
    with pytest.raises(RoleLookupFailed, match="no answer within 1 s"):
        await groups.standing("T1", "U1", ["S1"])
    slack.release("usergroups.users.list")
    with pytest.raises(RoleLookupFailed, match="a moment ago"):  # remembered: no second call
        await groups.standing("T1", "U2", ["S1"])
    assert len(slack.calls_to("usergroups.users.list")) == 1
    clock.advance(FAILURE_TTL + 1)
    assert (await groups.standing("T1", "U1", ["S1"])).roles == (PlatformRole("S1", "Interns"),)
