"""The fake Discord speaks the real wire format: the unmodified discord.py client runs against it."""

import asyncio
import io

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from PIL import Image

from tests.fakes.discord_model import EPHEMERAL, LOADING
from tests.fakes.discord_server import FakeDiscord


def _png(color: str = "teal") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (6, 4), color).save(buf, "PNG")
    return buf.getvalue()


PNG = _png()
UPLOAD_LIMIT = 256 * 1024  # small, so the 413 test needs no big buffers


class NoteModal(discord.ui.Modal, title="Add a note"):
    note = discord.ui.TextInput(label="Note", custom_id="note", max_length=50)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"noted: {self.note.value}", ephemeral=True)


class Again(discord.ui.View):
    @discord.ui.button(label="Again", custom_id="again")
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(content="clicked", view=None)


class PingBot:
    """A small bot on the real discord.py: what the fake has to carry."""

    def __init__(self) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        self.client = discord.Client(intents=intents)
        self.tree = app_commands.CommandTree(self.client)
        self.interactions: list[discord.Interaction] = []
        self.seen: list[discord.Message] = []  # users' messages on_message received
        self.deferred: list = []  # what defer() returned (the with_response callback JSON)

        @self.tree.command(name="ping", description="Answer with an image")
        async def ping(
            interaction: discord.Interaction,
            word: app_commands.Range[str, 1, 20] = "pong",
            image: discord.Attachment | None = None,
        ) -> None:
            self.interactions.append(interaction)
            self.deferred.append(await interaction.response.defer(thinking=True))
            data = await image.read() if image else PNG
            await interaction.followup.send(word, file=discord.File(io.BytesIO(data), filename="ping me.png"))

        @self.tree.command(name="menu", description="A message with a button")
        async def menu(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("pick", view=Again())

        @self.tree.context_menu(name="Annotate")
        async def annotate(interaction: discord.Interaction, message: discord.Message) -> None:
            await interaction.response.send_modal(NoteModal())

        @self.client.event
        async def on_message(message: discord.Message) -> None:
            if message.author.id == self.client.user.id:
                return
            self.seen.append(message)
            if message.content == "ping?":
                await message.reply("pong!", mention_author=False)
            elif message.content == "thread?":
                await message.create_thread(name="a thread")


@pytest.fixture
async def fake():
    async with FakeDiscord(upload_limit=UPLOAD_LIMIT) as server:
        yield server


@pytest.fixture
async def bot(fake, monkeypatch):
    # Class attributes: monkeypatch puts the real Discord back after the test.
    monkeypatch.setattr(discord.http.Route, "BASE", f"{fake.url}/api/v10")
    b = PingBot()
    await b.client.login(fake.token)
    _, url, _ = await b.client.http.get_bot_gateway()  # what the bot does with DISCORD_API_URL
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(url))
    task = asyncio.create_task(b.client.connect())
    try:
        await asyncio.wait_for(fake.identified.wait(), 5)
        await fake.wait_for(lambda: b.client.get_channel(fake.channel_id) is not None, 5)
        yield b
    finally:
        await b.client.close()
        await asyncio.wait_for(task, 5)


async def test_login_gateway_and_sync(fake, bot):
    assert [c.path for c in fake.calls[:3]] == ["/users/@me", "/oauth2/applications/@me", "/gateway/bot"]
    assert fake.calls[0].headers["authorization"] == "Bot bot-token"
    [query] = fake.gateway_connections
    # zlib-stream, or zstd-stream when the zstandard package is importable: the fake speaks both.
    wanted = discord.utils._ActiveDecompressionContext.COMPRESSION_TYPE
    assert (query["v"], query["encoding"], query["compress"]) == ("10", "json", wanted)
    identify = next(f for f in fake.gateway_received if f["op"] == 2)["d"]
    assert identify["token"] == "bot-token" and identify["intents"] & (1 << 15)  # message_content
    assert any(f["op"] == 1 for f in fake.gateway_received)  # heartbeats flow

    channel = bot.client.get_channel(fake.channel_id)
    assert isinstance(channel, discord.TextChannel) and channel.guild.id == fake.guild_id
    assert bot.client.application_id == fake.app_id and bot.client.user.bot

    synced = await bot.tree.sync()
    assert sorted(c.name for c in synced) == ["Annotate", "menu", "ping"]
    ping = next(c for c in fake.commands if c["name"] == "ping")
    assert ping["id"] == str(next(c.id for c in synced if c.name == "ping"))
    assert [(o["name"], o["type"]) for o in ping["options"]] == [("word", 3), ("image", 11)]
    assert fake.calls_to("PUT", r"^/applications/1000/commands$")


async def test_slash_defer_then_followup_with_file(fake, bot):
    await bot.tree.sync()
    upload = _png("orange")
    inter = await fake.slash("ping", {"word": "hello"}, user_id=42, attachment=fake.attachment(upload))
    await fake.wait_for(lambda: any(m.attachments for m in fake.posted()))

    assert [r["type"] for r in fake.interaction_responses[inter.id]] == [5]
    [msg] = fake.posted()  # the first followup after a defer fills in the "thinking" message
    assert msg.content == "hello" and not msg.flags & (LOADING | EPHEMERAL)
    assert msg.webhook_interaction == inter.id and msg.type == 20
    assert bot.deferred[0].message_id == msg.id  # the with_response callback JSON was parsed
    [att] = msg.attachments
    assert att["filename"] == "ping_me.png" and (att["width"], att["height"]) == (6, 4)
    assert fake.attachment_bytes(att) == upload  # the bot downloaded the user's image and sent it back
    async with aiohttp.ClientSession() as session, session.get(att["url"]) as resp:
        assert await resp.read() == upload
    assert bot.interactions[0].user.id == 42 and not bot.interactions[0].permissions.manage_guild

    itx = bot.interactions[0]
    second = await itx.followup.send("again", ephemeral=True)
    assert second.id != msg.id and fake.message(second.id).ephemeral
    edited = await itx.edit_original_response(content="edited")
    assert edited.id == msg.id and msg.content == "edited" and msg.edited_timestamp
    assert fake.calls_to("PATCH", r"^/webhooks/1000/[^/]+/messages/@original$")[0].headers.get("authorization") is None


async def test_user_reply_reaches_on_message(fake, bot):
    sent = await bot.client.get_channel(fake.channel_id).send("hello from the bot")
    [bot_msg] = fake.posted()
    assert bot_msg.id == sent.id and bot_msg.author_id == fake.bot_user_id

    user_msg = await fake.user_message("ping?", user_id=42, reply_to=bot_msg)
    await fake.wait_for(lambda: len(fake.posted()) == 3)
    [seen] = bot.seen
    assert (seen.id, seen.content, seen.author.id) == (user_msg.id, "ping?", 42)
    assert seen.reference.message_id == sent.id and seen.reference.resolved.id == sent.id
    reply = fake.posted()[-1]
    assert (reply.content, reply.reference_id, reply.type) == ("pong!", user_msg.id, 19)

    # A thread started from a message shares its id; THREAD_CREATE puts it in the client's cache.
    ask = await fake.user_message("thread?", user_id=42)
    await fake.wait_for(lambda: ask.id in fake.threads)
    await fake.wait_for(lambda: isinstance(bot.client.get_channel(ask.id), discord.Thread))
    assert fake.threads[ask.id].parent_id == fake.channel_id
    await bot.client.get_channel(ask.id).send("in the thread")
    assert fake.posted(ask.id)[0].content == "in the thread"


async def test_button_modal_and_context_menu(fake, bot):
    await bot.tree.sync()
    inter = await fake.slash("menu", user_id=7)
    await fake.wait_for(lambda: fake.posted())
    [menu] = fake.posted()
    assert menu.components[0]["components"][0]["custom_id"] == "again"
    await fake.click("again", menu, user_id=7)
    await fake.wait_for(lambda: menu.content == "clicked")
    assert menu.components == [] and fake.interaction_responses[inter.id][0]["type"] == 4

    photo = await fake.user_message("look", user_id=8, attachments=[fake.attachment(PNG)])
    note = await fake.message_command("Annotate", photo, user_id=8)
    await fake.wait_for(lambda: fake.interaction_responses.get(note.id))
    assert fake.interaction_responses[note.id][0]["type"] == 9
    modal = fake.shown_modal(8)
    assert modal["title"] == "Add a note"
    submitted = await fake.submit_modal(modal["custom_id"], {"note": "nice"}, user_id=8)
    await fake.wait_for(lambda: fake.interaction_responses.get(submitted.id))
    answer = fake.posted()[-1]
    assert answer.content == "noted: nice" and answer.ephemeral


async def test_expired_token_gives_401(fake, bot):
    await bot.tree.sync()
    inter = await fake.slash("ping", user_id=42)
    await fake.wait_for(lambda: any(m.attachments for m in fake.posted()))
    fake.expire_token(inter)
    with pytest.raises(discord.HTTPException) as err:
        await bot.interactions[0].followup.send("too late")
    assert (err.value.status, err.value.code) == (401, 50027)


async def test_injected_errors_and_upload_limit(fake, bot):
    channel = bot.client.get_channel(fake.channel_id)
    fake.fail_next("POST", r"^/channels/\d+/messages$", 403, {"message": "Missing Access", "code": 50001})
    with pytest.raises(discord.Forbidden) as err:
        await channel.send("nope")
    assert err.value.code == 50001

    fake.fail_next("POST", r"^/channels/\d+/messages$", 429, retry_after=0.05)
    await channel.send("after a rate limit")  # discord.py sleeps retry_after and retries
    assert len(fake.calls_to("POST", r"^/channels/\d+/messages$")) == 3

    with pytest.raises(discord.HTTPException) as err:
        await channel.send(file=discord.File(io.BytesIO(b"\0" * (UPLOAD_LIMIT + 1)), filename="big.png"))
    assert (err.value.status, err.value.code) == (413, 40005)
    assert [m.content for m in fake.posted()] == ["after a rate limit"]


async def test_a_lost_answer_takes_effect_and_enforce_nonce_returns_the_first_message(fake, bot):
    channel = bot.client.get_channel(fake.channel_id)
    fake.lose_answers("POST", r"^/channels/\d+/messages$", 503)
    with pytest.raises(discord.DiscordServerError):
        await channel.send("once", nonce="job-1")
    again = await channel.send("once", nonce="job-1")  # discord.py sends enforce_nonce
    [posted] = fake.posted()
    assert again.id == posted.id and posted.content == "once"
    await channel.send("twice", nonce="job-2")
    assert [m.content for m in fake.posted()] == ["once", "twice"]


async def test_wrong_token_fails_login(fake, monkeypatch):
    monkeypatch.setattr(discord.http.Route, "BASE", f"{fake.url}/api/v10")
    client = discord.Client(intents=discord.Intents.default())
    try:
        with pytest.raises(discord.LoginFailure):
            await client.login("not-the-token")
    finally:
        await client.close()


async def test_guilds_arrive_with_ready_or_as_joins_and_leaving_one_removes_it(fake, bot):
    assert [g.id for g in bot.client.guilds] == [fake.guild_id]
    await fake.add_guild(5000, name="Strangers")
    await fake.wait_for(lambda: bot.client.get_guild(5000) is not None, 5)
    joined = bot.client.get_guild(5000)
    assert joined.name == "Strangers" and joined.me is not None
    await joined.leave()  # DELETE /users/@me/guilds/5000 -> 204, then GUILD_DELETE
    await fake.wait_for(lambda: bot.client.get_guild(5000) is None, 5)
    assert fake.left_guilds == [5000] and ("GUILD_DELETE", {"id": "5000"}) in fake.events
    with pytest.raises(discord.NotFound) as left_twice:
        await bot.client.http.leave_guild(5000)
    assert left_twice.value.code == 10004  # Unknown Guild, as Discord answers
    # Once the bot left the main guild, nothing can reach it from there.
    await bot.client.get_guild(fake.guild_id).leave()
    with pytest.raises(AssertionError, match="left guild"):
        await fake.user_message("hello?", user_id=42)


async def test_subcommands_sync_nested_and_shapes_discord_refuses_are_refused(fake, bot):
    group = app_commands.Group(name="tally", description="Counts")

    @group.command(name="add", description="Add some")
    async def add(interaction: discord.Interaction, amount: app_commands.Range[float, 0.5, 10.0]) -> None:
        await interaction.response.send_message(f"added {amount}", ephemeral=True)

    bot.tree.add_command(group)
    await bot.tree.sync()
    tally = next(c for c in fake.commands if c["name"] == "tally")
    [sub] = tally["options"]
    assert (sub["name"], sub["type"]) == ("add", 1)
    assert [(o["name"], o["type"], o["min_value"], o["max_value"]) for o in sub["options"]] == [
        ("amount", 10, 0.5, 10.0)
    ]
    with pytest.raises(AssertionError, match="pick a subcommand"):
        await fake.slash("tally", {}, user_id=42)
    with pytest.raises(AssertionError, match="a number"):
        await fake.slash("tally add", {"amount": "3"}, user_id=42)
    with pytest.raises(AssertionError, match="outside"):
        await fake.slash("tally add", {"amount": 0.25}, user_id=42)
    inter = await fake.slash("tally add", {"amount": 2.5}, user_id=42)
    await fake.wait_for(lambda: any(m.content == "added 2.5" for ms in fake.messages.values() for m in ms), 5)
    assert inter.id in fake.interaction_responses

    # What Discord answers 400 to: subcommands beside plain options, bounds on a STRING, a
    # required option after an optional one, a choice of the wrong type.
    value = {"type": 3, "name": "word", "description": "A word"}
    nested = {"type": 1, "name": "sub", "description": "A subcommand"}
    for options in (
        [nested, value],
        [{**value, "min_value": 1}],
        [value, {**value, "name": "other", "required": True}],
        [{"type": 10, "name": "n", "description": "N", "choices": [{"name": "one", "value": "1"}]}],
        [{**nested, "options": [nested]}],
    ):
        with pytest.raises(discord.HTTPException) as err:
            await bot.client.http.bulk_upsert_global_commands(
                fake.app_id, [{"name": "bad", "description": "Bad", "type": 1, "options": options}]
            )
        assert (err.value.status, err.value.code) == (400, 50035), options
