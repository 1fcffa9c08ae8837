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
