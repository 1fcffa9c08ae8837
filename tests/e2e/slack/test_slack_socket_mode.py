"""Slack in Socket Mode, end to end: `python -m bot run` with SLACK_APP_TOKEN against the fake
Socket Mode server (tests/fakes/slack_socket.py). Commands and events come over the websocket
and are acked by envelope id; a token Slack rejects stops `run` with one line and exit 4; a Slack
that is down or hangs holds up nothing, and SIGTERM still ends the bot within its grace."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.gemini_server import FakeGemini
from tests.fakes.slack_socket import FakeSlackSocket
from tests.support.bot_process import bot_env, start_bot, stop_cleanly
from tests.support.ports import refusing_port
from tests.support.slack_world import World

EXIT_CONFIG = 4
# adapters/slack/app.py SHUTDOWN_GRACE: SIGTERM must end the bot within it, whatever Slack does.
SHUTDOWN_GRACE = 10.0


def socket_env(tmp_path: Path, slack: FakeSlackSocket, gemini: FakeGemini, **overrides: str) -> dict[str, str]:
    """Socket Mode only: no signing secret, so /slack/events is not even served."""
    config = tmp_path / "imagine.toml"
    config.write_text("[policy]\nconfirm_above_usd = 10\n")
    return bot_env(
        **{
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_APP_TOKEN": slack.app_token,
            "SLACK_API_URL": slack.url,
            "GEMINI_API_KEY": "k",
            "GEMINI_BASE_URL": gemini.url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
            "IMAGINE_CONFIG": str(config),
            **overrides,
        }
    )


async def spawn(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        cwd=cwd,
        env={**env, "PORT": "0"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def exit_of(proc: asyncio.subprocess.Process, timeout: float) -> tuple[int, str]:
    """The bot's exit code and its whole log, or a failure if it runs on past `timeout`."""
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        _, stderr = await proc.communicate()
        raise AssertionError(f"the bot was still running after {timeout} s; its log:\n{stderr.decode()}") from None
    assert proc.returncode is not None
    return proc.returncode, stderr.decode()


@pytest.fixture
async def fakes():
    async with FakeGemini(image_scale=0.125) as gemini, FakeSlackSocket() as slack:
        slack.add_user("U1")
        slack.add_user("U2")
        yield slack, gemini


async def test_imagine_comes_over_the_socket_is_acked_by_envelope_and_the_image_is_posted(fakes, tmp_path):
    slack, gemini = fakes
    proc, base = await start_bot("run", socket_env(tmp_path, slack, gemini), tmp_path)
    world = World(gemini, slack, base, proc, tmp_path / "bot.db")
    try:
        await slack.wait_connected()
        # The app token opened the socket; the bot token made the Web API calls.
        [opened] = slack.calls_to("apps.connections.open")
        assert opened.headers["authorization"] == f"Bearer {slack.app_token}"
        started = time.monotonic()
        envelope = await slack.send_command(
            "/imagine", "a koi pond at dawn --ar 16:9", response_url=slack.response_url()
        )
        ack = await slack.wait_ack(envelope, timeout=3)  # Slack wants the ack within 3 s
        assert time.monotonic() - started < 3
        assert ack["envelope_id"] == envelope and "error" not in str(ack.get("payload", ""))
        await slack.wait_for(lambda: len(slack.uploads) == 1 and "Done" in world.statuses()[0].text, timeout=20)
        [parent] = world.statuses()
        assert "<@U1>" in parent.blocks[0]["text"]["text"] and "a koi pond at dawn" in parent.blocks[0]["text"]["text"]
        [upload] = slack.uploads
        assert (upload.channel, upload.thread_ts) == ("C1", parent.ts)
        assert gemini.requests[0].prompt == "a koi pond at dawn" and gemini.requests[0].aspect_ratio == "16:9"
        assert all(c.headers["authorization"] == f"Bearer {slack.bot_token}" for c in slack.calls_to("chat.update"))

        # A reply in the thread comes as an events_api envelope and edits the image.
        reply = {
            "type": "message",
            "channel": "C1",
            "user": "U2",
            "text": "make it night",
            "ts": "1800000000.000200",
            "thread_ts": parent.ts,
            "channel_type": "channel",
        }
        event = await slack.send_event(reply, event_id="Ev-socket-1")
        await slack.wait_ack(event, timeout=3)
        await slack.wait_for(lambda: len(slack.uploads) == 2, timeout=20)
        assert slack.uploads[1].thread_ts == parent.ts and gemini.requests[1].input_images == [upload.data]

        # A button click comes as an interactive envelope: [Reroll] makes another image.
        job_id = parent.blocks[-1]["elements"][0]["value"]
        click = await slack.send_action(
            "imagine_reroll", job_id, user_id="U2", message_ts=parent.ts, response_url=slack.response_url()
        )
        assert await slack.wait_ack(click, timeout=3) == {"envelope_id": click}
        await slack.wait_for(lambda: len(slack.uploads) == 3, timeout=20)
        assert slack.uploads[2].thread_ts == parent.ts and gemini.requests[2].prompt == "a koi pond at dawn"
        # Slack recycles the socket; the bot reconnects and keeps taking commands.
        await slack.disconnect()
        await slack.wait_connected(count=2)
        again = await slack.send_command("/imagine", "a lighthouse", response_url=slack.response_url())
        await slack.wait_ack(again, timeout=3)
        await slack.wait_for(lambda: len(slack.uploads) == 4, timeout=20)
        await world.settled()
    finally:
        await stop_cleanly(proc)
    assert len(gemini.requests) == 4


@pytest.mark.parametrize(
    ("token", "error"),
    [("xapp-1-A1-1-revoked", "invalid_auth"), ("xoxb-test", "not_allowed_token_type")],
    ids=["wrong-app-token", "bot-token-pasted"],
)
async def test_an_app_token_slack_rejects_stops_run_with_one_line_and_exit_4(fakes, tmp_path, token, error):
    slack, gemini = fakes
    proc = await spawn(socket_env(tmp_path, slack, gemini, SLACK_APP_TOKEN=token), tmp_path)
    code, log = await exit_of(proc, 20)
    assert code == EXIT_CONFIG, log
    assert "Traceback" not in log, log
    [line] = [line for line in log.splitlines() if "SLACK_APP_TOKEN" in line]
    assert line.startswith("error: ") and error in line, log
    assert len(slack.calls_to("apps.connections.open")) == 1  # asked once, not retried for ever
    assert slack.connections == []


@pytest.mark.parametrize("mode", ["socket", "http"])
async def test_a_bot_token_slack_rejects_stops_run_with_one_line_and_exit_4(fakes, tmp_path, mode):
    slack, gemini = fakes
    env = socket_env(tmp_path, slack, gemini, SLACK_BOT_TOKEN="xoxb-revoked")
    if mode == "http":
        del env["SLACK_APP_TOKEN"]
        env["SLACK_SIGNING_SECRET"] = "test-signing-secret"
    proc = await spawn(env, tmp_path)
    code, log = await exit_of(proc, 20)
    assert code == EXIT_CONFIG, log
    assert "Traceback" not in log, log
    [line] = [line for line in log.splitlines() if "SLACK_BOT_TOKEN" in line]
    assert line.startswith("error: ") and "invalid_auth" in line, log
    assert slack.connections == []


async def test_slack_failing_for_a_while_holds_up_nothing_and_socket_mode_connects_when_it_recovers(fakes, tmp_path):
    slack, gemini = fakes
    for _ in range(2):
        slack.fail_next("apps.connections.open", "internal_error", status=503)
    # The HTTP server and the workers start while Socket Mode is still retrying.
    proc, base = await start_bot("run", socket_env(tmp_path, slack, gemini), tmp_path)
    try:
        await slack.wait_connected(timeout=15)
        assert len(slack.calls_to("apps.connections.open")) == 3
        envelope = await slack.send_command("/imagine", "a koi pond", response_url=slack.response_url())
        await slack.wait_ack(envelope, timeout=3)
        await slack.wait_for(lambda: len(slack.uploads) == 1, timeout=20)
    finally:
        log = await stop_cleanly(proc)  # no traceback in the log, either
    assert "Socket Mode" in log and "503" in log


async def test_sigterm_ends_the_bot_within_its_grace_while_slack_does_not_answer(fakes, tmp_path):
    slack, gemini = fakes
    slack.stalled.add("apps.connections.open")
    proc = await spawn(socket_env(tmp_path, slack, gemini), tmp_path)
    try:
        await slack.wait_for(lambda: slack.calls_to("apps.connections.open"), timeout=20)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    code, log = await exit_of(proc, SHUTDOWN_GRACE + 5)
    assert time.monotonic() - started < SHUTDOWN_GRACE, log
    assert code == 0 and "Traceback" not in log, log


async def test_an_unreachable_slack_does_not_stop_the_bot_serving_and_sigterm_ends_it(fakes, tmp_path):
    slack, gemini = fakes
    with refusing_port() as port:  # nothing listens there: every Slack call is refused at once
        env = socket_env(tmp_path, slack, gemini, SLACK_API_URL=f"http://127.0.0.1:{port}/api/")
        proc, _ = await start_bot("run", env, tmp_path)
        started = time.monotonic()
        log = await stop_cleanly(proc)
    assert time.monotonic() - started < SHUTDOWN_GRACE
    # One warning line per attempt, and no traceback (stop_cleanly checked).
    assert "Slack Socket Mode" in log, log
