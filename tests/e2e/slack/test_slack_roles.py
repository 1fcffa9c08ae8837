"""Slack end to end: per-role limits by user group (issue 18). The bot looks the user groups
up itself (usergroups.users.list through slack_sdk), never from what a user typed."""

from __future__ import annotations

import pytest

from tests.support.bot_process import read_jobs

INTERNS = '[policy]\nconfirm_above_usd = 10\n[teams.T1.roles."S1"]\nuser_images_per_day = 1\nmodels = ["flash"]\n'


@pytest.mark.parametrize("world", [INTERNS], indirect=True)
async def test_a_role_limited_user_is_refused_naming_the_role_while_an_admin_passes(world):
    slack = world.slack
    slack.add_usergroup("S1", name="Interns", users=["U1", "UADMIN"])
    await world.command("/imagine", "a koi pond --model pro", user="U1", response_url=slack.response_url())
    await slack.wait_for(lambda: slack.responses)
    assert world.answers() == ["Your role Interns allows flash; pro isn't one of them. Nothing was charged."]
    assert [c.args["usergroup"] for c in slack.calls_to("usergroups.users.list")] == ["S1"]
    # A workspace admin in the same group is a moderator: roles don't limit them.
    await world.command("/imagine", "a koi pond --model pro", user="UADMIN", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 1)
    # The role's images a day: one, then a refusal naming it.
    await world.command("/imagine", "a heron --model flash", user="U1", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 2)
    await world.command("/imagine", "a swan --model flash", user="U1", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 2)
    assert world.answers()[1].startswith("Your role Interns allows 1 image a day; you have made 1. It resets ")
    # Someone outside the group keeps the team's normal limits.
    await world.command("/imagine", "an owl --model pro", user="U2", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 3)
    # Membership was looked up once and kept (a minute), not once per request.
    assert len(slack.calls_to("usergroups.users.list")) == 1
    assert len(read_jobs(world.db)) == 3


@pytest.mark.parametrize("world", [INTERNS], indirect=True)
async def test_without_the_usergroups_read_scope_the_strictest_role_limits_apply_and_say_why(world):
    slack = world.slack
    slack.add_usergroup("S1", name="Interns", users=["U1"])
    slack.scopes.discard("usergroups:read")
    await world.command("/imagine", "an owl --model pro", user="U2", response_url=slack.response_url())
    await slack.wait_for(lambda: slack.responses)
    assert world.answers() == [
        "I couldn't read your user groups from Slack just now, so the strictest role limits apply. "
        "The role S1 allows flash; pro isn't one of them. Nothing was charged."
    ]
    assert read_jobs(world.db) == {}
