"""The fake Socket Mode server speaks the real protocol: the real slack_sdk SocketModeClient runs
against it, and it refuses what Slack refuses."""

from __future__ import annotations

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_socket import FakeSlackSocket


@pytest.fixture
async def fake():
    async with FakeSlackSocket() as server:
        yield server


async def test_connections_open_takes_only_the_app_token_in_the_header(fake):
    opened = await AsyncWebClient(base_url=fake.url).apps_connections_open(app_token=fake.app_token)
    assert opened["url"].startswith(f"ws://127.0.0.1:{fake.url.split(':')[2].split('/')[0]}/link/?ticket=")
    assert "&app_id=A1" in opened["url"]
    assert fake.calls_to("apps.connections.open")[0].headers["authorization"] == f"Bearer {fake.app_token}"

    async def refused(token: str) -> str:
        with pytest.raises(SlackApiError) as err:
            await AsyncWebClient(base_url=fake.url).apps_connections_open(app_token=token)
        return err.value.response["error"]

    assert await refused(fake.bot_token) == "not_allowed_token_type"  # the common mistake
    assert await refused("xapp-1-A1-1-wrong") == "invalid_auth"
    # As a POST parameter the right token is refused too.
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake.url}apps.connections.open", data={"token": fake.app_token}) as r:
            assert (await r.json()) == {"ok": False, "error": "invalid_auth"}
    # An app-level token calls no other method; the bot token still does.
    with pytest.raises(SlackApiError) as err:
        await AsyncWebClient(token=fake.app_token, base_url=fake.url).auth_test()
    assert err.value.response["error"] == "not_allowed_token_type"
    assert (await AsyncWebClient(token=fake.bot_token, base_url=fake.url).auth_test())["ok"]


async def test_a_ticket_opens_one_connection_which_says_hello_first(fake):
    url = (await AsyncWebClient(base_url=fake.url).apps_connections_open(app_token=fake.app_token))["url"]
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello["type"] == "hello" and hello["connection_info"] == {"app_id": "A1"}
            assert hello["num_connections"] == 1
            envelope_id = await fake.send_command("/imagine", "a koi pond", user_id="U2")
            envelope = await ws.receive_json(timeout=5)
            assert envelope["envelope_id"] == envelope_id and envelope["type"] == "slash_commands"
            assert envelope["accepts_response_payload"] is True
            assert envelope["payload"]["command"] == "/imagine" and envelope["payload"]["user_id"] == "U2"
            await ws.send_json({"envelope_id": "not-one-we-sent"})
            await ws.send_json({"envelope_id": envelope_id})
            assert await fake.wait_ack(envelope_id) == {"envelope_id": envelope_id}
            assert list(fake.acks) == [envelope_id]
        # The same ticket again: refused at the handshake.
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await session.ws_connect(url)
        assert err.value.status == 401


async def test_the_real_socket_mode_client_gets_envelopes_acks_them_and_reconnects(fake):
    client = SocketModeClient(
        app_token=fake.app_token, web_client=AsyncWebClient(token=fake.bot_token, base_url=fake.url)
    )
    got: list[SocketModeRequest] = []

    async def listener(client: SocketModeClient, req: SocketModeRequest) -> None:
        got.append(req)
        answer = {"text": "on it"} if req.type == "slash_commands" else None
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id, payload=answer))

    client.socket_mode_request_listeners.append(listener)
    try:
        await client.connect()
        await fake.wait_connected()
        command = await fake.send_command("/imagine", "a lighthouse")
        action = await fake.send_action("imagine_reroll", "42", user_id="U1")
        event = await fake.send_event({"type": "message", "channel": "C1", "user": "U1", "text": "hi", "ts": "1.2"})
        assert await fake.wait_ack(command) == {"envelope_id": command, "payload": {"text": "on it"}}
        assert await fake.wait_ack(action) == {"envelope_id": action}
        assert await fake.wait_ack(event) == {"envelope_id": event}
        assert [r.type for r in got] == ["slash_commands", "interactive", "events_api"]
        assert got[1].payload["actions"][0]["value"] == "42" and got[2].payload["type"] == "event_callback"
        # Slack recycles the socket: the client opens a new one and gets envelopes there.
        await fake.disconnect()
        await fake.wait_connected(count=2)
        again = await fake.send_command("/imagine", "again")
        await fake.wait_ack(again)
        assert len(fake.calls_to("apps.connections.open")) == 2
        await fake.wait_for(lambda: not fake.connections[0].open)  # the client closed the old one
        # A socket dropped without a word: the client notices and connects again.
        await fake.drop()
        await fake.wait_connected(count=3)
        await fake.wait_ack(await fake.send_event({"type": "message", "channel": "C1", "user": "U1", "ts": "1.3"}))
    finally:
        await client.close()
