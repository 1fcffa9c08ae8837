"""The fake Slack server speaks the real wire format: the real slack_sdk/slack_bolt run against it."""

import json
import time
from urllib.parse import parse_qs

import aiohttp
import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_server import FakeSlack, block_action_body, event_body, signed_headers, slash_command_body
from tests.support.probe import eventually

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # not a real image; the bytes must round-trip
SECRET = "shh-signing-secret"


@pytest.fixture
async def fake():
    async with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake):
    return AsyncWebClient(token=fake.bot_token, base_url=fake.url)


async def test_auth_test_and_bad_tokens(fake, client):
    resp = await client.auth_test()
    assert (resp["user_id"], resp["bot_id"], resp["team_id"]) == ("UBOT", "BBOT", "T1")
    assert fake.calls_to("auth.test")[0].headers["authorization"] == "Bearer xoxb-test"
    with pytest.raises(SlackApiError) as err:
        await AsyncWebClient(token="xoxb-wrong", base_url=fake.url).auth_test()
    assert err.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as err:
        await client.api_call("nope.nothing")
    assert err.value.response["error"] == "unknown_method"


async def test_post_update_delete(fake, client):
    first = await client.chat_postMessage(
        channel="C1", text="queued", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "queued"}}]
    )
    reply = await client.chat_postMessage(channel="C1", text="in thread", thread_ts=first["ts"])
    assert float(reply["ts"]) > float(first["ts"])
    assert reply["message"]["thread_ts"] == first["ts"]
    assert fake.calls_to("chat.postMessage")[0].args["blocks"][0]["type"] == "section"

    updated = await client.chat_update(channel="C1", ts=first["ts"], text="done", blocks=[])
    assert updated["message"]["text"] == "done"
    [top, threaded] = fake.messages["C1"]
    assert (top.text, top.blocks, top.user) == ("done", [], "UBOT")
    assert threaded.thread_ts == first["ts"]

    await client.chat_delete(channel="C1", ts=reply["ts"])
    assert threaded.deleted and fake.posted("C1") == [top]
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel="C1", ts="1.000000", text="x")
    assert err.value.response["error"] == "message_not_found"
    with pytest.raises(SlackApiError) as err, pytest.warns(UserWarning, match="`text` argument"):
        await client.chat_postMessage(channel="C1")
    assert err.value.response["error"] == "no_text"


async def test_post_ephemeral(fake, client):
    resp = await client.chat_postEphemeral(channel="C2", user="U7", text="only you")
    [m] = fake.messages["C2"]
    assert (m.ts, m.ephemeral_user, m.text) == (resp["message_ts"], "U7", "only you")


async def test_users_info(fake, client):
    fake.add_user("U9", is_admin=True, name="ada")
    user = (await client.users_info(user="U9"))["user"]
    assert (user["id"], user["name"], user["is_admin"], user["is_owner"], user["is_bot"]) == (
        "U9",
        "ada",
        True,
        False,
        False,
    )
    assert fake.calls_to("users.info")[0].args == {"user": "U9"}  # sent as query params
    with pytest.raises(SlackApiError) as err:
        await client.users_info(user="U404")
    assert err.value.response["error"] == "user_not_found"


async def test_files_upload_v2_into_thread(fake, client):
    parent = await client.chat_postMessage(channel="C1", text="drawing...")
    resp = await client.files_upload_v2(
        content=PNG, filename="x.png", channel="C1", thread_ts=parent["ts"], initial_comment="hi"
    )
    assert [c.method for c in fake.calls] == [
        "chat.postMessage",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    assert fake.calls_to("files.getUploadURLExternal")[0].args == {"filename": "x.png", "length": str(len(PNG))}
    [up] = fake.uploads
    assert (up.data, up.filename, up.channel, up.thread_ts, up.initial_comment) == (
        PNG,
        "x.png",
        "C1",
        parent["ts"],
        "hi",
    )
    assert resp["file"]["id"] == up.file_id and resp["file"]["mimetype"] == "image/png"
    share = fake.messages["C1"][-1]
    assert (share.thread_ts, share.text, share.files) == (parent["ts"], "hi", [up.file_id])
    info = await client.files_info(file=up.file_id)
    assert info["file"]["shares"]["public"]["C1"][0]["ts"] == share.ts


async def test_upload_failure_surfaces(fake, client):
    fake.fail_next("upload", "Internal Server Error", status=500)
    with pytest.raises(Exception, match="Failed to upload a file"):
        await client.files_upload_v2(content=PNG, filename="x.png", channel="C1")
    assert fake.uploads == [] and fake.messages.get("C1", []) == []


async def test_user_file_download_needs_bearer_token(fake):
    f = fake.add_user_file(PNG, name="cat.png")
    assert f["url_private_download"].startswith(fake.root + "/files-pri/")
    async with aiohttp.ClientSession() as http:
        async with http.get(f["url_private_download"], headers={"Authorization": f"Bearer {fake.bot_token}"}) as r:
            assert (r.status, r.content_type, await r.read()) == (200, "image/png", PNG)
        async with http.get(f["url_private"]) as r:
            assert (r.status, r.content_type) == (200, "text/html")
            assert "<!DOCTYPE html>" in await r.text()


async def test_fail_next_rate_limit(fake, client):
    fake.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=1)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C1", text="x")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "1"
    assert err.value.response["error"] == "ratelimited"
    await client.chat_postMessage(channel="C1", text="x")  # only the next call fails
    assert len(fake.calls_to("chat.postMessage")) == 2


async def test_refuse_for_is_a_window_and_a_lost_answer_still_takes_effect(fake, client):
    fake.refuse_for("chat.postMessage", 0.3, 503)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C1", text="x")
    assert err.value.response.status_code == 503 and fake.messages.get("C1", []) == []
    await eventually(lambda: not fake.refusing("chat.postMessage"), 2)
    await client.chat_postMessage(channel="C1", text="after")  # the window is over
    fake.lose_answers("files.completeUploadExternal")
    with pytest.raises(SlackApiError) as err:
        await client.files_upload_v2(content=PNG, filename="x.png", channel="C1")
    assert err.value.response.status_code == 500
    [up] = fake.uploads  # shared all the same: only the answer was lost
    info = await client.files_info(file=up.file_id)
    assert "C1" in info["file"]["shares"]["public"]


async def test_wait_for_reports_calls_on_timeout(fake, client):
    await client.auth_test()
    with pytest.raises(AssertionError, match="auth.test"):
        await fake.wait_for(lambda: fake.uploads, timeout=0.05)


def test_signed_headers_verify():
    body = slash_command_body("/imagine", "a koi pond")
    headers = signed_headers(body, SECRET)
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid_request(body, headers)
    assert not SignatureVerifier("other").is_valid_request(body, headers)
    stale = signed_headers(body, SECRET, timestamp=int(time.time()) - 3600)
    assert not verifier.is_valid_request(body, stale)
    form = parse_qs(body)
    assert (form["command"], form["text"], form["user_id"]) == (["/imagine"], ["a koi pond"], ["U1"])


async def test_bolt_app_handles_signed_requests(fake, client):
    app = AsyncApp(client=client, signing_secret=SECRET)
    seen = []

    @app.command("/imagine")
    async def imagine(ack, respond, command):
        await ack()
        await respond(f"drawing {command['text']}")

    @app.action("retry")
    async def retry(ack, body):
        await ack()
        seen.append(("action", body["actions"][0]["value"], body["container"]["message_ts"]))

    @app.event("app_mention")
    async def mention(event, say):
        await say(text="hello", thread_ts=event["ts"])

    async def dispatch(body, ctype):
        resp = await app.async_dispatch(
            AsyncBoltRequest(body=body, headers={**signed_headers(body, SECRET), "Content-Type": ctype})
        )
        assert resp.status == 200, resp.body

    form = "application/x-www-form-urlencoded"
    await dispatch(slash_command_body("/imagine", "a fox", response_url=fake.response_url()), form)
    await dispatch(block_action_body("retry", "job-7", message_ts="1700000000.000100"), form)
    await dispatch(
        event_body(
            {
                "type": "app_mention",
                "user": "U1",
                "text": "<@UBOT> hi",
                "ts": "1700000001.000200",
                "channel": "C1",
                "event_ts": "1700000001.000200",
            },
            event_id="Ev1",
        ),
        "application/json",
    )
    await fake.wait_for(lambda: fake.responses and fake.messages.get("C1"))
    assert fake.responses == [{"text": "drawing a fox"}]
    assert seen == [("action", "job-7", "1700000000.000100")]
    assert fake.messages["C1"][0].thread_ts == "1700000001.000200"
    assert json.loads(parse_qs(block_action_body("a", "v"))["payload"][0])["type"] == "block_actions"
