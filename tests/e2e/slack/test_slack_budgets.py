"""Slack end to end: team budgets. Who may set them, the alert line, the downgrade to Flash, and
refusals that charge nothing."""

from __future__ import annotations

import pytest

from tests.support.bot_process import read_jobs

DEFAULT_NOTE = "on the default budget"
# Pro at its default size is about $0.135: under $0.16 it fits but passes the 80% alert line;
# Pro 4K (about $0.24) cannot fit at all.
TIGHT_BUDGET = "0.16"


async def test_budgets_are_for_moderators_and_usage_is_for_everyone(world):
    slack = world.slack
    await world.command("/imagine-budget", "set 5 day", user="U1", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 1)
    assert "Only moderators" in slack.responses[0]["text"]
    await world.command("/imagine-budget", "show", user="UADMIN", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 2)
    # The refused change changed nothing: the team is on the default budget, and both views say so.
    shown = slack.responses[1]["text"]
    assert "default team budget $20.00/month" in shown and DEFAULT_NOTE in shown, shown
    await world.command("/imagine-usage", "", user="U1", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 3)
    assert DEFAULT_NOTE in slack.responses[2]["text"] and "/imagine-budget set" in slack.responses[2]["text"]
    await world.command("/imagine-budget", "set 5 day", user="UADMIN", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 4)
    assert "$5.00 per day" in slack.responses[3]["text"]
    await world.command("/imagine-usage", "", user="U1", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 5)
    usage = slack.responses[4]
    assert "$5.00/day" in usage["text"] and usage["response_type"] == "ephemeral"
    assert "default" not in usage["text"]  # its own budget now


@pytest.mark.parametrize(
    "world",
    ['[policy]\nover_soft_threshold = "downgrade"\nconfirm_above_usd = 10\nsoft_threshold = 0.5\n'],
    indirect=True,
)
async def test_near_the_budget_pro_becomes_flash_and_moderators_are_alerted(world):
    slack = world.slack
    # Pro (about $0.135) twice fits $0.30 but passes the 50% line: the second becomes Flash.
    await world.command("/imagine-budget", "set 0.30 day", user="UADMIN", response_url=slack.response_url())
    await slack.wait_for(lambda: slack.responses)
    await world.command("/imagine", "first", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 1)
    assert slack.posted("CMODS") == []  # 45% of the budget: no alert yet
    await world.command("/imagine", "second", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.uploads) == 2 or len(slack.responses) > 1)
    assert len(slack.responses) == 1, slack.responses
    assert world.gemini.requests[1].model == "gemini-3.1-flash-image"
    second = [m for m in world.statuses() if "second" in m.blocks[0]["text"]["text"]][0]
    queued = [c.args["text"] for c in slack.calls_to("chat.postMessage") if "second" in c.args.get("text", "")]
    assert "switched from pro" in queued[0]
    [alert] = slack.posted("CMODS")
    assert "team budget of team T1 passed its 50% alert line" in alert.text
    assert second.ts


@pytest.mark.parametrize("world", ["[policy]\nconfirm_above_usd = 0.20\n"], indirect=True)
async def test_run_answers_with_the_refusal_when_the_budget_no_longer_fits(world):
    slack = world.slack
    token = await world.asked("a cathedral --size 4K")
    # Between the question and the answer a moderator tightens the budget.
    await world.command("/imagine-budget", "set 0.10 month", user="UADMIN", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 2)
    await world.answer("imagine_confirm_run", token)
    await slack.wait_for(lambda: any("would go over" in t for t in world.answers()))
    # The only answer is the core's: the refusal, in place of the question (its buttons go).
    assert [r for r in slack.responses[2:]] == [
        {**slack.responses[2], "response_type": "ephemeral", "replace_original": True}
    ], world.answers()
    # It says a moderator can let it through: the button to ask one is there.
    assert "press Ask a moderator" in slack.responses[2]["text"]
    assert [b["action_id"] for b in slack.responses[2]["blocks"][-1]["elements"]] == ["imagine_ask_moderator"]
    assert read_jobs(world.db) == {} and world.statuses() == []


async def test_over_the_budget_is_refused_and_past_the_alert_line_asks_first(world):
    slack = world.slack
    await world.command(
        "/imagine-budget", f"set {TIGHT_BUDGET} month", user="UADMIN", response_url=slack.response_url()
    )
    await slack.wait_for(lambda: len(slack.responses) == 1)
    await world.command("/imagine", "a cathedral --size 4K", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 2)
    refused = slack.responses[1]
    assert "would go over the team budget of $0.16" in refused["text"] and "Nothing was charged" in refused["text"]
    # No [Run], no [Use Flash]: only [Ask a moderator] (tests/e2e/slack/test_slack_approvals.py).
    assert [b["action_id"] for b in refused["blocks"][-1]["elements"]] == ["imagine_ask_moderator"]
    assert "alert line" not in refused["text"]
    await world.command("/imagine", "a small chapel", response_url=slack.response_url())
    await slack.wait_for(lambda: len(slack.responses) == 3)
    question = slack.responses[2]
    assert "alert line" in question["text"], question
    assert [b["action_id"] for b in question["blocks"][-1]["elements"]] == [
        "imagine_confirm_run",
        "imagine_confirm_flash",
    ]
    assert read_jobs(world.db) == {}
