"""The Store contract for organisations: links, unlinks and one-time link codes (both stores)."""

from __future__ import annotations

import asyncio

from bot.teams import LinkStatus, TeamRef, UnlinkStatus

SLACK, DISCORD = TeamRef("slack", "T0123"), TeamRef("discord", "4455")
SLACK2, DISCORD2 = TeamRef("slack", "T0999"), TeamRef("discord", "7788")


async def orgs(store) -> dict[tuple[str, str], str]:
    return {(link.member.platform, link.member.team): link.org for link in await store.team_links()}


async def test_a_link_puts_both_teams_under_the_home_teams_key(store):
    assert await store.team_org("discord", "4455") is None
    result = await store.link_teams(SLACK, DISCORD, "cli")
    assert (result.status, result.org, result.joined, result.home_side) == (LinkStatus.LINKED, "T0123", DISCORD, SLACK)
    assert await store.team_org("discord", "4455") == "T0123"
    assert await store.team_org("slack", "T0123") == "T0123"
    # Keyed by platform too: the same id on the other platform is another team.
    assert await store.team_org("slack", "4455") is None


async def test_more_teams_join_the_organisation_of_the_side_already_in_one(store):
    await store.link_teams(SLACK, DISCORD, "cli")
    joined = await store.link_teams(DISCORD2, SLACK, "cli")  # the linked side is the home, whatever the order
    assert (joined.status, joined.org, joined.joined) == (LinkStatus.LINKED, "T0123", DISCORD2)
    await store.link_teams(SLACK2, DISCORD, "cli")
    assert await orgs(store) == {
        ("slack", "T0123"): "T0123",
        ("discord", "4455"): "T0123",
        ("discord", "7788"): "T0123",
        ("slack", "T0999"): "T0123",
    }


async def test_linked_teams_are_not_linked_again_nor_moved(store):
    await store.link_teams(SLACK, DISCORD, "cli")
    again = await store.link_teams(SLACK, DISCORD, "cli")
    assert again.status is LinkStatus.ALREADY_TOGETHER
    await store.link_teams(SLACK2, DISCORD2, "cli")
    across = await store.link_teams(SLACK, DISCORD2, "cli")
    assert across.status is LinkStatus.IN_OTHER_ORGS
    assert await store.team_org("discord", "7788") == "T0999"


async def test_a_pair_comes_apart_and_the_home_leaves_last(store):
    await store.link_teams(SLACK, DISCORD, "cli")
    await store.link_teams(SLACK, DISCORD2, "cli")
    home_first = await store.unlink_team(SLACK)
    assert home_first.status is UnlinkStatus.HOME_HAS_MEMBERS
    member = await store.unlink_team(DISCORD2)
    assert (member.status, member.left) == (UnlinkStatus.UNLINKED, (DISCORD2,))
    assert await store.team_org("discord", "7788") is None
    pair = await store.unlink_team(DISCORD)
    assert pair.status is UnlinkStatus.UNLINKED and set(pair.left) == {SLACK, DISCORD}
    assert await orgs(store) == {}
    assert (await store.unlink_team(DISCORD)).status is UnlinkStatus.NOT_LINKED


async def test_a_code_links_once_from_the_other_platform_only(store, clock):
    await store.save_link_code("h1", SLACK, "U1", "C1", 900)
    assert (await store.redeem_link_code("nope", DISCORD, "D1")).status is LinkStatus.NO_SUCH_CODE
    same = await store.redeem_link_code("h1", SLACK2, "U9")
    assert same.status is LinkStatus.SAME_PLATFORM
    assert await store.team_org("slack", "T0999") is None
    used = await store.redeem_link_code("h1", DISCORD, "D1")
    assert (used.status, used.org, used.maker_user, used.maker_channel) == (LinkStatus.LINKED, "T0123", "U1", "C1")
    assert (await store.redeem_link_code("h1", DISCORD2, "D2")).status is LinkStatus.NO_SUCH_CODE
    assert await store.team_org("discord", "7788") is None


async def test_a_code_expires_and_a_new_one_replaces_the_old(store, clock):
    await store.save_link_code("old", SLACK, "U1", "C1", 900)
    await store.save_link_code("new", SLACK, "U1", "C1", 900)
    assert (await store.redeem_link_code("old", DISCORD, "D1")).status is LinkStatus.NO_SUCH_CODE
    clock.advance(901)
    assert (await store.redeem_link_code("new", DISCORD, "D1")).status is LinkStatus.NO_SUCH_CODE
    assert await store.team_links() == []


async def test_a_refused_code_stays_usable_and_a_linked_team_is_told(store):
    await store.link_teams(SLACK, DISCORD, "cli")
    await store.link_teams(SLACK2, DISCORD2, "cli")
    await store.save_link_code("h", SLACK2, "U1", "C1", 900)
    assert (await store.redeem_link_code("h", DISCORD, "D1")).status is LinkStatus.IN_OTHER_ORGS
    fresh = TeamRef("discord", "1234")
    assert (await store.redeem_link_code("h", fresh, "D1")).status is LinkStatus.LINKED


async def test_one_code_redeemed_at_once_from_many_stores_links_one_team(store_factory):
    stores = [await store_factory() for _ in range(4)]
    await stores[0].save_link_code("h", SLACK, "U1", "C1", 900)
    tries = [TeamRef("discord", str(1000 + i)) for i in range(12)]
    results = await asyncio.gather(*(stores[i % 4].redeem_link_code("h", t, "D") for i, t in enumerate(tries)))
    assert sorted(r.status.value for r in results).count(LinkStatus.LINKED.value) == 1
    assert len(await stores[0].team_links()) == 2
