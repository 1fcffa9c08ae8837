"""The Discord client's own API and gateway bases (adapters/discord/client.py): each
client rewrites its own URLs and nothing process-wide changes. No network: the
aiohttp session is a recorder."""

from __future__ import annotations

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord.client import ImagineClient, RebasedHTTPClient

STOCK_API, STOCK_GATEWAY = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY


class Recorder:
    """Stands in for the aiohttp session discord.py creates at login."""

    closed = False

    def __init__(self) -> None:
        self.urls: list[str] = []

    def request(self, method: str, url, **kwargs):
        self.urls.append(str(url))

    def ws_connect(self, url, **kwargs):
        self.urls.append(str(url))


def logged_in(http: RebasedHTTPClient) -> Recorder:
    recorder = Recorder()
    http._HTTPClient__session = recorder  # what HTTPClient.static_login does with its new session
    return recorder


def test_two_http_clients_each_send_to_their_own_base():
    one, two = RebasedHTTPClient(None, "http://127.0.0.1:1/api/v10/"), RebasedHTTPClient(None, "http://127.0.0.1:2/x")
    one.gateway, two.gateway = yarl.URL("ws://127.0.0.1:1/gateway"), yarl.URL("ws://127.0.0.1:2/gw/")
    sent_one, sent_two = logged_in(one), logged_in(two)
    for http in (one, two):
        # As HTTPClient.request, the interaction webhooks and DiscordWebSocket.from_client use it.
        session = http._HTTPClient__session
        session.request("GET", Route("GET", "/users/@me").url)
        session.request("POST", Route("POST", "/interactions/{id}/{token}/callback", id=5, token="t").url)
        session.ws_connect(str(DiscordWebSocket.DEFAULT_GATEWAY.with_query(v=10, encoding="json")))
        session.request("GET", "https://cdn.discordapp.com/attachments/1/2/cat.png")
    assert sent_one.urls == [
        "http://127.0.0.1:1/api/v10/users/@me",
        "http://127.0.0.1:1/api/v10/interactions/5/t/callback",
        "ws://127.0.0.1:1/gateway?v=10&encoding=json",
        "https://cdn.discordapp.com/attachments/1/2/cat.png",
    ]
    assert sent_two.urls == [
        "http://127.0.0.1:2/x/users/@me",
        "http://127.0.0.1:2/x/interactions/5/t/callback",
        "ws://127.0.0.1:2/gw/?v=10&encoding=json",
        "https://cdn.discordapp.com/attachments/1/2/cat.png",
    ]
    assert (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY) == (STOCK_API, STOCK_GATEWAY)


def test_the_gateway_is_left_alone_until_the_api_named_one():
    http = RebasedHTTPClient(None, "http://127.0.0.1:1/api/v10")
    sent = logged_in(http)
    http._HTTPClient__session.ws_connect("wss://gateway.discord.gg/?v=10")
    assert sent.urls == ["wss://gateway.discord.gg/?v=10"]


class _NoCommands:
    """Handlers with no commands: the client adds them (and its error handler) when built."""

    def add_commands(self, tree) -> None:
        pass

    async def on_tree_error(self, interaction, error) -> None:
        pass


def test_a_client_with_a_base_shares_its_http_client_with_its_connection_state():
    handlers = _NoCommands()
    pointed = ImagineClient(handlers, api_url="http://127.0.0.1:1/api/v10", intents=discord.Intents.default())
    stock = ImagineClient(_NoCommands(), intents=discord.Intents.default())
    # Interactions and webhooks take the session from the connection state's HTTP client.
    assert isinstance(pointed.http, RebasedHTTPClient) and pointed._connection.http is pointed.http
    assert not isinstance(stock.http, RebasedHTTPClient) and stock._connection.http is stock.http
    assert handlers.client is pointed
