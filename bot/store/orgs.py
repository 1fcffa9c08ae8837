"""Organisations in the store: which key a team's requests use, links and one-time link codes.

Every change to team_links runs under one lock (ORG_LOCK), so two links made at once in any
processes cannot put a team in two organisations or race a code's single use."""

from __future__ import annotations

from bot.store.outbox import OutboxOperations
from bot.store.tx import Operations, Row, Tx, reads, writes
from bot.teams import NOTICE, LinkResult, LinkStatus, TeamLink, TeamRef, UnlinkResult, UnlinkStatus
from bot.types import NewDelivery

ORG_LOCK = "imagine-orgs"


def _link(row: Row) -> TeamLink:
    return TeamLink(TeamRef(row["platform"], row["team"]), row["org"], row["linked_by"], row["linked_at"])


class OrgOperations(Operations):
    @reads
    async def team_org(self, tx: Tx, platform: str, team: str) -> str | None:
        return await tx.value("team_org", platform=platform, team=team)

    @reads
    async def team_links(self, tx: Tx, org: str | None = None) -> list[TeamLink]:
        rows = await (tx.all("all_team_links") if org is None else tx.all("org_members", org=org))
        return [_link(r) for r in rows]

    @writes
    async def link_teams(self, tx: Tx, home: TeamRef, joiner: TeamRef, by: str) -> LinkResult:
        await tx.lock(ORG_LOCK)
        return await self._link(tx, home, joiner, by)

    @writes
    async def unlink_team(self, tx: Tx, member: TeamRef) -> UnlinkResult:
        await tx.lock(ORG_LOCK)
        row = await tx.one("team_link", platform=member.platform, team=member.team)
        if row is None:
            return UnlinkResult(UnlinkStatus.NOT_LINKED)
        leaving = _link(row)
        members = [_link(r) for r in await tx.all("org_members", org=leaving.org)]
        if leaving.home and len(members) > 2:
            return UnlinkResult(UnlinkStatus.HOME_HAS_MEMBERS, leaving.org)
        # A pair comes apart as a whole: an organisation of one is just its home team.
        left = members if len(members) <= 2 else [leaving]
        for gone in left:
            await tx.run("delete_team_link", platform=gone.member.platform, team=gone.member.team)
        return UnlinkResult(UnlinkStatus.UNLINKED, leaving.org, tuple(m.member for m in left))

    @writes
    async def save_link_code(self, tx: Tx, code_hash: str, maker: TeamRef, user: str, channel: str, ttl: float) -> None:
        """Keep a new code (by its hash); any earlier code of the same team stops working."""
        now = self._clock()
        await tx.run("prune_link_codes", now=now, platform=maker.platform, team=maker.team)
        await tx.run(
            "insert_link_code",
            code_hash=code_hash,
            platform=maker.platform,
            team=maker.team,
            user=user,
            channel=channel,
            expires_at=now + ttl,
        )

    @writes
    async def redeem_link_code(self, tx: Tx, code_hash: str, joiner: TeamRef, by: str) -> LinkResult:
        """Link `joiner` with the team that made the code, using the code up; a refusal leaves
        the code as it was (a Slack code tried on Slack still works on Discord)."""
        await tx.lock(ORG_LOCK)
        code = await tx.one("live_link_code", code_hash=code_hash, now=self._clock())
        if code is None:
            return LinkResult(LinkStatus.NO_SUCH_CODE)
        if code["platform"] == joiner.platform:
            return LinkResult(LinkStatus.SAME_PLATFORM)
        result = await self._link(tx, TeamRef(code["platform"], code["team"]), joiner, by)
        if result.status is LinkStatus.LINKED:
            await tx.run("delete_link_code", code_hash=code_hash)
        return LinkResult(
            result.status,
            result.org,
            result.joined,
            result.home_side,
            maker_user=code["user"],
            maker_channel=code["channel"],
        )

    async def _link(self, tx: Tx, home: TeamRef, joiner: TeamRef, by: str) -> LinkResult:
        """`joiner` into `home`'s organisation (a new one keyed by `home` when it has none).
        When only `joiner` already belongs to one, `home` joins that one instead."""
        home_org = await tx.value("team_org", platform=home.platform, team=home.team)
        joiner_org = await tx.value("team_org", platform=joiner.platform, team=joiner.team)
        if home_org is not None and joiner_org is not None:
            status = LinkStatus.ALREADY_TOGETHER if home_org == joiner_org else LinkStatus.IN_OTHER_ORGS
            return LinkResult(status, home_org)
        if joiner_org is not None:
            home, joiner, home_org = joiner, home, joiner_org
        org = home_org or home.team
        now = self._clock()
        if home_org is None:
            await tx.run("insert_team_link", platform=home.platform, team=home.team, org=org, by=by, now=now)
        await tx.run("insert_team_link", platform=joiner.platform, team=joiner.team, org=org, by=by, now=now)
        return LinkResult(LinkStatus.LINKED, org, joined=joiner, home_side=home)

    @writes
    async def queue_notice(self, tx: Tx, key: str, platform: str, channel: str, text: str) -> bool:
        """A message for a chat channel (the maker of a link code hearing it was used), sent
        through the outbox by that platform's process; once per `key`."""
        notice = NewDelivery(key, NOTICE, {"channel": channel, "text": text})
        return await OutboxOperations._insert_delivery(tx, None, platform, notice, self._clock())
