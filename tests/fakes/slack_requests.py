"""Requests from Slack to a bolt app, signed as Slack signs them: slash commands, events and
block actions."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from urllib.parse import urlencode

from tests.fakes.slack_model import DEAD_URL


def signed_headers(body: str, signing_secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(signing_secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def _trigger_id() -> str:
    # Unique per invocation, like Slack's: the bot uses it to spot retries.
    return f"{int(time.time())}.1234567890.{secrets.token_hex(16)}"


def slash_command_body(
    command: str,
    text: str,
    *,
    user_id: str = "U1",
    channel_id: str = "C1",
    team_id: str = "T1",
    trigger_id: str | None = None,
    response_url: str | None = None,
    api_app_id: str = "A1",
) -> str:
    """application/x-www-form-urlencoded, fields in the order Slack sends them."""
    return urlencode(
        {
            "token": "verification-token-unused",
            "team_id": team_id,
            "team_domain": "imagine-test",
            "channel_id": channel_id,
            "channel_name": "general",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url or f"{DEAD_URL}/commands/{team_id}/1/unused",
            "trigger_id": trigger_id or _trigger_id(),
        }
    )


def event_body(
    event: dict, *, event_id: str, team_id: str = "T1", api_app_id: str = "A1", bot_user_id: str = "UBOT"
) -> str:
    return json.dumps(
        {
            "token": "verification-token-unused",
            "team_id": team_id,
            "context_team_id": team_id,
            "context_enterprise_id": None,
            "api_app_id": api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team_id,
                    "user_id": bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-eyJldCI6Im1lc3NhZ2UifQ-{event_id}",
        }
    )


def block_action_body(
    action_id: str,
    value: str,
    *,
    user_id: str = "U1",
    channel_id: str = "C1",
    team_id: str = "T1",
    message_ts: str | None = None,
    container: dict | None = None,
    response_url: str | None = None,
    block_id: str = "b1",
    api_app_id: str = "A1",
    message: dict | None = None,
) -> str:
    """Form body ``payload=<JSON>`` of a button click; ``container`` overrides the message one
    (pass {"type": "message", "is_ephemeral": True, ...} for a button in an ephemeral)."""
    ts = message_ts or "1700000000.000100"
    container = container or {"type": "message", "message_ts": ts, "channel_id": channel_id, "is_ephemeral": False}
    payload = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": team_id},
        "api_app_id": api_app_id,
        "token": "verification-token-unused",
        "container": container,
        "trigger_id": _trigger_id(),
        "team": {"id": team_id, "domain": "imagine-test"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "general"},
        "state": {"values": {}},
        "response_url": response_url or f"{DEAD_URL}/actions/{team_id}/1/unused",
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": action_id, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    if container.get("type") == "message" and not container.get("is_ephemeral"):
        # Slack includes the clicked message only when it is not ephemeral.
        payload["message"] = message or {
            "type": "message",
            "ts": container.get("message_ts", ts),
            "user": "UBOT",
            "bot_id": "BBOT",
            "text": "",
            "blocks": [],
        }
    return urlencode({"payload": json.dumps(payload)})
