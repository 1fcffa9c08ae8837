"""The command line's grammar for `python -m bot`: every subcommand and its flags.

`bot.cli` dispatches on what this parses; keeping the grammar apart keeps that
module about what each command does.
"""

import argparse


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bot", description="imagine-bot: team image generation")
    top.add_argument("-v", "--verbose", action="store_true", help="log progress and traces to stderr")
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run workers and every configured chat adapter")
    sub.add_parser("worker", help="run generation workers only (scale-out, any number)")
    sub.add_parser("web", help="run the HTTP endpoints and Slack only (scale-out)")
    sub.add_parser("discord", help="run the Discord gateway only (scale-out)")
    img = sub.add_parser("imagine", help="render one image from the terminal")
    img.add_argument("prompt")
    img.add_argument("--ar", help="aspect ratio, e.g. 16:9")
    img.add_argument("--size", help="1K, 2K or 4K (512 on Flash)")
    img.add_argument("--model", help="pro, flash, lite or legacy")
    img.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="IN.png",
        help="an image to edit or use as reference (repeatable)",
    )
    img.add_argument("--out", metavar="OUT.png", help="where to write the image (default imagine-<date>-<time>.png)")
    img.add_argument("--yes", action="store_true", help="go ahead when the cost needs a confirmation")
    lanes = img.add_mutually_exclusive_group()
    lanes.add_argument(
        "--relax",
        dest="lane",
        action="store_const",
        const="flex",
        help="the Flex lane: half price, usually within 15 minutes",
    )
    lanes.add_argument(
        "--batch",
        dest="lane",
        action="store_const",
        const="batch",
        help="the Batch lane: half price, within hours (chat only: the CLI waits for its image)",
    )
    lanes.add_argument(
        "--priority",
        dest="lane",
        action="store_const",
        const="priority",
        help="the Priority lane: dearer, never shed ([teams.cli] priority = true)",
    )
    budget = sub.add_parser("budget", help="show or set spend limits").add_subparsers(dest="action", required=True)
    show = budget.add_parser("show", help="a team's budgets with spent, held and left")
    show.add_argument("--team", required=True)
    put = budget.add_parser("set", help="set a team (or channel, or user) budget")
    put.add_argument("--team", required=True)
    put.add_argument("--usd", required=True, help="the limit in dollars, e.g. 50")
    put.add_argument("--period", default="month", choices=["day", "week", "month"])
    which = put.add_mutually_exclusive_group()
    which.add_argument("--channel", help="limit one channel of the team instead")
    which.add_argument("--user", help="limit one user of the team instead")
    put.add_argument("--soft", type=float, help="alert threshold as a fraction (default 0.8)")
    sub.add_parser("doctor", help="check every configured route: key, models, prices, recent errors")
    usage = sub.add_parser("usage", help="the ledger: what was charged, to whom")
    usage.add_argument("--team")
    usage.add_argument("--since", metavar="YYYY-MM-DD", help="from this UTC date (default: start of this month)")
    usage.add_argument("--format", default="table", choices=["table", "csv", "json"])
    usage.add_argument(
        "--all-entries", action="store_true", help="also list reservations and releases, not just charges"
    )
    link = sub.add_parser("dashboard-link", help="print a one-time sign-in link to the web dashboard (10 minutes)")
    link.add_argument("--team", required=True, help="the team (Slack team / Discord guild id) it signs in to")
    link.add_argument("--user", required=True, help="who signs in (their chat user id)")
    link.add_argument("--moderator", action="store_true", help="sign in as a moderator of the team")
    org = sub.add_parser("org", help="link Slack workspaces and Discord servers into one budget")
    org_actions = org.add_subparsers(dest="action", required=True)
    link_teams = org_actions.add_parser("link", help="link a Slack workspace and a Discord server")
    link_teams.add_argument("--slack", required=True, metavar="TEAM_ID", help="the Slack team id, e.g. T0123")
    link_teams.add_argument("--discord", required=True, metavar="GUILD_ID", help="the Discord server (guild) id")
    link_teams.add_argument(
        "--home",
        default="slack",
        choices=["slack", "discord"],
        help="when neither is linked yet: whose budgets and history the organisation keeps (default slack)",
    )
    unlink = org_actions.add_parser("unlink", help="take a workspace or server out of its organisation")
    side = unlink.add_mutually_exclusive_group(required=True)
    side.add_argument("--slack", metavar="TEAM_ID")
    side.add_argument("--discord", metavar="GUILD_ID")
    org_actions.add_parser("show", help="every organisation and its members")
    return top
