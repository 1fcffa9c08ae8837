"""The fake Slack's user groups: usergroups.list and usergroups.users.list, as
api.slack.com documents them.

* Both need the `usergroups:read` scope; a token without it gets
  {"ok": false, "error": "missing_scope", "needed": "usergroups:read", "provided": "..."}.
* usergroups.users.list takes `usergroup` (required) and `include_disabled`, as a query
  string or form (no JSON); it answers {"ok": true, "users": ["U060R4BJ4", ...]}, or
  `no_such_subteam` for an id the workspace has no group with (a disabled group, which
  "include_disabled: allow results that involve disabled User Groups" leaves out, is
  answered the same way without that flag: the docs name no other error for it).
* usergroups.list answers {"ok": true, "usergroups": [...]}, each group with its id, name,
  handle... and `user_count` as a string; its `users` only with include_users.
"""

from __future__ import annotations

from tests.fakes.slack_model import SlackError

USERGROUPS_READ = "usergroups:read"
# What the fake's bot token holds, as Slack lists them in missing_scope's "provided".
BOT_SCOPES = (
    "commands",
    "chat:write",
    "files:write",
    "files:read",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "users:read",
    USERGROUPS_READ,
)


class UsergroupMethods:
    """Part of FakeSlack (tests/fakes/slack_server.py), which holds the state it uses."""

    team_id: str
    scopes: set[str]
    usergroups: dict[str, dict]

    # -- test controls ----------------------------------------------------------------

    def add_usergroup(
        self, group_id: str, *, name: str, handle: str | None = None, users: list[str] = (), disabled: bool = False
    ) -> None:
        """A user group of the workspace (its members by user id)."""
        self.usergroups[group_id] = {
            "id": group_id,
            "team_id": self.team_id,
            "is_usergroup": True,
            "name": name,
            "description": "",
            "handle": handle or name.lower().replace(" ", "-"),
            "is_external": False,
            "date_create": 1_700_000_000,
            "date_update": 1_700_000_000,
            "date_delete": 1_700_000_500 if disabled else 0,
            "auto_type": None,
            "created_by": "USLACKBOT",
            "updated_by": "USLACKBOT",
            "deleted_by": "USLACKBOT" if disabled else None,
            "prefs": {"channels": [], "groups": []},
            "users": list(users),
        }

    # -- API methods ------------------------------------------------------------------

    def _needs(self, scope: str) -> None:
        if scope not in self.scopes:
            provided = ",".join(s for s in BOT_SCOPES if s in self.scopes)
            raise SlackError("missing_scope", needed=scope, provided=provided)

    def _usergroups_users_list(self, args: dict) -> dict:
        self._needs(USERGROUPS_READ)
        group = self.usergroups.get(args.get("usergroup") or "")
        if group is None or (group["date_delete"] and not _truthy(args.get("include_disabled"))):
            raise SlackError("no_such_subteam")
        return {"users": list(group["users"])}

    def _usergroups_list(self, args: dict) -> dict:
        self._needs(USERGROUPS_READ)
        out = []
        for group in self.usergroups.values():
            if group["date_delete"] and not _truthy(args.get("include_disabled")):
                continue
            shown = {k: v for k, v in group.items() if k != "users"}
            shown["user_count"] = str(len(group["users"]))
            if _truthy(args.get("include_users")):
                shown["users"] = list(group["users"])
            out.append(shown)
        return {"usergroups": out}


def _truthy(value: object) -> bool:
    # Query strings carry "true" / "1"; slack_sdk sends Python booleans as "1" or "true".
    return str(value).lower() in ("1", "true")
