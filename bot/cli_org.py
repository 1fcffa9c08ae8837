"""`python -m bot org link | unlink | show`: organisations for operators (bot/teams.py).

Whoever runs the CLI controls both sides, so no code is asked for. Unlinking never rewrites
the ledger: what a team spent while linked stays in its organisation's history."""

from __future__ import annotations

import argparse

from bot import bootstrap
from bot.cli import EXIT_INVALID, EXIT_OK, CliError
from bot.settings import Settings
from bot.teams import LinkStatus, TeamLink, TeamRef, UnlinkStatus


async def org(settings: Settings, args: argparse.Namespace) -> int:
    runtime = await bootstrap.build(settings, notifiers=[])
    try:
        service = runtime.service
        if args.action == "link":
            if not args.slack.strip() or not args.discord.strip():
                raise CliError("--slack and --discord must not be blank", EXIT_INVALID)
            result = await service.link_teams(args.slack.strip(), args.discord.strip(), home=args.home)
            if result.status is LinkStatus.ALREADY_TOGETHER:
                raise CliError(f"already linked: both are in organisation {result.org}", EXIT_INVALID)
            if result.status is not LinkStatus.LINKED:
                raise CliError(
                    "both already belong to different organisations; unlink one first (python -m bot org unlink)",
                    EXIT_INVALID,
                )
            assert result.joined is not None and result.home_side is not None
            print(
                f"linked {result.joined.describe()} into organisation {result.org} "
                f"(with {result.home_side.describe()}): budgets, quotas, usage and ledger are "
                f"now those of {result.org}"
            )
            return EXIT_OK
        if args.action == "unlink":
            member = TeamRef("slack", args.slack) if args.slack else TeamRef("discord", args.discord)
            gone = await service.unlink_team(member)
            if gone.status is UnlinkStatus.NOT_LINKED:
                raise CliError(f"{member.describe()} is not linked to any organisation", EXIT_INVALID)
            if gone.status is UnlinkStatus.HOME_HAS_MEMBERS:
                raise CliError(
                    f"{member.describe()} is the home of organisation {gone.org} (its key): "
                    "unlink the other members first",
                    EXIT_INVALID,
                )
            teams = " and ".join(t.describe() for t in gone.left)
            print(
                f"unlinked {teams} from organisation {gone.org}: each uses its own budgets again; "
                f"what was spent while linked stays in {gone.org}'s ledger"
            )
            return EXIT_OK
        print(_show(await service.team_links()), end="")
        return EXIT_OK
    finally:
        await runtime.close()


def _show(links: list[TeamLink]) -> str:
    if not links:
        return "no organisations: every team uses its own budgets\n"
    by_org: dict[str, list[TeamLink]] = {}
    for link in links:
        by_org.setdefault(link.org, []).append(link)
    lines = []
    for key, members in by_org.items():
        lines.append(f"organisation {key}:")
        for m in sorted(members, key=lambda m: (not m.home, m.linked_at)):  # the home first
            role = "home" if m.home else "member"
            lines.append(f"  {m.member.describe()} ({role}, linked by {m.linked_by})")
    return "\n".join(lines) + "\n"
