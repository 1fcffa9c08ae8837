"""A wrong IMAGINE_CONFIG stops every command at start-up with exit 4 and one line naming
the file, the key, what was found and what was expected: never "unexpected internal
error" (exit 1), never a failure only once the worker starts (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import EXIT_CONFIG
from tests.e2e.test_cli import assert_one_error_line, cli_env, run_cli

# The shapes the issue saw fail, and what the one line must say about each.
BAD_FILES = {
    "models-not-a-table": ('models = "oops"\n', 'models: expected a table, found "oops"'),
    "team-not-a-table": ('teams.T1 = "oops"\n', '[teams] T1: expected a table, found "oops"'),
    "policy-a-number": ("policy = 5\n", "policy: expected a table, found 5"),
    "rate-not-a-number": (
        '[routes.gemini]\nrequests_per_minute = "abc"\n',
        '[routes.gemini] requests_per_minute: expected a whole number, found "abc"',
    ),
    "negative-price": ('[models.pro.price]\n"4K" = -0.26\n', "[models.pro.price] 4K: expected at least 0, found -0.26"),
    "sizes-a-string": ('[models.pro]\nsizes = "1K"\n', '[models.pro] sizes: expected a list, found "1K"'),
    "misspelt-table": ("[route.gemini]\nmax_concurrency = 4\n", "route: unknown table; expected one of access,"),
}


def env_with(tmp_path: Path, text: str) -> tuple[dict[str, str], Path]:
    config = tmp_path / "imagine.toml"
    config.write_text(text)
    # A web secret of its own: else `run` warns about the random one first, a second line.
    env = cli_env(None, tmp_path) | {"IMAGINE_CONFIG": str(config), "IMAGINE_WEB_SECRET": "s" * 32}
    return env, config


@pytest.mark.parametrize(("text", "said"), BAD_FILES.values(), ids=BAD_FILES.keys())
async def test_run_with_a_wrong_file_exits_4_with_one_line(tmp_path, text, said):
    env, config = env_with(tmp_path, text)
    run = await run_cli(env, tmp_path, "run")
    assert run.code == EXIT_CONFIG, run.stderr
    line = assert_one_error_line(run)
    assert line.startswith(f"error: IMAGINE_CONFIG {config}: {said}"), line
    assert not (tmp_path / "imagine.db").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["worker"],
        # The web process runs no worker, so it never read [routes] before: it must refuse too.
        ["web"],
        ["discord"],
        ["budget", "show", "--team", "T1"],
        ["usage"],
        ["doctor"],
        ["imagine", "a cat", "--out", "cat.png"],
    ],
    ids=lambda command: command[0],
)
async def test_every_command_that_reads_the_file_refuses_it_alike(tmp_path, command):
    text, said = BAD_FILES["rate-not-a-number"]
    env, config = env_with(tmp_path, text)
    env["DISCORD_TOKEN"] = "not-a-real-token"  # `discord` asks for one before anything else
    run = await run_cli(env, tmp_path, *command)
    assert run.code == EXIT_CONFIG, run.stderr
    assert assert_one_error_line(run) == f"error: IMAGINE_CONFIG {config}: {said}"
    assert not (tmp_path / "imagine.db").exists()
