"""`python -m bot ...` exactly as a user runs it, against the loopback fake Gemini API.

The CLI runs in a subprocess; the fake serves from this test's event loop, so
the subprocess is driven with asyncio (a blocking subprocess.run would starve it).
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from bot.cli import EXIT_BLOCKED, EXIT_CONFIG, EXIT_INVALID, EXIT_OK, EXIT_OVER_LIMIT, EXIT_TRY_LATER
from tests.fakes.gemini_server import FakeGemini, blocked_prompt, error, finish, free_tier_zero, no_image, ok
from tests.support.bot_process import bot_env, healthz, start_bot, stop_cleanly, wait_healthy
from tests.support.images import png_bytes

KEY = "cli-test-key"
PRO = "gemini-3-pro-image"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()


@pytest.fixture
async def fake():
    async with FakeGemini(image_scale=0.125) as server:
        server.api_key = KEY  # a wrong or missing key would show up as an auth failure
        yield server


def cli_env(
    fake: FakeGemini | None, tmp_path: Path, *, key: str | None = KEY, max_attempts: int | None = None
) -> dict[str, str]:
    env = bot_env(DATABASE_URL=f"sqlite:///{tmp_path / 'imagine.db'}")
    if fake is not None:
        env["GEMINI_BASE_URL"] = fake.url
    if key is not None:
        env["GEMINI_API_KEY"] = key
    if max_attempts is not None:
        env["IMAGINE_MAX_ATTEMPTS"] = str(max_attempts)
    return env


async def run_cli(env: dict[str, str], cwd: Path, *args: str, timeout: float = 25) -> Run:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"`python -m bot {' '.join(args)}` did not finish in {timeout}s") from None
    return Run(proc.returncode, out.decode(), err.decode())


async def imagine(fake, tmp_path, *args: str, **env_kw) -> Run:
    return await run_cli(cli_env(fake, tmp_path, **env_kw), tmp_path, "imagine", *args)


def assert_one_error_line(run: Run) -> str:
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr_lines
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{run.stderr}"
    [line] = lines
    assert line.startswith("error:") and line.removeprefix("error:").strip(), line
    return line


# --- success ------------------------------------------------------------------------------------


async def test_success_writes_the_png_and_reports_it(fake, tmp_path):
    run = await imagine(fake, tmp_path, "a koi pond at dawn", "--ar", "16:9", "--size", "2K", "--out", "out.png")
    assert run.code == EXIT_OK, run.stderr
    assert "Traceback" not in run.stderr
    out = tmp_path / "out.png"
    with Image.open(io.BytesIO(out.read_bytes())) as img:
        assert img.format == "PNG"
        width, height = img.size
    assert (width, height) != (8, 8)  # not Pro's thought draft
    assert abs(width / height - 16 / 9) < 0.02
    assert "out.png" in run.stdout
    assert PRO in run.stdout
    assert "$" in run.stdout
    assert "16:9" in run.stdout and "2K" in run.stdout
    [req] = fake.requests
    assert (req.prompt, req.aspect_ratio, req.image_size) == ("a koi pond at dawn", "16:9", "2K")
    assert req.headers["x-goog-api-key"] == KEY


async def test_relax_renders_on_the_flex_lane_and_batch_is_refused_with_the_alternative(fake, tmp_path):
    run = await imagine(fake, tmp_path, "a koi pond", "--relax", "--size", "2K", "--out", "out.png")
    assert run.code == EXIT_OK, run.stderr
    [req] = fake.requests
    assert req.service_tier == "flex" and req.image_size == "2K"
    refused = await imagine(fake, tmp_path, "a koi pond", "--batch")
    assert refused.code == EXIT_INVALID and "use --relax" in assert_one_error_line(refused)
    refused = await imagine(fake, tmp_path, "a koi pond", "--priority")
    assert refused.code == EXIT_INVALID and '[teams."cli"]' in assert_one_error_line(refused)
    assert len(fake.requests) == 1


async def test_edit_sends_the_input_image(fake, tmp_path):
    data = png_bytes(24, 16, "green")
    (tmp_path / "in.png").write_bytes(data)
    run = await imagine(fake, tmp_path, "make it snow", "--image", "in.png", "--out", "edited.png")
    assert run.code == EXIT_OK, run.stderr
    [req] = fake.requests
    assert req.input_images == [data]
    assert req.prompt == "make it snow"
    assert (tmp_path / "edited.png").stat().st_size > 0


async def test_default_flags(fake, tmp_path):
    run = await imagine(fake, tmp_path, "a lighthouse", "--out", "o.png")
    assert run.code == EXIT_OK, run.stderr
    [req] = fake.requests
    assert req.model == PRO
    assert req.aspect_ratio == "1:1"
    assert req.image_size == "2K"


async def test_legacy_model_alias_goes_to_the_current_model(fake, tmp_path):
    run = await imagine(fake, tmp_path, "a lighthouse", "--model", "gemini-3-pro-image-preview", "--out", "o.png")
    assert run.code == EXIT_OK, run.stderr
    [req] = fake.requests
    assert req.model == PRO
    assert req.path == f"/v1beta/models/{PRO}:generateContent"


async def test_a_retired_model_is_made_with_its_replacement_and_the_success_line_says_so(fake, tmp_path):
    # Real time here: gemini-2.5-flash-image was shut down on 2026-10-02.
    run = await imagine(fake, tmp_path, "a lighthouse", "--model", "legacy", "--out", "o.png")
    assert run.code == EXIT_OK, run.stderr
    [req] = fake.requests
    assert (req.model, req.image_size) == ("gemini-3.1-flash-image", "1K")
    [line] = [line for line in run.stdout.splitlines() if line.startswith("wrote ")]
    assert line.endswith("(legacy was retired on 2026-10-02; made with flash.)")


# --- provider errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, expected_code, kind",
    [
        pytest.param(error(401), EXIT_CONFIG, "auth", id="401"),
        pytest.param(error(403), EXIT_CONFIG, "permission", id="403"),
        pytest.param(error(400), EXIT_INVALID, "bad_request", id="400"),
        pytest.param(error(429, retry_delay="1s"), EXIT_TRY_LATER, "quota", id="429"),
        pytest.param(error(503), EXIT_TRY_LATER, "overloaded", id="503"),
        pytest.param(blocked_prompt(), EXIT_BLOCKED, "blocked", id="blocked-prompt"),
        pytest.param(finish("SAFETY"), EXIT_BLOCKED, "blocked", id="safety-finish"),
        # A project without billing: configuration, not "try later".
        pytest.param(free_tier_zero(), EXIT_CONFIG, "billing", id="free-tier-zero-429"),
        # Text without an image is not a refusal: one more try (none here, max_attempts=1), then
        # exit 3 ("no image in the answer"), with its own class.
        pytest.param(no_image(), EXIT_BLOCKED, "no_image", id="no-image"),
    ],
)
async def test_provider_error_exit_codes(fake, tmp_path, reply, expected_code, kind):
    fake.script(reply)
    run = await imagine(fake, tmp_path, "a koi pond", "--out", "out.png", max_attempts=1)
    assert run.code == expected_code, run.stderr
    line = assert_one_error_line(run)
    assert f"[{kind}:" in line
    assert len(fake.requests) == 1
    assert not (tmp_path / "out.png").exists()


async def test_retryable_error_is_retried_then_succeeds(fake, tmp_path):
    fake.script(error(503), ok())
    run = await imagine(fake, tmp_path, "a koi pond", "--out", "out.png", max_attempts=3)
    assert run.code == EXIT_OK, run.stderr
    assert len(fake.requests) == 2
    assert "Traceback" not in run.stderr
    assert (tmp_path / "out.png").stat().st_size > 0


# --- invalid input: refused before anything is sent -------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["  "], id="empty-prompt"),
        pytest.param(["a cat", "--model", "turbo"], id="unknown-model"),
        pytest.param(["a cat", "--ar", "7:3"], id="bad-ratio"),
        pytest.param(["a cat", "--model", "pro", "--size", "512"], id="bad-size"),
        pytest.param(["a cat", "--image", "notes.txt"], id="not-an-image"),
        pytest.param(["a cat", "--image", "missing.png"], id="missing-image"),
    ],
)
async def test_invalid_input_is_refused_locally(fake, tmp_path, args):
    (tmp_path / "notes.txt").write_text("these are not pixels\n")
    run = await imagine(fake, tmp_path, *args, "--out", "out.png")
    assert run.code == EXIT_INVALID, run.stderr
    assert_one_error_line(run)
    assert fake.requests == []
    assert not (tmp_path / "out.png").exists()


# --- configuration ------------------------------------------------------------------------------


async def test_missing_api_key(fake, tmp_path):
    run = await imagine(fake, tmp_path, "a cat", "--out", "out.png", key=None)
    assert run.code == EXIT_CONFIG, run.stderr
    line = assert_one_error_line(run)
    assert "GEMINI_API_KEY" in line
    assert not (tmp_path / "imagine.db").exists()
    assert fake.requests == []


async def test_run_with_nothing_configured_shows_the_setup_guide(tmp_path):
    run = await run_cli(cli_env(None, tmp_path, key=None), tmp_path, "run")
    assert run.code == EXIT_CONFIG
    assert "GEMINI_API_KEY" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "imagine.db").exists()


async def test_the_discord_process_without_a_token_is_a_one_line_config_error(tmp_path):
    run = await run_cli(cli_env(None, tmp_path, key=None), tmp_path, "discord")
    assert run.code == EXIT_CONFIG
    assert "DISCORD_TOKEN" in assert_one_error_line(run)


async def test_the_web_process_serves_health_without_workers_or_a_provider_key(tmp_path):
    proc, base = await start_bot("web", cli_env(None, tmp_path, key=None), tmp_path)
    try:
        health = await wait_healthy(proc, base)
        assert health["status"] == "ok" and health["workers"] == 0
        # The queue's depth and the jobs by state, what a test probes instead of sleeping.
        assert (await healthz(base))["jobs"] == {} and health["queued"] == health["running"] == 0
    finally:
        await stop_cleanly(proc)


# --- money ----------------------------------------------------------------------------------------


async def test_imagine_charges_the_ledger_and_usage_reports_it(fake, tmp_path):
    env = cli_env(fake, tmp_path)
    run = await run_cli(env, tmp_path, "imagine", "a koi pond", "--out", "o.png")
    assert run.code == EXIT_OK, run.stderr
    printed_cost = run.stdout.split("cost $")[1].split()[0]
    report = await run_cli(env, tmp_path, "usage", "--format", "json")
    assert report.code == EXIT_OK, report.stderr
    [row] = json.loads(report.stdout)
    assert {k: row[k] for k in ("team", "model", "size", "lane", "status", "entry")} == {
        "team": "cli",
        "model": "pro",
        "size": "2K",
        "lane": "standard",
        "status": "succeeded",
        "entry": "settlement",
    }
    assert row["cost_usd"] == printed_cost and isinstance(row["job_id"], int) and row["user"]
    table = await run_cli(env, tmp_path, "usage", "--team", "cli")
    # Pro 2K: $0.1344 of image, the prompt, and the answer's text and thinking at $12/M.
    assert f"Total charged: $0.14 (exact: ${printed_cost})" in table.stdout
    csv_out = await run_cli(env, tmp_path, "usage", "--format", "csv", "--all-entries")
    assert [line.split(",")[2] for line in csv_out.stdout.splitlines()[1:]] == ["reservation", "settlement", "release"]


async def test_budget_set_show_and_exhaustion(fake, tmp_path):
    env = cli_env(fake, tmp_path, max_attempts=1)
    put = await run_cli(env, tmp_path, "budget", "set", "--team", "cli", "--usd", "0.20", "--period", "day")
    assert put.code == EXIT_OK and "$0.20 per day" in put.stdout, put.stderr
    first = await run_cli(env, tmp_path, "imagine", "one", "--out", "1.png", "--yes")
    assert first.code == EXIT_OK, first.stderr
    second = await run_cli(env, tmp_path, "imagine", "two", "--out", "2.png", "--yes")
    assert second.code == EXIT_OVER_LIMIT
    line = assert_one_error_line(second)
    assert "team budget of $0.20 per day" in line and "Nothing was charged" in line
    assert len(fake.requests) == 1
    show = await run_cli(env, tmp_path, "budget", "show", "--team", "cli")
    assert "team budget $0.20/day: spent $0.14" in show.stdout


async def test_bad_budget_and_bad_since_are_one_line_errors(tmp_path):
    env = cli_env(None, tmp_path)
    bad = await run_cli(env, tmp_path, "budget", "set", "--team", "T", "--usd", "lots")
    assert bad.code == EXIT_INVALID and "amount in dollars" in assert_one_error_line(bad)
    since = await run_cli(env, tmp_path, "usage", "--since", "yesterday")
    assert since.code == EXIT_INVALID and "--since" in assert_one_error_line(since)


async def test_doctor_checks_the_key_and_explains_recent_errors(fake, tmp_path):
    env = cli_env(fake, tmp_path, max_attempts=1)
    fake.script(error(429, retry_delay="1s"))
    await run_cli(env, tmp_path, "imagine", "a koi pond", "--out", "o.png")
    ok_run = await run_cli(env, tmp_path, "doctor")
    assert ok_run.code == EXIT_OK, ok_run.stderr
    assert "key works, 4 models listed" in ok_run.stdout
    assert "pro     -> gemini-3-pro-image (available)" in ok_run.stdout
    assert "errors    last 24 h: quota 1" in ok_run.stdout and "quota is per project" in ok_run.stdout
    bad = await run_cli(cli_env(fake, tmp_path, key="wrong-key"), tmp_path, "doctor")
    assert bad.code == EXIT_CONFIG and "UNUSABLE" in bad.stdout and "API_KEY_INVALID" in bad.stdout
    assert "wrong-key" not in bad.stdout + bad.stderr


async def test_an_unwritable_output_path_is_one_line_and_does_not_hang(fake, tmp_path):
    run = await imagine(fake, tmp_path, "a koi pond", "--out", "no/such/dir/o.png")
    assert run.code == 6
    line = assert_one_error_line(run)
    assert "cannot write" in line and "no/such/dir/o.png" in line


async def test_the_same_request_twice_comes_from_the_cache(fake, tmp_path):
    env = cli_env(fake, tmp_path)
    first = await run_cli(env, tmp_path, "imagine", "a koi pond", "--out", "1.png")
    second = await run_cli(env, tmp_path, "imagine", "a koi pond", "--out", "2.png")
    assert first.code == second.code == EXIT_OK, second.stderr
    assert "cost $0 " in second.stdout and "from the cache" in second.stdout
    assert (tmp_path / "1.png").read_bytes() == (tmp_path / "2.png").read_bytes()
    assert len(fake.requests) == 1


async def test_a_gateway_alone_renders_and_its_reported_cost_is_charged(tmp_path):
    from tests.fakes.openai_server import FakeGateway

    async with FakeGateway() as gateway:
        env = cli_env(None, tmp_path, key=None)
        env.update(OPENAI_COMPAT_BASE_URL=gateway.url, OPENAI_COMPAT_API_KEY="gw-key")
        run = await run_cli(env, tmp_path, "imagine", "a koi pond", "--ar", "3:2", "--out", "gw.png")
        assert run.code == EXIT_OK, run.stderr
        assert "cost $0.0021" in run.stdout and "google/gemini-3-pro-image-preview" in run.stdout
        assert gateway.requests[0].image_config["aspect_ratio"] == "3:2"
        report = await run_cli(env, tmp_path, "usage", "--format", "json")
        [row] = json.loads(report.stdout)
        assert row["cost_usd"] == "0.002100" and row["model"] == "pro"


async def test_over_the_budget_exits_7_even_without_yes(fake, tmp_path):
    env = cli_env(fake, tmp_path, max_attempts=1)
    await run_cli(env, tmp_path, "budget", "set", "--team", "cli", "--usd", "0.20", "--period", "day")
    assert (await run_cli(env, tmp_path, "imagine", "one", "--out", "1.png", "--yes")).code == EXIT_OK
    # Past the alert line AND over the limit: the refusal, not "rerun with --yes".
    second = await run_cli(env, tmp_path, "imagine", "two", "--out", "2.png")
    assert second.code == EXIT_OVER_LIMIT, second.stderr
    assert "Nothing was charged" in assert_one_error_line(second)
    assert len(fake.requests) == 1


async def test_a_fallback_to_an_unpriced_model_stops_start_up_with_exit_4(fake, tmp_path):
    config = tmp_path / "imagine.toml"
    config.write_text('[teams."T0123"]\nfallback = { pro = ["lite"] }\n')
    env = cli_env(fake, tmp_path) | {"IMAGINE_CONFIG": str(config)}
    run = await run_cli(env, tmp_path, "imagine", "a koi pond", "--out", "koi.png")
    assert run.code == EXIT_CONFIG
    line = assert_one_error_line(run)
    assert 'team "T0123" fallback pro -> lite' in line and "'lite'" in line and "no price" in line
    assert fake.requests == []


async def test_budget_show_says_the_team_is_on_the_default_budget(tmp_path):
    env = cli_env(None, tmp_path)
    show = await run_cli(env, tmp_path, "budget", "show", "--team", "T0123")
    assert show.code == EXIT_OK, show.stderr
    assert "default team budget $20.00/month" in show.stdout


async def test_the_cli_is_not_held_to_the_chat_allow_list_and_says_how_to_set_its_budget(fake, tmp_path):
    config = tmp_path / "imagine.toml"
    config.write_text('[access]\nteams = ["T0123"]\n[policy]\ndefault_team_budget_usd = 0\n')
    env = cli_env(fake, tmp_path) | {"IMAGINE_CONFIG": str(config)}
    refused = await run_cli(env, tmp_path, "imagine", "a koi pond", "--out", "koi.png")
    assert refused.code == EXIT_OVER_LIMIT
    line = assert_one_error_line(refused)
    assert "python -m bot budget set --team cli --usd 20" in line and "allow-list" not in line
    await run_cli(env, tmp_path, "budget", "set", "--team", "cli", "--usd", "5")
    made = await run_cli(env, tmp_path, "imagine", "a koi pond", "--out", "koi.png")
    assert made.code == EXIT_OK, made.stderr


async def test_relax_on_a_model_without_flex_is_refused_not_left_waiting_for_a_batch(fake, tmp_path):
    config = tmp_path / "imagine.toml"
    config.write_text('[models.lite]\nprice = { "1K" = 0.02 }\n')
    env = cli_env(fake, tmp_path) | {"IMAGINE_CONFIG": str(config)}
    run = await run_cli(env, tmp_path, "imagine", "a cat", "--relax", "--model", "lite", "--out", "cat.png")
    assert run.code == EXIT_INVALID, run.stderr
    line = assert_one_error_line(run)
    assert "no Flex lane" in line and "Nothing was charged" in line
    ledger = await run_cli(env, tmp_path, "usage", "--team", "cli", "--all-entries", "--format", "csv")
    entries = [row.split(",")[2] for row in ledger.stdout.splitlines()[1:]]
    assert entries == ["reservation", "release"] and fake.requests == []
