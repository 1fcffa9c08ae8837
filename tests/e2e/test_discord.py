"""Discord end to end: `python -m bot run` with DISCORD_TOKEN and DISCORD_API_URL
against the fake Discord (REST + gateway) and the fake Gemini."""

from __future__ import annotations

import asyncio
import io
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from discord import http as discord_http
from discord.gateway import DiscordWebSocket
from PIL import Image

from adapters.discord.client import DiscordAdapter
from bot.catalog import load_catalog
from bot.money.budgets import MAX_BUDGET_USD, Period
from bot.service import ImagineService
from bot.settings import Settings
from bot.store.sqlite import SQLiteStore
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.gemini_server import FakeGemini
from tests.support.bot_process import bot_env, read_jobs, start_bot, stop_cleanly, stored_results, until_discord_ready
from tests.support.images import png_bytes

USER, MOD = 111, 222
ALREADY = "Already on it"
DEFAULT_NOTE = "on the default budget"


@dataclass
class World:
    gemini: FakeGemini
    discord: FakeDiscord
    proc: asyncio.subprocess.Process
    db: Path
    base: str = ""  # the bot's HTTP server: /healthz, /dashboard

    def thread_images(self):
        """Messages with an image that the bot posted in threads, oldest first."""
        return [
            m
            for t in self.discord.threads
            for m in self.discord.posted(t)
            if m.author_id == self.discord.bot_user_id and m.attachments
        ]

    def original(self, interaction):
        return next(
            m
            for m in self.discord.posted(self.discord.channel_id)
            if m.webhook_interaction == interaction.id and not m.ephemeral
        )

    def ephemeral_texts(self):
        return [m.content for ms in self.discord.messages.values() for m in ms if m.ephemeral and not m.deleted]


@pytest.fixture
def prepare():
    """What the fake Discord holds before the bot connects (tests parametrize it)."""

    async def nothing(discord: FakeDiscord) -> None:
        pass

    return nothing


@pytest.fixture
def more_env() -> dict[str, str]:
    """Settings beyond the world's own (tests parametrize it)."""
    return {}


@pytest.fixture
async def world(tmp_path: Path, prepare, more_env):
    async with FakeGemini(image_scale=0.125) as gemini, FakeDiscord() as discord:
        await prepare(discord)
        discord.add_member(USER)
        discord.add_member(MOD, manage_guild=True)
        env = bot_env(
            DISCORD_TOKEN=discord.token,
            DISCORD_API_URL=f"{discord.url}/api/v10",
            GEMINI_API_KEY="k",
            GEMINI_BASE_URL=gemini.url,
            DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
            **({"IMAGINE_CONFIG": os.environ["IMAGINE_CONFIG"]} if "IMAGINE_CONFIG" in os.environ else {}),
            **more_env,
        )
        proc, base = await start_bot("run", env, tmp_path)  # PORT=0: the bot picks its own port
        try:
            await until_discord_ready(proc, discord, "imagine")
            yield World(gemini, discord, proc, tmp_path / "bot.db", base)
        finally:
            await stop_cleanly(proc)


async def test_imagine_defers_posts_status_and_the_image_in_a_thread_then_replies_edit(world):
    discord, gemini = world.discord, world.gemini
    gemini.latency = 0.5
    it = await discord.slash("imagine", {"prompt": "a koi pond", "aspect": "16:9"}, user_id=USER)
    await discord.wait_for(lambda: discord.interaction_responses[it.id])
    assert discord.interaction_responses[it.id][0]["type"] == 5  # deferred within the deadline
    await discord.wait_for(lambda: world.thread_images() and "Done" in world.original(it).content)
    status = world.original(it)
    assert "<@111> asked for:" in status.content and "> a koi pond" in status.content
    [thread] = discord.threads.values()
    assert thread.starter_message_id == status.id
    [image] = world.thread_images()
    first = discord.attachment_bytes(image.attachments[0])
    with Image.open(io.BytesIO(first)) as picture:
        assert abs(picture.width / picture.height - 16 / 9) < 0.02
    assert gemini.requests[0].aspect_ratio == "16:9"
    custom_ids = [c["custom_id"] for row in image.components for c in row["components"]]
    assert custom_ids == [f"imagine:{a}:1" for a in ("reroll", "4k", "delete")]

    # A plain message in the thread edits the latest image there.
    await discord.user_message("make it night", user_id=USER, channel_id=thread.id)
    await discord.wait_for(lambda: len(world.thread_images()) == 2)
    assert gemini.requests[1].prompt == "make it night" and gemini.requests[1].input_images == [first]
    second = discord.attachment_bytes(world.thread_images()[1].attachments[0])
    # The next plain message edits that edit: edits chain, as on Slack.
    await discord.user_message("add a full moon", user_id=USER, channel_id=thread.id)
    await discord.wait_for(lambda: len(world.thread_images()) == 3)
    assert gemini.requests[2].prompt == "add a full moon" and gemini.requests[2].input_images == [second]
    # A reply to the first image edits that one, not the latest.
    await discord.user_message("add stars", user_id=USER, channel_id=thread.id, reply_to=image)
    await discord.wait_for(lambda: len(world.thread_images()) == 4)
    assert gemini.requests[3].input_images == [first] and second != first


async def test_results_arrive_after_the_interaction_token_expired(world):
    discord, gemini = world.discord, world.gemini
    gemini.latency = 1.5
    it = await discord.slash("imagine", {"prompt": "a slow lighthouse"}, user_id=USER)
    await discord.wait_for(
        lambda: any(
            m.webhook_interaction == it.id
            and "Queued" in m.content
            or m.webhook_interaction == it.id
            and "Generating" in m.content
            for m in discord.posted(discord.channel_id)
        )
    )
    discord.expire_token(it)  # as if the job had waited in the queue for 15 minutes
    await discord.wait_for(lambda: world.thread_images() and "Done" in world.original(it).content)
    status = world.original(it)
    assert discord.calls_to("PATCH", rf"^/channels/{discord.channel_id}/messages/{status.id}$")


async def test_the_lane_option_relax_answers_on_the_flex_lane_and_the_status_says_so(world):
    discord, gemini = world.discord, world.gemini
    command = next(c for c in discord.commands if c["name"] == "imagine")
    [lane] = [o for o in command["options"] if o["name"] == "lane"]
    assert [c["value"] for c in lane["choices"]] == ["flex", "batch", "priority"]
    it = await discord.slash("imagine", {"prompt": "a slow lighthouse", "lane": "flex"}, user_id=USER)
    await discord.wait_for(lambda: world.thread_images() and "Done" in world.original(it).content)
    assert [r.service_tier for r in gemini.requests] == ["flex"]
    # Edits of the status went through "Sent to Google's Flex lane ... usually within 15 minutes".
    edits = [(c.json or {}).get("content", "") for c in discord.calls_to("PATCH", r"/messages/")]
    assert any("Flex lane" in t and "usually within 15 minutes" in t for t in edits), edits


async def test_budgets_need_manage_server_and_the_core_checks_again(world):
    discord = world.discord
    await discord.slash("imagine-budget set", {"usd": 5, "period": "day"}, user_id=USER)
    await discord.wait_for(lambda: any("Only moderators" in t for t in world.ephemeral_texts()))
    await discord.slash("imagine-budget show", {}, user_id=MOD)
    # The refused change changed nothing: the server is on the default budget, and both views say so.
    await discord.wait_for(
        lambda: any("default team budget $20.00/month" in t and DEFAULT_NOTE in t for t in world.ephemeral_texts())
    )
    await discord.slash("imagine-usage", {}, user_id=USER)
    await discord.wait_for(
        lambda: sum(DEFAULT_NOTE in t and "/imagine-budget" in t for t in world.ephemeral_texts()) == 2
    )
    await discord.slash("imagine-budget set", {"usd": 5, "period": "day"}, user_id=MOD)
    await discord.wait_for(lambda: any("$5.00 per day" in t for t in world.ephemeral_texts()))
    await discord.slash("imagine-usage", {}, user_id=USER)
    await discord.wait_for(lambda: any("$5.00/day" in t for t in world.ephemeral_texts()))
    budget_command = next(c for c in discord.commands if c["name"] == "imagine-budget")
    assert int(budget_command["default_member_permissions"]) == 1 << 5  # Manage Server
    # Budgets belong to a server: no command is offered in DMs.
    assert all(c.get("contexts") == [0] for c in discord.commands), [
        (c["name"], c.get("contexts")) for c in discord.commands
    ]


async def test_imagine_budget_is_show_and_set_subcommands_whose_options_the_client_checks(world):
    discord = world.discord
    budget_command = next(c for c in discord.commands if c["name"] == "imagine-budget")
    subcommands = {o["name"]: o for o in budget_command["options"]}
    assert {name: o["type"] for name, o in subcommands.items()} == {"show": 1, "set": 1}
    assert not subcommands["show"].get("options")
    usd, period = subcommands["set"]["options"]
    assert (usd["name"], usd["type"], usd.get("required")) == ("usd", 10, True)  # NUMBER
    assert 0 < usd["min_value"] <= 0.01 and usd["max_value"] == float(MAX_BUDGET_USD)
    assert (period["name"], period["type"], [c["value"] for c in period["choices"]]) == (
        "period",
        3,
        [p.value for p in Period],
    )
    # What Discord's client refuses never reaches the bot (the fake refuses it as Discord does).
    for refused in ({"usd": "5"}, {"usd": 0}, {"usd": -1}, {"usd": 2_000_000}, {"usd": 5, "period": "year"}, {}):
        with pytest.raises(AssertionError):
            await discord.slash("imagine-budget set", refused, user_id=MOD)
    with pytest.raises(AssertionError, match="subcommand"):
        await discord.slash("imagine-budget", {}, user_id=MOD)  # a parent of subcommands cannot be run
    await discord.slash("imagine-budget show", {}, user_id=MOD)
    await discord.wait_for(lambda: any(DEFAULT_NOTE in t for t in world.ephemeral_texts()))
    # The bot's own hint is the syntax that exists.
    [note] = [t for t in world.ephemeral_texts() if DEFAULT_NOTE in t]
    assert "`/imagine-budget set usd:" in note and "action:" not in note, note
    await discord.slash("imagine-budget set", {"usd": 12.5, "period": "week"}, user_id=MOD)
    await discord.wait_for(lambda: any("$12.50 per week" in t for t in world.ephemeral_texts()))
    await discord.slash("imagine-budget show", {}, user_id=MOD)
    await discord.wait_for(lambda: any("$12.50/week" in t for t in world.ephemeral_texts()))


async def test_refusals_are_ephemeral_and_queue_nothing(world):
    discord = world.discord
    it = await discord.slash("imagine", {"prompt": "a cathedral", "model": "pro", "size": "512"}, user_id=USER)
    await discord.wait_for(lambda: any("does not do size '512'" in t for t in world.ephemeral_texts()))
    assert world.gemini.requests == []
    assert not [m for m in discord.posted(discord.channel_id) if m.webhook_interaction == it.id and not m.ephemeral]


async def test_buttons_reroll_and_delete(world):
    discord, gemini = world.discord, world.gemini
    await discord.slash("imagine", {"prompt": "a red fox"}, user_id=USER)
    await discord.wait_for(lambda: world.thread_images())
    [image] = world.thread_images()
    await discord.click("imagine:reroll:1", image, user_id=MOD)
    await discord.wait_for(lambda: len(world.thread_images()) == 2)
    assert gemini.requests[1].prompt == "a red fox" and len(gemini.requests) == 2
    outsider = 333
    discord.add_member(outsider)
    await discord.click("imagine:delete:1", image, user_id=outsider)
    await discord.wait_for(lambda: any("Only the person who asked" in t for t in world.ephemeral_texts()))
    assert not discord.message(image.id).deleted
    assert stored_results(world.db)[1] is True
    await discord.click("imagine:delete:1", image, user_id=USER)
    await discord.wait_for(lambda: discord.message(image.id).deleted)
    # And the one who asked is told, before the test ends (the bot would meet a closed fake).
    await discord.wait_for(lambda: "Deleted." in world.ephemeral_texts())
    # The core deleted the image itself first: its bytes are gone (its row stays as a
    # tombstone), the reroll's are not.
    assert stored_results(world.db) == {1: False, 2: True}


async def test_edit_image_menu_on_someone_elses_picture(world):
    discord, gemini = world.discord, world.gemini
    photo = png_bytes(12, 8, "purple")
    message = await discord.user_message("look", user_id=USER, attachments=[discord.attachment(photo)])
    await discord.message_command("Edit image", message, user_id=USER)
    await discord.wait_for(lambda: discord.modal_open(USER))
    modal = discord.shown_modal(USER)
    field = modal["components"][0]["components"][0]["custom_id"]
    await discord.submit_modal(modal["custom_id"], {field: "make it a watercolour"}, user_id=USER)
    await discord.wait_for(lambda: world.thread_images())
    assert gemini.requests[0].input_images == [photo] and gemini.requests[0].prompt == "make it a watercolour"


async def test_a_403_on_delivery_is_given_up_not_retried_in_a_loop(world):
    discord = world.discord
    discord.fail_next("POST", r"^/channels/\d+/messages$", 403, {"message": "Missing Access", "code": 50001})
    it = await discord.slash("imagine", {"prompt": "a locked room"}, user_id=USER)
    await discord.wait_for(lambda: discord.calls_to("POST", r"^/channels/\d+/messages$"))
    # Given up, the result's delivery is marked failed at once; retried, it would stay pending.
    await discord.wait_for(lambda: outbox_states(world.db) == {"started": "delivered", "result": "failed"})
    assert len(discord.calls_to("POST", r"^/channels/\d+/messages$")) == 1
    assert world.thread_images() == [] and it.id


def outbox_states(db: Path) -> dict[str, str]:
    """The outbox rows' states by kind, read from the bot's SQLite database."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return dict(conn.execute("SELECT kind, state FROM outbox ORDER BY id").fetchall())


def use_config(monkeypatch, tmp_path: Path, text: str) -> None:
    """The IMAGINE_CONFIG the bot the `world` fixture starts reads."""
    config = tmp_path / "imagine.toml"
    config.write_text(text)
    monkeypatch.setenv("IMAGINE_CONFIG", str(config))


@pytest.fixture
def expensive(monkeypatch, tmp_path):
    use_config(monkeypatch, tmp_path, "[policy]\nconfirm_above_usd = 0.20\n")


async def test_an_expensive_request_asks_and_run_goes_ahead(expensive, world):
    discord, gemini = world.discord, world.gemini
    await discord.slash("imagine", {"prompt": "a cathedral", "size": "4K"}, user_id=USER)
    await discord.wait_for(
        lambda: any(
            "above the $0.20" in m.content
            for ms in discord.messages.values()
            for m in ms
            if m.ephemeral and m.components
        )
    )
    question = next(m for ms in discord.messages.values() for m in ms if m.ephemeral and m.components)
    run_id = next(
        c["custom_id"]
        for row in question.components
        for c in row["components"]
        if c["custom_id"].startswith("imagine:run:")
    )
    assert gemini.requests == []
    await discord.click(run_id, question, user_id=USER)
    await discord.wait_for(lambda: world.thread_images())
    assert gemini.requests[0].image_size == "4K"


def _question(discord: FakeDiscord, text: str):
    return next(m for ms in discord.messages.values() for m in ms if m.ephemeral and m.components and text in m.content)


def _buttons(message) -> list[str]:
    return [c["custom_id"] for row in message.components for c in row["components"]]


async def test_a_double_click_on_reroll_or_4k_makes_one_job(world):
    discord = world.discord
    await discord.slash("imagine", {"prompt": "a red fox"}, user_id=USER)
    await discord.wait_for(lambda: world.thread_images())
    [image] = world.thread_images()
    # A double click: two presses arrive together, or one right after the other.
    await asyncio.gather(*(discord.click("imagine:reroll:1", image, user_id=MOD) for _ in range(2)))
    await discord.wait_for(lambda: sum(ALREADY in t for t in world.ephemeral_texts()) == 1)
    for _ in range(2):
        await discord.click("imagine:4k:1", image, user_id=USER)
    await discord.wait_for(lambda: sum(ALREADY in t for t in world.ephemeral_texts()) == 2)
    await discord.wait_for(lambda: len(world.thread_images()) == 3)
    jobs = read_jobs(world.db)
    assert len(jobs) == 3 and all(j["ledger"].count("reservation") == 1 for j in jobs.values()), jobs
    assert len(world.gemini.requests) == 3 and world.gemini.requests[-1].image_size == "4K"


async def test_a_double_click_on_run_makes_one_job_and_never_says_expired(expensive, world):
    discord = world.discord
    await discord.slash("imagine", {"prompt": "a cathedral", "size": "4K"}, user_id=USER)
    await discord.wait_for(
        lambda: any(
            "above the $0.20" in m.content
            for ms in discord.messages.values()
            for m in ms
            if m.ephemeral and m.components
        )
    )
    question = _question(discord, "above the $0.20")
    run, flash = _buttons(question)
    await asyncio.gather(*(discord.click(custom_id, question, user_id=USER) for custom_id in (run, run, flash)))
    await discord.wait_for(lambda: sum(ALREADY in t for t in world.ephemeral_texts()) == 2)
    await discord.wait_for(lambda: world.thread_images())
    jobs = read_jobs(world.db)
    assert len(jobs) == 1 and jobs[1]["ledger"].count("reservation") == 1, jobs
    assert [r.model for r in world.gemini.requests] == ["gemini-3-pro-image"]
    assert not [t for t in world.ephemeral_texts() if "expired" in t or "Sorry" in t], world.ephemeral_texts()


async def test_over_the_budget_is_refused_and_past_the_alert_line_asks_first(world):
    discord = world.discord
    await discord.slash("imagine-budget set", {"usd": 0.16}, user_id=MOD)  # period: month unless given
    await discord.wait_for(lambda: any("$0.16 per month" in t for t in world.ephemeral_texts()))
    await discord.slash("imagine", {"prompt": "a cathedral", "size": "4K"}, user_id=USER)
    await discord.wait_for(lambda: any("would go over the team budget of $0.16" in t for t in world.ephemeral_texts()))
    refusal = next(m for ms in discord.messages.values() for m in ms if "would go over" in m.content)
    # No [Run], no [Use Flash]; and no [Ask a moderator] without an alert channel for this server
    # (tests/e2e/test_discord_approvals.py).
    assert refusal.ephemeral and _buttons(refusal) == []
    assert "no alert channel for this server" in refusal.content
    await discord.slash("imagine", {"prompt": "a small chapel"}, user_id=USER)
    await discord.wait_for(
        lambda: any(
            "alert line" in m.content for ms in discord.messages.values() for m in ms if m.ephemeral and m.components
        )
    )
    assert [b.split(":")[1] for b in _buttons(_question(discord, "alert line"))] == ["run", "flash"]
    assert read_jobs(world.db) == {}


@pytest.fixture
def allow_list(monkeypatch, tmp_path):
    use_config(monkeypatch, tmp_path, '[access]\nteams = ["2000"]\n')


async def _in_a_stranger_guild(discord: FakeDiscord) -> None:
    await discord.add_guild(4000, name="Strangers")


@pytest.mark.parametrize("prepare", [_in_a_stranger_guild])
async def test_the_bot_leaves_guilds_not_on_the_allow_list(allow_list, world):
    discord = world.discord
    # A guild it was already in when it started...
    await discord.wait_for(lambda: discord.left_guilds == [4000])
    # ...and one it is added to while running.
    await discord.add_guild(5000, name="Newcomers")
    await discord.wait_for(lambda: discord.left_guilds == [4000, 5000])
    assert list(discord.guilds) == [discord.guild_id]  # the allowed one stays
    await discord.slash("imagine", {"prompt": "a koi pond"}, user_id=USER)
    await discord.wait_for(lambda: world.thread_images())
    log = await stop_cleanly(world.proc)
    assert "left guild 4000 (Strangers): not on the [access] teams allow-list" in log, log
    assert "left guild 5000 (Newcomers)" in log, log


@pytest.fixture
def elsewhere(monkeypatch, tmp_path):
    use_config(monkeypatch, tmp_path, '[access]\nteams = ["9999"]\n')


async def _leaving_fails(discord: FakeDiscord) -> None:
    discord.fail_next("DELETE", rf"^/users/@me/guilds/{discord.guild_id}$", 403)


@pytest.mark.parametrize("prepare", [_leaving_fails])
async def test_a_guild_not_on_the_allow_list_is_refused_clearly_even_if_leaving_failed(elsewhere, world):
    discord = world.discord
    await discord.wait_for(lambda: discord.calls_to("DELETE", r"^/users/@me/guilds/"))
    await discord.slash("imagine", {"prompt": "a koi pond"}, user_id=USER)
    await discord.slash("imagine-usage", {}, user_id=USER)
    await discord.wait_for(
        lambda: sum("isn't enabled for this workspace or server" in t for t in world.ephemeral_texts()) == 2
    )
    assert read_jobs(world.db) == {} and world.gemini.requests == []


async def test_a_status_that_cannot_be_shown_cancels_the_job_before_it_costs_anything(world):
    discord = world.discord
    discord.fail_next(
        "PATCH", r"^/webhooks/\d+/[^/]+/messages/@original$", 404, {"message": "Unknown Webhook", "code": 10015}
    )
    await discord.slash("imagine", {"prompt": "a koi pond"}, user_id=USER)
    await discord.wait_for(lambda: any("Nothing was charged" in t for t in world.ephemeral_texts()))
    [job] = read_jobs(world.db).values()
    assert job["state"] == "cancelled" and job["ledger"] == ["reservation", "release"], job
    # A reply in an image's thread whose status cannot be posted: cancelled too.
    await discord.slash("imagine", {"prompt": "a lighthouse"}, user_id=USER)
    await discord.wait_for(lambda: world.thread_images())
    [thread] = discord.threads.values()
    discord.fail_next("POST", rf"^/channels/{thread.id}/messages$", 403)
    await discord.user_message("make it night", user_id=USER, channel_id=thread.id)
    await discord.wait_for(lambda: len(read_jobs(world.db)) == 3)
    await discord.wait_for(lambda: read_jobs(world.db)[3]["state"] != "queued")
    edit = read_jobs(world.db)[3]
    assert edit["state"] == "cancelled" and edit["ledger"] == ["reservation", "release"], edit
    assert len(world.gemini.requests) == 1
    # The one who asked is told in the thread (and before the test ends: the bot would meet a closed fake).
    await discord.wait_for(lambda: any("Nothing was charged" in m.content for m in discord.messages.get(thread.id, [])))


async def test_two_clients_in_one_process_each_talk_to_their_own_discord(tmp_path: Path):
    """The API and gateway bases live on each client, not in discord.py's class attributes."""
    stock = (discord_http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    store = SQLiteStore(str(tmp_path / "bot.db"))
    await store.open()
    service = ImagineService(store, load_catalog())
    async with FakeDiscord() as one, FakeDiscord(token="another-bot-token") as two:
        adapters = [
            DiscordAdapter(
                Settings(_env_file=None, discord_token=fake.token, discord_api_url=f"{fake.url}/api/v10"), service
            )
            for fake in (one, two)
        ]
        try:
            for adapter in adapters:
                await adapter.start()
            for fake in (one, two):
                fake.add_member(USER)
                # Login and the command sync (REST), then IDENTIFY (the gateway), on each fake.
                await fake.wait_for(lambda fake=fake: fake.identified.is_set() and fake.commands)
                # An interaction's answers go back over that fake's webhook routes.
                await fake.slash("imagine-usage", {}, user_id=USER)
                await fake.wait_for(
                    lambda fake=fake: any(
                        "Your spend" in m.content for ms in fake.messages.values() for m in ms if m.ephemeral
                    )
                )
            assert [len(one.gateway_connections), len(two.gateway_connections)] == [1, 1]
            assert (discord_http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY) == stock
        finally:
            for adapter in adapters:
                await adapter.close()
            await store.close()
