"""A linked team is still itself: the allow-list names it, not its organisation; what it made
before the link stays its own; its moderators stay moderators; and the CLI or a web session
naming the team's own id reaches its organisation."""

from __future__ import annotations

import pytest

from bot.access import Caller
from bot.attachments import DeclaredFile
from bot.catalog import load_catalog
from bot.service import ImagineService
from bot.sign_in import SignIn
from bot.teams import TeamRef
from bot.thread_lineage import Undone
from bot.types import Accepted, EditRequest, ImagineRequest, RefusalReason, Refused
from policies.config import PolicyBook
from policies.roles import PlatformRole
from tests.support.gallery import render

THREAD = ("C1", "1700.1")
MEMBER = Caller("4455", "222", platform="discord")


def in_thread(where):
    return [THREAD]


def imagine(caller: Caller, prompt: str = "a koi pond") -> ImagineRequest:
    return ImagineRequest(team=caller.team, channel="C1", user=caller.user, platform=caller.platform, prompt=prompt)


def edit(caller: Caller, parent: int) -> EditRequest:
    return EditRequest(
        team=caller.team,
        channel="C1",
        user=caller.user,
        platform=caller.platform,
        parent_image_id=parent,
        instruction="at night",
    )


async def test_a_linked_team_taken_off_the_allow_list_spends_nothing(store):
    both = ImagineService(store, load_catalog(), policies=PolicyBook(access={"teams": ["T0123", "4455"]}))
    await both.link_teams("T0123", "4455")
    made = await both.submit(imagine(MEMBER))
    assert isinstance(made, Accepted)
    image = await render(store, "a koi pond", 10_000, team="T0123", user="222")
    cut = ImagineService(store, load_catalog(), policies=PolicyBook(access={"teams": ["T0123"]}))
    refusals = [
        await cut.submit(imagine(MEMBER)),
        await cut.edit(edit(MEMBER, image)),
        await cut.check_attachments(imagine(MEMBER), [DeclaredFile("a.png", 100, "image/png")]),
        await cut.rerun(made.job_id, MEMBER, platform="discord", channel="C1"),
    ]
    for refused in refusals:
        assert isinstance(refused, Refused) and refused.reason is RefusalReason.TEAM_NOT_ALLOWED, refused
    # The organisation's home, still on the list, spends as before.
    assert isinstance(await cut.submit(imagine(Caller("T0123", "U1", platform="slack"))), Accepted)


async def test_what_a_team_made_before_the_link_stays_its_own(store, clock):
    service = ImagineService(store, load_catalog(), clock=clock)
    root = await render(store, "a lighthouse", 134_000, team="4455", user="222")
    await store.remember_thread("discord", "4455", *THREAD, root)
    queued = await service.submit(imagine(MEMBER))
    assert isinstance(queued, Accepted)
    await service.link_teams("T0123", "4455")
    assert await service.may_delete(queued.job_id, MEMBER)
    assert await service.thread_image("discord", "4455", *THREAD) == root
    # A reply in the old thread edits its image, under the organisation's key now.
    edited = await service.edit(edit(MEMBER, root))
    assert isinstance(edited, Accepted), edited
    job, _ = await service.status(edited.job_id)
    assert job is not None and job.team == "T0123"
    rerun = await service.rerun(queued.job_id, MEMBER, platform="discord", channel="C1")
    assert isinstance(rerun, Accepted), rerun
    history = await service.thread_history("4455", "discord", THREAD)
    assert history is not None and not isinstance(history, Refused) and history.image.id == root
    recent = await service.recent_images("4455", "222", "discord")
    assert not isinstance(recent, Refused) and root in [i.id for i in recent]
    listed = await service.team_queue(MEMBER)
    assert not isinstance(listed, Refused)
    assert [e.may_cancel for e in listed if e.job.id == queued.job_id] == [True], listed
    cancelled = await service.cancel_for(queued.job_id, MEMBER)
    assert not isinstance(cancelled, Refused), cancelled
    assert await service.may_delete_image(root, MEMBER)


async def test_a_thread_across_the_link_keeps_its_lineage_and_undo(store, clock):
    service = ImagineService(store, load_catalog(), clock=clock)
    root = await render(store, "a lighthouse", 134_000, team="4455", user="222")
    await store.remember_thread("discord", "4455", *THREAD, root)
    await service.link_teams("T0123", "4455")
    edited = await render(store, "at night", 40_000, parent=root, team="T0123", user="222", color="navy")
    await service.remember_thread("discord", "4455", *THREAD, edited)
    assert await service.thread_image("discord", "4455", *THREAD) == edited
    history = await service.thread_history("4455", "discord", THREAD)
    assert history is not None and not isinstance(history, Refused)
    assert [s.image.id for s in history.steps] == [root, edited] and history.thread_micros == 174_000
    job = (await store.get_image(edited)).job_id
    undone = await service.undo(job, MEMBER, "discord", in_thread)
    assert isinstance(undone, Undone), undone
    assert undone.now_latest.image.id == root


async def test_after_unlinking_the_linked_period_stays_with_the_organisation(store):
    service = ImagineService(store, load_catalog())
    await service.link_teams("T0123", "4455")
    made = await service.submit(imagine(MEMBER))
    assert isinstance(made, Accepted)
    await service.unlink_team(TeamRef("discord", "4455"))
    assert not await service.may_delete(made.job_id, MEMBER)
    assert await service.may_delete(made.job_id, Caller("T0123", "U1", platform_admin=True, platform="slack"))


async def test_a_joining_teams_own_moderator_is_not_held_to_role_limits(store):
    policies = PolicyBook(
        teams={
            "T0123": {"roles": {"1001": {"models": ["flash"]}}},
            "4455": {"moderators": ["222"]},
        }
    )
    service = ImagineService(store, load_catalog(), policies=policies)
    await service.link_teams("T0123", "4455")
    interns = (PlatformRole("1001", "Interns"),)
    req = ImagineRequest(
        team="4455", channel="C1", user="222", platform="discord", prompt="a koi pond", model="pro", roles=interns
    )
    assert isinstance(await service.submit(req), Accepted)
    other = ImagineRequest(
        team="4455", channel="C1", user="333", platform="discord", prompt="a koi pond", model="pro", roles=interns
    )
    assert isinstance(await service.submit(other), Refused)


@pytest.mark.parametrize("platform", ["cli", "web"])
async def test_the_cli_and_the_web_naming_a_linked_team_reach_its_organisation(store, platform):
    service = ImagineService(store, load_catalog())
    await service.link_teams("T0123", "4455")
    operator = Caller("4455", "op", platform_admin=True, platform=platform)
    budget = await service.set_budget(operator, "0.50", "month")
    assert not isinstance(budget, Refused) and budget.team == "T0123"
    assert isinstance(await service.submit(imagine(MEMBER)), Accepted)
    usage = await service.usage("4455", "op", platform=platform)
    assert not isinstance(usage, Refused) and usage.team == "T0123"


async def test_a_web_session_follows_its_team_into_and_out_of_an_organisation(store):
    from urllib.parse import unquote

    sign_in = SignIn(store, "s" * 32, "http://127.0.0.1", session_seconds=3600)
    service = ImagineService(store, load_catalog(), sign_in=sign_in)
    link = await service.dashboard_link(Caller("4455", "111", platform_admin=True, platform="discord"))
    assert isinstance(link, str)
    opened = await sign_in.open_link(unquote(link.rsplit("/", 1)[1]), "127.0.0.1")
    session, _ = opened  # type: ignore[misc]
    await service.link_teams("T0123", "4455")  # after the sign-in: each request resolves anew
    usage = await service.usage(session.team, session.user, platform="web")
    assert not isinstance(usage, Refused) and usage.team == "T0123"
    made = await service.submit(imagine(Caller(session.team, session.user, platform="web")))
    assert isinstance(made, Accepted)
    assert await service.team_status(session.team, made.job_id) is not None  # the job page
    assert await service.team_status("T0999", made.job_id) is None
    await service.unlink_team(TeamRef("discord", "4455"))
    usage = await service.usage(session.team, session.user, platform="web")
    assert not isinstance(usage, Refused) and usage.team == "4455"


async def test_a_team_s_money_calls_say_the_store_is_down_when_it_is(tmp_path):
    from bot.ledger_view import LedgerFilter
    from bot.service import STORE_DOWN
    from bot.store.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "x.db"))
    await store.open()
    service = ImagineService(store, load_catalog())
    await store.close()
    mod = Caller("4455", "111", platform_admin=True, platform="discord")
    answers = [
        await service.show_budgets(mod),
        await service.budget_changes(mod),
        await service.ledger(mod, LedgerFilter(), limit=10),
        await service.usage("4455", "111", platform="discord"),
        await service.daily_spend("4455", platform="discord"),
        await service.top_spenders("4455", platform="discord"),
        await service.savings("4455", platform="discord"),
    ]
    assert answers == [Refused(RefusalReason.UNAVAILABLE, STORE_DOWN)] * len(answers)


async def test_a_joining_workspaces_roles_are_read_from_the_workspace_itself(store):
    """A Slack workspace in an organisation whose home is a Discord server: its users' roles
    are looked up in the workspace, not under the server's id."""
    from bot.roles import Standing

    asked: list[str] = []

    class Directory:
        what, platform = "user groups", "Slack"

        async def standing(self, team, user, role_ids):
            asked.append(team)
            return Standing((), False)

    policies = PolicyBook(teams={"4455": {"roles": {"S100": {"models": ["flash"]}}}})
    service = ImagineService(store, load_catalog(), policies=policies)
    service.add_role_directory("slack", Directory())
    await service.link_teams("T0123", "4455", home="discord")
    assert isinstance(await service.submit(imagine(Caller("T0123", "U1", platform="slack"))), Accepted)
    assert asked == ["T0123"]


async def test_a_question_asked_before_the_link_is_answered_after_it(store):
    from bot.types import NeedsConfirmation

    policies = PolicyBook(defaults={"confirm_above_usd": "0.01"})
    service = ImagineService(store, load_catalog(), policies=policies)
    asked = await service.submit(imagine(MEMBER))
    assert isinstance(asked, NeedsConfirmation), asked
    token = await service.hold_confirmation(asked)
    await service.link_teams("T0123", "4455")
    outcome, _ = await service.confirm(token, MEMBER)
    assert isinstance(outcome, Accepted), outcome
    job, _ = await service.status(outcome.job_id)
    assert job is not None and job.team == "T0123"
