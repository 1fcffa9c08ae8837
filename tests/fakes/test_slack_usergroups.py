"""The fake Slack's user groups answer the real slack_sdk as api.slack.com documents them."""

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_server import FakeSlack


@pytest.fixture
async def fake():
    async with FakeSlack() as server:
        server.add_usergroup("S1", name="Interns", users=["U1", "U2"])
        server.add_usergroup("S2", name="Old team", users=["U3"], disabled=True)
        yield server


@pytest.fixture
def client(fake):
    return AsyncWebClient(token=fake.bot_token, base_url=fake.url)


async def test_users_list_names_the_members_of_a_group(fake, client):
    answer = await client.usergroups_users_list(usergroup="S1")
    assert answer.data == {"ok": True, "users": ["U1", "U2"]}
    [call] = fake.calls_to("usergroups.users.list")
    assert call.args["usergroup"] == "S1" and call.headers["authorization"] == "Bearer xoxb-test"
    assert (await client.usergroups_users_list(usergroup="S2", include_disabled=True))["users"] == ["U3"]


@pytest.mark.parametrize("group", ["S404", "S2", ""])
async def test_an_unknown_or_disabled_group_is_no_such_subteam(client, group):
    with pytest.raises(SlackApiError) as err:
        await client.usergroups_users_list(usergroup=group)
    assert err.value.response["error"] == "no_such_subteam"


async def test_without_the_usergroups_read_scope_both_methods_say_which_scope_is_missing(fake, client):
    fake.scopes.discard("usergroups:read")
    for call in (client.usergroups_users_list(usergroup="S1"), client.usergroups_list()):
        with pytest.raises(SlackApiError) as err:
            await call
        body = err.value.response.data
        assert body["error"] == "missing_scope" and body["needed"] == "usergroups:read"
        assert "chat:write" in body["provided"] and "usergroups:read" not in body["provided"]


async def test_list_gives_each_live_group_with_its_handle_and_count_and_users_on_request(client):
    [group] = (await client.usergroups_list())["usergroups"]
    assert (group["id"], group["name"], group["handle"], group["user_count"]) == ("S1", "Interns", "interns", "2")
    assert "users" not in group
    groups = (await client.usergroups_list(include_users=True, include_disabled=True))["usergroups"]
    assert [(g["id"], g["users"]) for g in groups] == [("S1", ["U1", "U2"]), ("S2", ["U3"])]
