"""`python -m bot org ...` exactly as an operator runs it."""

from __future__ import annotations

from bot.cli import EXIT_INVALID, EXIT_OK
from tests.e2e.test_cli import assert_one_error_line, cli_env, run_cli


async def test_an_operator_links_shows_and_unlinks(tmp_path):
    env = cli_env(None, tmp_path)
    linked = await run_cli(env, tmp_path, "org", "link", "--slack", "T0123", "--discord", "4455")
    assert linked.code == EXIT_OK, linked.stderr
    assert "linked Discord server 4455 into organisation T0123" in linked.stdout
    shown = await run_cli(env, tmp_path, "org", "show")
    assert shown.stdout.splitlines() == [
        "organisation T0123:",
        "  Slack workspace T0123 (home, linked by cli)",
        "  Discord server 4455 (member, linked by cli)",
    ]
    again = await run_cli(env, tmp_path, "org", "link", "--slack", "T0123", "--discord", "4455")
    assert again.code == EXIT_INVALID and "already linked" in assert_one_error_line(again)
    gone = await run_cli(env, tmp_path, "org", "unlink", "--discord", "4455")
    assert gone.code == EXIT_OK and "stays in T0123's ledger" in gone.stdout, gone.stderr
    assert "no organisations" in (await run_cli(env, tmp_path, "org", "show")).stdout
    missing = await run_cli(env, tmp_path, "org", "unlink", "--discord", "4455")
    assert missing.code == EXIT_INVALID and "is not linked" in assert_one_error_line(missing)


async def test_the_discord_side_can_be_the_home(tmp_path):
    env = cli_env(None, tmp_path)
    linked = await run_cli(env, tmp_path, "org", "link", "--slack", "T0123", "--discord", "4455", "--home", "discord")
    assert linked.code == EXIT_OK and "linked Slack workspace T0123 into organisation 4455" in linked.stdout


async def test_the_cli_naming_a_linked_team_reaches_its_organisation(tmp_path):
    """`--team 4455` of a linked server: its budget is the organisation's, and its usage lists
    what it spent linked (under the organisation) and before (its own)."""
    import json

    from bot.store.sqlite import SQLiteStore
    from tests.support.gallery import render

    env = cli_env(None, tmp_path)
    assert (await run_cli(env, tmp_path, "org", "link", "--slack", "T0123", "--discord", "4455")).code == EXIT_OK
    put = await run_cli(env, tmp_path, "budget", "set", "--team", "4455", "--usd", "5")
    assert put.code == EXIT_OK and "organisation T0123" in put.stdout, put.stdout + put.stderr
    shown = await run_cli(env, tmp_path, "budget", "show", "--team", "T0123")
    assert "$5.00" in shown.stdout, shown.stdout
    store = SQLiteStore(str(tmp_path / "imagine.db"))
    await store.open()
    try:
        before = await render(store, "a barn", 10_000, team="4455")
        linked = await render(store, "a koi pond", 20_000, team="T0123", color="navy")
        await render(store, "elsewhere", 30_000, team="T0999", color="green")
    finally:
        await store.close()
    usage = await run_cli(env, tmp_path, "usage", "--team", "4455", "--format", "json")
    assert usage.code == EXIT_OK, usage.stderr
    rows = json.loads(usage.stdout)
    assert sorted(r["team"] for r in rows) == ["4455", "T0123"], rows
    assert before and linked
