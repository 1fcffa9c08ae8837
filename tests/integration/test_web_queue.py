"""The dashboard's queue page over HTTP (no browser): what a team sees, cancelling (the hold
released, refusals changing nothing), and the live event stream. test_web_queue_browser.py
drives the same page in Chromium."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from adapters.web import queue as queue_page
from bot.money import usd
from bot.money.budgets import Budget, Period, Scope
from bot.providers.errors import user_message_for
from bot.sign_in import Role
from bot.types import JobState
from tests.support.clock import FakeClock
from tests.support.dashboard import start_dashboard
from tests.support.probe import eventually
from tests.support.web_queue import EventReader, queue_job, service_for, streams_of

QUEUE = "/dashboard/queue"


@pytest.fixture(autouse=True)
def quick_streams(monkeypatch):
    # The streams read the queue ten times a second here, so a change shows in 0.1 s, not 1 s.
    monkeypatch.setattr(queue_page, "POLL_SECONDS", 0.1)


@pytest.fixture
def service(dashboard):
    return service_for(dashboard)


@pytest.fixture
async def clients():
    """A browser (its own cookie jar) per person: clients() makes one more."""
    made: list[aiohttp.ClientSession] = []

    def make() -> aiohttp.ClientSession:
        made.append(aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)))
        return made[-1]

    yield make
    for client in made:
        await client.close()


async def signed_in(clients, dashboard, team="T1", user="U1", role=Role.MEMBER) -> tuple[aiohttp.ClientSession, str]:
    """A client signed in as `user` of `team`, and its CSRF token."""
    client = clients()
    async with client.get(dashboard.link(team, user, role)) as r:
        assert r.status == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', await r.text())
    assert csrf is not None
    return client, csrf.group(1)


async def queue_page_of(client, dashboard, query: str = "") -> str:
    async with client.get(dashboard.base + QUEUE + query) as r:
        assert r.status == 200, await r.text()
        return await r.text()


def rows(page: str) -> dict[int, dict[str, str]]:
    """The table's rows by job id: their data- attributes and whether they have a Cancel button."""
    found = {}
    for match in re.finditer(r'<tr data-job="(\d+)"(.*?)</tr>', page, re.S):
        attributes = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', match.group(2).split(">", 1)[0]))
        attributes["cancel"] = "yes" if "/cancel" in match.group(2) else "no"
        attributes["cells"] = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(2).split(">", 1)[1])).strip()
        found[int(match.group(1))] = attributes
    return found


async def cancel(client, dashboard, job_id: int, csrf: str | None, follow: bool = False) -> aiohttp.ClientResponse:
    form = {"csrf": csrf} if csrf is not None else {}
    async with client.post(f"{dashboard.base}{QUEUE}/{job_id}/cancel", data=form, allow_redirects=follow) as response:
        await response.read()
        return response


async def team_budget_used(dashboard, team: str = "T1") -> tuple[int, int]:
    [status] = await dashboard.store.budget_statuses(team, None, None)
    return status.spent_micros, status.reserved_micros


async def test_the_team_s_queue_with_the_store_s_positions_and_the_holds_as_estimates(dashboard, service, clients):
    store = dashboard.store
    theirs = await queue_job(service, team="T2", user="V1", prompt="another team's secret")
    mine = [await queue_job(service, user="U1", prompt=f"mine {i}", model="flash") for i in range(2)]
    hers = await queue_job(service, user="U2", prompt="<script>alert(1)</script> " + "long " * 40)
    await store.lease("w", 60, only_job_id=mine[0].job_id)

    client, _ = await signed_in(clients, dashboard)
    page = await queue_page_of(client, dashboard)
    shown = rows(page)
    assert list(shown) == [mine[0].job_id, mine[1].job_id, hers.job_id]  # running first, then by position
    assert theirs.job_id not in shown and "secret" not in page
    for job_id, row in shown.items():
        job = await store.get_job(job_id)
        position = await store.position(job_id)
        assert row["position"] == ("" if position is None else str(position))
        assert row["state"] == job.state.value and int(row["held-micros"]) == job.held_micros > 0
        assert usd(job.held_micros) in row["cells"]
    assert shown[mine[1].job_id]["position"] == "2"  # T2's job is ahead of it, one round earlier
    # The hold is the estimate the request was accepted with.
    assert int(shown[hers.job_id]["held-micros"]) == hers.estimate_usd * 1_000_000
    # Only my own queued job can be cancelled, by me: not the running one, not U2's.
    assert {j: r["cancel"] for j, r in shown.items()} == {
        mine[0].job_id: "no",
        mine[1].job_id: "yes",
        hers.job_id: "no",
    }
    # The prompt escaped and shortened; model, size, lane and who asked.
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert shown[hers.job_id]["cells"].count("long") < 20 and "…" in shown[hers.job_id]["cells"]
    assert "flash" in shown[mine[1].job_id]["cells"] and "standard" in shown[mine[1].job_id]["cells"]
    assert "U2" in shown[hers.job_id]["cells"] and "under a minute" in shown[hers.job_id]["cells"]
    dashboard.clock.advance(42 * 60 + 5)
    assert "42 min" in rows(await queue_page_of(client, dashboard))[hers.job_id]["cells"]
    # To the minute only, so the stream has nothing new to send every second.
    assert [queue_page.age(s) for s in (59, 3 * 3600 + 120, 2 * 86400 + 7200)] == [
        "under a minute",
        "3 h 2 min",
        "2 d 2 h",
    ]

    moderator, _ = await signed_in(clients, dashboard, user="M1", role=Role.MODERATOR)
    shown = rows(await queue_page_of(moderator, dashboard))
    assert {j: r["cancel"] for j, r in shown.items()} == {
        mine[0].job_id: "no",
        mine[1].job_id: "yes",
        hers.job_id: "yes",
    }

    other, _ = await signed_in(clients, dashboard, team="T2", user="V1")
    page = await queue_page_of(other, dashboard)
    assert list(rows(page)) == [theirs.job_id] and "mine" not in page and "alert" not in page


async def test_the_page_loads_its_script_from_static_and_reloads_itself_without_it(dashboard, clients):
    client, _ = await signed_in(clients, dashboard)
    async with client.get(dashboard.base + QUEUE) as r:
        page = await r.text()
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert '<script src="/dashboard/static/queue.js" defer></script>' in page
    assert re.search(r"<script>", page) is None  # nothing inline: the policy would block it
    assert '<noscript><meta http-equiv="refresh" content="15; url=/dashboard/queue"></noscript>' in page
    assert 'href="/dashboard/queue" aria-current="page"' in page and "Nothing is queued" in page
    async with client.get(dashboard.base + "/dashboard/static/queue.js") as r:
        assert r.status == 200 and "javascript" in r.headers["Content-Type"]
        assert "EventSource" in await r.text()
    async with clients().get(dashboard.base + QUEUE) as r:
        assert r.status == 401


async def test_cancelling_my_queued_job_releases_its_hold_at_once(dashboard, service, clients):
    store = dashboard.store
    await store.set_budget(Budget("T1", Scope.TEAM, "", 10_000_000, Period.MONTH), "mod")
    accepted = await queue_job(service)
    held = (await store.get_job(accepted.job_id)).held_micros
    assert await team_budget_used(dashboard) == (0, held)

    client, csrf = await signed_in(clients, dashboard)
    response = await cancel(client, dashboard, accepted.job_id, csrf)
    assert response.status == 303 and response.headers["Location"] == f"{QUEUE}?cancelled={accepted.job_id}"
    page = await queue_page_of(client, dashboard, f"?cancelled={accepted.job_id}")
    assert f"Job #{accepted.job_id} was cancelled, and its hold released." in page
    assert accepted.job_id not in rows(page)

    job = await store.get_job(accepted.job_id)
    assert job.state is JobState.CANCELLED and job.held_micros == 0
    entries = [(r["entry"], r["cost_micros"]) for r in await store.ledger(team="T1") if r["job_id"] == job.id]
    assert entries == [("reservation", held), ("release", held)]
    assert await team_budget_used(dashboard) == (0, 0)
    # Its requester is told where they asked (a chat status message would otherwise say
    # "queued" for ever): one final delivery, in the user's words.
    [told] = await store.claim_deliveries(["test"], 10, 60)
    assert (told.job_id, told.kind, told.payload["error_class"]) == (job.id, "failure", "cancelled")
    assert "Cancelled from the dashboard" in user_message_for(told.payload["error_class"])


async def test_a_moderator_cancels_a_member_s_queued_job(dashboard, service, clients):
    accepted = await queue_job(service, user="U2")
    moderator, csrf = await signed_in(clients, dashboard, user="M1", role=Role.MODERATOR)
    assert (await cancel(moderator, dashboard, accepted.job_id, csrf)).status == 303
    assert (await dashboard.store.get_job(accepted.job_id)).state is JobState.CANCELLED


async def test_refused_cancels_say_why_and_change_nothing(dashboard, service, clients):
    store = dashboard.store
    hers = await queue_job(service, user="U2")
    theirs = await queue_job(service, team="T2", user="U1")  # the same user name, in another team
    running = await queue_job(service, user="U1", prompt="started")
    mine = await queue_job(service, user="U1", prompt="mine")
    await store.lease("w", 60, only_job_id=running.job_id)
    assert (await store.get_job(running.job_id)).state is JobState.RUNNING
    before = {j: await store.get_job(j) for j in (hers.job_id, theirs.job_id, running.job_id, mine.job_id)}

    client, csrf = await signed_in(clients, dashboard)
    for job_id, status, says in (
        (hers.job_id, 403, "only they or a moderator can cancel it"),
        (theirs.job_id, 404, f"There is no job #{theirs.job_id}"),
        (running.job_id, 409, "has already started"),
        (999_999, 404, "There is no job #999999"),
    ):
        async with client.post(f"{dashboard.base}{QUEUE}/{job_id}/cancel", data={"csrf": csrf}) as r:
            page = await r.text()
            assert r.status == status and says in page and "Back to the queue" in page, (job_id, page)
            assert "Traceback" not in page
    for form in ({}, {"csrf": "forged"}):
        async with client.post(f"{dashboard.base}{QUEUE}/{mine.job_id}/cancel", data=form) as r:
            assert r.status == 403 and "This form has expired" in await r.text()
    async with client.post(f"{dashboard.base}{QUEUE}/{'9' * 40}/cancel", data={"csrf": csrf}) as r:
        assert r.status == 404  # not a job id at all
    assert {j: await store.get_job(j) for j in before} == before

    # Once cancelled, a second cancel (a double click) is refused, and releases nothing twice.
    assert (await cancel(client, dashboard, mine.job_id, csrf)).status == 303
    async with client.post(f"{dashboard.base}{QUEUE}/{mine.job_id}/cancel", data={"csrf": csrf}) as r:
        assert r.status == 409 and "already cancelled" in await r.text()
    releases = [r for r in await store.ledger(team="T1") if r["job_id"] == mine.job_id and r["entry"] == "release"]
    assert len(releases) == 1


async def events(client, dashboard) -> tuple[EventReader, aiohttp.ClientResponse]:
    response = await client.get(dashboard.base + QUEUE + "/events")
    assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
    return EventReader(response), response


async def test_the_stream_sends_the_table_when_a_job_is_queued_or_cancelled(dashboard, service, clients):
    client, csrf = await signed_in(clients, dashboard)
    reader, response = await events(client, dashboard)
    try:
        assert "Nothing is queued" in await reader.next_named("queue")
        accepted = await queue_job(service, prompt="live koi")
        table = await reader.next_named("queue")
        assert accepted.job_id in rows(table) and "live koi" in table
        assert f'name="csrf" value="{csrf}"' in table  # its Cancel button works as the page's does
        await service.cancel(accepted.job_id)
        assert "Nothing is queued" in await reader.next_named("queue")
    finally:
        response.close()


async def test_each_team_s_stream_carries_only_its_own_jobs(dashboard, service, clients):
    ours, _ = await signed_in(clients, dashboard, team="T1")
    theirs, _ = await signed_in(clients, dashboard, team="T2", user="V1", role=Role.MODERATOR)
    our_reader, our_response = await events(ours, dashboard)
    their_reader, their_response = await events(theirs, dashboard)
    try:
        seen: list[str] = [await our_reader.next_named("queue")]
        await their_reader.next_named("queue")
        their_job = await queue_job(service, team="T2", user="V1", prompt="their fox")
        assert their_job.job_id in rows(await their_reader.next_named("queue"))
        our_job = await queue_job(service, team="T1", prompt="our koi")
        # Events come in order: had T2's job reached our stream, it would be in one before ours.
        while our_job.job_id not in rows(seen[-1]):
            seen.append(await our_reader.next_named("queue"))
        assert all(their_job.job_id not in rows(t) and "their fox" not in t for t in seen)
    finally:
        our_response.close()
        their_response.close()


async def test_a_stream_ends_when_its_client_leaves(dashboard, clients):
    client, _ = await signed_in(clients, dashboard)
    streams = streams_of(dashboard)
    reader, response = await events(client, dashboard)
    await reader.next_named("queue")
    assert streams.open == 1
    response.close()
    await eventually(lambda: streams.open == 0, what="the stream ended after its client left")


async def test_a_quiet_stream_sends_heartbeats_and_ends_with_its_session(dashboard, clients, monkeypatch):
    monkeypatch.setattr(queue_page, "HEARTBEAT_SECONDS", 0.0)
    client, _ = await signed_in(clients, dashboard)
    reader, response = await events(client, dashboard)
    await reader.next_named("queue")
    assert await reader.next_comment() == "still here"  # the table is unchanged: only a heartbeat
    dashboard.clock.advance(3601)  # the session's time is up
    assert await reader.next_named("signed-out") == ""
    with pytest.raises(EOFError):
        await reader.next()
    response.close()


async def test_past_the_open_streams_cap_a_stream_is_refused_until_one_ends(dashboard, clients, monkeypatch):
    monkeypatch.setattr(queue_page, "MAX_STREAMS", 1)
    client, _ = await signed_in(clients, dashboard)
    reader, response = await events(client, dashboard)
    await reader.next_named("queue")
    async with client.get(dashboard.base + QUEUE + "/events") as r:
        assert r.status == 503 and r.headers["Retry-After"] == "30" and "Reload the page" in await r.text()
    response.close()
    await eventually(lambda: streams_of(dashboard).open == 0, what="the first stream ended")
    reader, response = await events(client, dashboard)
    response.close()


async def test_without_a_session_there_is_no_stream(dashboard, clients):
    async with clients().get(dashboard.base + QUEUE + "/events") as r:
        assert r.status == 401 and "not signed in" in await r.text()


async def test_shutting_down_ends_open_streams_at_once(tmp_path, clients):
    dashboard = await start_dashboard(str(tmp_path / "s.db"), FakeClock())
    try:
        client, _ = await signed_in(clients, dashboard)
        reader, response = await events(client, dashboard)
        await reader.next_named("queue")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await dashboard.runner.cleanup()  # what `python -m bot run` does on SIGTERM
        assert loop.time() - started < 5  # the streams' handlers did not hold it for its 60 s timeout
        with pytest.raises((EOFError, aiohttp.ClientError)):
            await reader.next_named("queue")
        response.close()
    finally:
        await dashboard.store.close()
