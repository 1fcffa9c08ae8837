"""The dashboard's Ledger and Budgets pages over HTTP (no browser): filters, pages, the CSV the
CLI writes, moderators only, one team per session, budgets set through the core's own call and
refused on bad input with nothing changed, and the audit of every change whatever its path."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import sys
from datetime import UTC, datetime

import pytest

from bot.access import Caller
from bot.catalog import load_catalog
from bot.money.budgets import Budget, Period, Scope
from bot.service import ImagineService
from bot.sign_in import Role
from tests.support.bot_process import bot_env
from tests.support.clock import FakeClock
from tests.support.dashboard import start_dashboard
from tests.support.store_contract import settle

DAY = 86400
START = 1_800_000_000.0 - 1_800_000_000.0 % DAY + 3600  # 2027-01-15 01:00 UTC


@pytest.fixture
async def dashboard(tmp_path):
    started = await start_dashboard(str(tmp_path / "web.db"), FakeClock(START))
    yield started
    await started.close()


async def sign_in(browser, dashboard, team="T1", user="M1", role=Role.MODERATOR) -> None:
    async with browser.get(dashboard.link(team, user, role)) as r:
        assert r.status == 200


async def get(browser, dashboard, path: str) -> tuple[int, str]:
    async with browser.get(dashboard.base + path) as r:
        return r.status, await r.text()


def job_ids(page: str) -> list[int]:
    return [int(j) for j in re.findall(r'data-job="(\d+)"', page)]


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


async def day_of_charges(dashboard) -> dict[str, int]:
    """Charges over two days, two users, two models; and one of another team."""
    store, clock = dashboard.store, dashboard.clock
    jobs = {"a": await settle(store, "T1", "pro", 134_000, "a", user="U1")}
    clock.advance(DAY)
    jobs["b"] = await settle(store, "T1", "flash", 67_000, "b", user="U2")
    jobs["c"] = await settle(store, "T1", "pro", 240_000, "c", user="U1")
    jobs["theirs"] = await settle(store, "T2", "pro", 999_000, "other team", user="U1")
    return jobs


# -- the ledger ---------------------------------------------------------------


async def test_the_ledger_filters_by_date_user_and_model_newest_first(dashboard, browser):
    jobs = await day_of_charges(dashboard)
    await sign_in(browser, dashboard)
    status, page = await get(browser, dashboard, "/dashboard/ledger")
    assert status == 200 and job_ids(page) == [jobs["c"], jobs["b"], jobs["a"]]
    assert 'href="/dashboard/ledger" aria-current="page"' in page  # the moderator's nav link
    assert (await get(browser, dashboard, "/dashboard/ledger?user=U1"))[1].count("data-job=") == 2
    assert job_ids((await get(browser, dashboard, "/dashboard/ledger?model=flash"))[1]) == [jobs["b"]]
    assert job_ids((await get(browser, dashboard, "/dashboard/ledger?from=2027-01-16"))[1]) == [jobs["c"], jobs["b"]]
    assert job_ids((await get(browser, dashboard, "/dashboard/ledger?to=2027-01-15"))[1]) == [jobs["a"]]
    assert job_ids((await get(browser, dashboard, "/dashboard/ledger?lane=batch&channel=C1"))[1]) == []
    _, every = await get(browser, dashboard, "/dashboard/ledger?user=U2&all=1")
    assert job_ids(every) == [jobs["b"]] * 3 and "reservation" in every and "release" in every


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("from=yesterday", "From takes a date like 2026-11-01"),
        ("to=2027-02-30", "To takes a date like"),
        ("from=2027-01-16&to=2027-01-15", "before the &#39;from&#39; date"),
        ("lane=warp", "The lane is one of standard, batch, flex, priority"),
        ("page=0", "The page is a number from 1"),
        ("page=%C2%B2", "The page is a number from 1"),
        ("page=99999999999999999999", "The page is a number from 1"),
    ],
)
async def test_a_bad_filter_gets_a_friendly_message_not_a_500(dashboard, browser, query, said):
    await day_of_charges(dashboard)
    await sign_in(browser, dashboard)
    status, page = await get(browser, dashboard, f"/dashboard/ledger?{query}")
    assert status == 400 and said in page and "Traceback" not in page
    assert job_ids(page) == [] and 'role="alert"' in page
    async with browser.get(dashboard.base + f"/dashboard/ledger.csv?{query.split('&page')[0]}") as r:
        assert r.status in (200, 400) and "Traceback" not in await r.text()


async def test_the_ledger_pages_by_50_with_newer_and_older_links_keeping_the_filters(dashboard, browser):
    for n in range(120):
        await settle(dashboard.store, "T1", "pro", 1_000 + n, f"p{n}", user="U1" if n % 2 else "U2")
    await sign_in(browser, dashboard)
    _, first = await get(browser, dashboard, "/dashboard/ledger?user=U1&lane=standard")
    ids = job_ids(first)
    assert len(ids) == 50 and ids == sorted(ids, reverse=True)
    assert 'rel="prev"' not in first
    older = re.search(r'rel="next" href="([^"]+)"', first)
    assert older is not None and "user=U1" in older.group(1) and "lane=standard" in older.group(1)
    _, second = await get(browser, dashboard, older.group(1).replace("&amp;", "&"))
    assert len(job_ids(second)) == 10 and max(job_ids(second)) < min(ids)
    assert 'rel="next"' not in second  # 60 rows of U1: the last page
    newer = re.search(r'rel="prev" href="([^"]+)"', second)
    assert newer is not None
    _, back = await get(browser, dashboard, newer.group(1).replace("&amp;", "&"))
    assert job_ids(back) == ids


async def cli_csv(dashboard, *args: str) -> str:
    """`python -m bot usage --format csv ...` over the dashboard's own database."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "usage",
        "--team",
        "T1",
        "--format",
        "csv",
        *args,
        env=bot_env(DATABASE_URL=f"sqlite:///{dashboard.path}"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_the_csv_export_is_the_cli_s_csv_of_the_same_rows(dashboard, browser):
    await day_of_charges(dashboard)
    await sign_in(browser, dashboard)
    since = datetime.fromtimestamp(START, UTC).strftime("%Y-%m-%d")
    for web_query, cli_args in ((f"from={since}", ()), (f"from={since}&all=1", ("--all-entries",))):
        async with browser.get(dashboard.base + f"/dashboard/ledger.csv?{web_query}") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
            assert "attachment" in r.headers["Content-Disposition"]
            exported = await r.text()
        assert exported == await cli_csv(dashboard, "--since", since, *cli_args)
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert {r["team"] for r in rows} == {"T1"} and len(rows) == 9
    # The page's own link carries its filters.
    _, page = await get(browser, dashboard, "/dashboard/ledger?model=flash&user=U2")
    link = re.search(r'class="csv" href="([^"]+)"', page)
    assert link is not None
    async with browser.get(dashboard.base + link.group(1).replace("&amp;", "&")) as r:
        [row] = list(csv.DictReader(io.StringIO(await r.text())))
    assert (row["model"], row["user"], row["cost_usd"]) == ("flash", "U2", "0.067000")


async def test_a_member_is_refused_the_ledger_its_csv_and_the_links(dashboard, browser):
    await day_of_charges(dashboard)
    await sign_in(browser, dashboard, user="U1", role=Role.MEMBER)
    for path in ("/dashboard/ledger", "/dashboard/ledger?lane=warp", "/dashboard/ledger.csv", "/dashboard/budgets"):
        status, page = await get(browser, dashboard, path)
        assert status == 403 and "Only moderators" in page and "data-job" not in page, path
    _, overview = await get(browser, dashboard, "/dashboard/")
    assert "/dashboard/ledger" not in overview and "/dashboard/budgets" not in overview


async def test_a_second_team_sees_none_of_the_first_team_s_ledger(dashboard, browser):
    jobs = await day_of_charges(dashboard)
    await sign_in(browser, dashboard, team="T2", user="M2")
    _, page = await get(browser, dashboard, "/dashboard/ledger")
    assert job_ids(page) == [jobs["theirs"]]
    # A team in the request changes nothing: the session's team is the only one.
    _, page = await get(browser, dashboard, "/dashboard/ledger?team=T1")
    assert job_ids(page) == [jobs["theirs"]]
    async with browser.get(dashboard.base + "/dashboard/ledger.csv?team=T1&all=1") as r:
        assert {row["team"] for row in csv.DictReader(io.StringIO(await r.text()))} == {"T2"}


async def test_without_a_session_the_pages_ask_for_a_link(dashboard, browser):
    for path in ("/dashboard/ledger", "/dashboard/ledger.csv", "/dashboard/budgets"):
        assert (await get(browser, dashboard, path))[0] == 401


# -- budgets ------------------------------------------------------------------


async def test_a_moderator_sets_a_channel_budget_and_sees_it_and_its_audit_line(dashboard, browser):
    await sign_in(browser, dashboard)
    status, page = await get(browser, dashboard, "/dashboard/budgets")
    assert status == 200 and 'data-budget="default team"' in page and "No budget has been changed yet" in page
    form = {"csrf": csrf(page), "scope": "channel", "scope_id": "C7", "usd": "12.5", "period": "week", "soft": "0.6"}
    async with browser.post(dashboard.base + "/dashboard/budgets", data=form, allow_redirects=False) as r:
        assert r.status == 303 and r.headers["Location"] == "/dashboard/budgets?saved=1"
    [stored] = await dashboard.store.budgets("T1")
    assert stored == Budget("T1", Scope.CHANNEL, "C7", 12_500_000, Period.WEEK, soft_threshold=0.6)
    _, page = await get(browser, dashboard, "/dashboard/budgets?saved=1")
    assert "Budget saved." in page and 'data-budget="channel C7"' in page
    assert "M1 (web) set the channel C7 budget to $12.50 per week, alert at 60% (new)" in page


async def test_a_team_budget_ignores_a_left_over_id_and_takes_the_policy_threshold(dashboard, browser):
    await sign_in(browser, dashboard)
    _, page = await get(browser, dashboard, "/dashboard/budgets")
    form = {"csrf": csrf(page), "scope": "team", "scope_id": "C7", "usd": "$40", "period": "month", "soft": ""}
    async with browser.post(dashboard.base + "/dashboard/budgets", data=form) as r:
        assert r.status == 200
    [stored] = await dashboard.store.budgets("T1")
    assert (stored.scope, stored.scope_id, stored.limit_micros) == (Scope.TEAM, "", 40_000_000)
    assert stored.soft_threshold == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("usd", "lots", "A budget is an amount in dollars between 0 and"),
        ("usd", "-5", "A budget is an amount in dollars"),
        ("period", "fortnight", "The period is day, week or month."),
        ("soft", "1.5", "The alert threshold is a fraction between 0 and 1."),
        ("soft", "most", "The alert threshold is a fraction between 0 and 1."),
        ("scope_id", "", "A channel or user budget needs the channel or user."),
        ("scope", "galaxy", "Pick team, channel or user."),
    ],
)
async def test_bad_input_shows_the_core_s_refusal_and_changes_nothing(dashboard, browser, field, value, said):
    await dashboard.store.set_budget(Budget("T1", Scope.USER, "U1", 3_000_000, Period.DAY), "M0", "slack")
    await sign_in(browser, dashboard)
    _, page = await get(browser, dashboard, "/dashboard/budgets")
    form = {"csrf": csrf(page), "scope": "user", "scope_id": "U1", "usd": "9", "period": "month", "soft": "0.5"}
    async with browser.post(dashboard.base + "/dashboard/budgets", data={**form, field: value}) as r:
        page = await r.text()
    assert r.status == 400 and said in page and 'role="alert"' in page
    if field in ("usd", "soft", "scope_id"):  # what was typed is kept, to be corrected
        assert f'name="{field}" value="{value}"' in page
    assert await dashboard.store.budgets("T1") == [Budget("T1", Scope.USER, "U1", 3_000_000, Period.DAY)]
    assert len(await dashboard.store.budget_changes("T1", 10)) == 1


async def test_a_member_cannot_set_a_budget(dashboard, browser):
    await sign_in(browser, dashboard, user="U1", role=Role.MEMBER)
    _, page = await get(browser, dashboard, "/dashboard/")
    form = {"csrf": csrf(page), "scope": "team", "scope_id": "", "usd": "1000", "period": "month", "soft": ""}
    async with browser.post(dashboard.base + "/dashboard/budgets", data=form) as r:
        assert r.status == 403 and "Only moderators can change budgets." in await r.text()
    assert await dashboard.store.budgets("T1") == []
    assert await dashboard.store.budget_changes("T1", 10) == []


async def test_a_post_without_the_csrf_token_sets_nothing(dashboard, browser):
    await sign_in(browser, dashboard)
    form = {"scope": "team", "usd": "1000", "period": "month"}
    async with browser.post(dashboard.base + "/dashboard/budgets", data=form) as r:
        assert r.status == 403
    assert await dashboard.store.budgets("T1") == []


async def test_changes_from_chat_cli_and_web_are_all_in_the_audit_on_the_page(dashboard, browser):
    # The chat adapters and the CLI call the same core call with their own caller.
    service = ImagineService(dashboard.store, load_catalog(), clock=dashboard.clock)
    slack = Caller(team="T1", user="UADMIN", platform_admin=True, platform="slack")
    assert not hasattr(await service.set_budget(slack, "50", "month"), "detail")
    dashboard.clock.advance(60)
    cli = Caller(team="T1", user="cli", platform_admin=True, platform="cli")
    await service.set_budget(cli, "20", "week", scope=Scope.USER, scope_id="U2", soft_threshold=0.9)
    dashboard.clock.advance(60)
    await sign_in(browser, dashboard)
    _, page = await get(browser, dashboard, "/dashboard/budgets")
    form = {"csrf": csrf(page), "scope": "team", "usd": "75", "period": "month", "soft": "0.5"}
    async with browser.post(dashboard.base + "/dashboard/budgets", data=form) as r:
        page = await r.text()
    lines = re.findall(r"<li><time>[^<]+</time>: ([^<]+)</li>", page)
    assert lines == [
        "M1 (web) set the team budget to $75.00 per month, alert at 50% (was $50.00 per month, alert at 80%)",
        "cli (cli) set the user U2 budget to $20.00 per week, alert at 90% (new)",
        "UADMIN (slack) set the team budget to $50.00 per month, alert at 80% (new)",
    ]
    # Another team's moderator sees none of it.
    await sign_in(browser, dashboard, team="T2", user="M2")
    _, theirs = await get(browser, dashboard, "/dashboard/budgets")
    assert "No budget has been changed yet" in theirs and "UADMIN" not in theirs
