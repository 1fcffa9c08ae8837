"""The fake Slack's Web API methods (auth, chat.*, files.*, users.info): each takes the call's
arguments and returns the body after `"ok": true`, or raises SlackError."""

from __future__ import annotations

import mimetypes
import time

from tests.fakes.slack_model import (
    Message,
    SlackError,
    Upload,
)


class WebApiMethods:
    """Part of FakeSlack (tests/fakes/slack_server.py), which holds the state it uses."""

    # -- API methods: each returns the body after "ok": true, or raises SlackError --------

    def _auth_test(self, args: dict) -> dict:
        return {
            "url": "https://imagine-test.slack.com/",
            "team": "Imagine Test",
            "user": "imagine",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, args: dict) -> dict:
        channel = self._channel(args)
        self._check_content(args, need=True)
        m = Message(
            channel,
            self._next_ts(),
            args.get("text") or "",
            args.get("blocks"),
            args.get("thread_ts") or None,
            self.bot_user_id,
        )
        self.messages[channel].append(m)
        return {"channel": channel, "ts": m.ts, "message": self._message_json(m)}

    def _update(self, args: dict) -> dict:
        channel = self._channel(args)
        m = self._find(channel, args.get("ts"))
        self._check_content(args, need=False)
        if "text" in args:
            m.text = args["text"] or ""
        if "blocks" in args:  # Slack keeps old blocks when omitted; [] removes them
            m.blocks = args["blocks"]
        return {"channel": channel, "ts": m.ts, "text": m.text, "message": self._message_json(m)}

    def _post_ephemeral(self, args: dict) -> dict:
        channel = self._channel(args)
        if not args.get("user"):
            raise SlackError("user_not_found")
        self._check_content(args, need=True)
        m = Message(
            channel,
            self._next_ts(),
            args.get("text") or "",
            args.get("blocks"),
            args.get("thread_ts") or None,
            self.bot_user_id,
            ephemeral_user=args["user"],
        )
        self.messages[channel].append(m)
        return {"message_ts": m.ts}

    def _delete(self, args: dict) -> dict:
        channel = self._channel(args)
        m = self._find(channel, args.get("ts"))
        m.deleted = True
        return {"channel": channel, "ts": m.ts}

    def _files_delete(self, args: dict) -> dict:
        # Deleting a file also removes the messages it was shared in, as on Slack.
        uploads = [u for u in self.uploads if u.file_id == args.get("file") and not u.deleted]
        if not uploads:
            raise SlackError("file_not_found")
        uploads[0].deleted = True
        for messages in self.messages.values():
            for m in messages:
                if args["file"] in m.files:
                    m.deleted = True
        return {}

    def _users_info(self, args: dict) -> dict:
        uid = args.get("user")
        if uid == self.bot_user_id:
            return {
                "user": {
                    "id": uid,
                    "team_id": self.team_id,
                    "name": "imagine",
                    "deleted": False,
                    "real_name": "Imagine",
                    "is_admin": False,
                    "is_owner": False,
                    "is_bot": True,
                    "is_app_user": False,
                    "updated": 1_700_000_000,
                    "profile": {
                        "bot_id": self.bot_id,
                        "api_app_id": self.app_id,
                        "real_name": "Imagine",
                        "team": self.team_id,
                    },
                }
            }
        if uid not in self.users:
            raise SlackError("user_not_found")
        return {"user": self.users[uid]}

    def _get_upload_url(self, args: dict) -> dict:
        try:
            filename, length = args["filename"], int(args["length"])
        except (KeyError, TypeError, ValueError):
            raise SlackError("invalid_arguments") from None
        file_id = self._new_file_id()
        self._pending[file_id] = {"filename": filename, "length": length, "data": None}
        return {"upload_url": f"{self.root}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, args: dict) -> dict:
        items = args.get("files")
        if not isinstance(items, list) or not items or not all(isinstance(f, dict) for f in items):
            raise SlackError("invalid_arguments")
        if any(self._pending.get(f.get("id"), {}).get("data") is None for f in items):
            raise SlackError("file_not_found")  # unknown id, or its bytes never arrived
        channels = (
            [args["channel_id"]]
            if args.get("channel_id")
            else [c for c in str(args.get("channels") or "").split(",") if c]
        )
        thread_ts, comment = args.get("thread_ts") or None, args.get("initial_comment")
        out = []
        for item in items:
            pending = self._pending.pop(item["id"])
            title = item.get("title") or pending["filename"]
            self.uploads.append(
                Upload(
                    item["id"],
                    pending["filename"],
                    pending["data"],
                    channels[0] if channels else None,
                    thread_ts,
                    comment,
                    item.get("title"),
                )
            )
            out.append(
                self._file_object(item["id"], pending["filename"], title, len(pending["data"]), self.bot_user_id)
            )
        for f in out:
            self._shared_at[f["id"]] = time.monotonic()
        for channel in channels:  # one message carries all the files and the comment
            m = Message(
                channel, self._next_ts(), comment or "", None, thread_ts, self.bot_user_id, files=[f["id"] for f in out]
            )
            self.messages[channel].append(m)
            for f in out:
                entry = {
                    "ts": m.ts,
                    "channel_name": channel,
                    "team_id": self.team_id,
                    "share_user_id": self.bot_user_id,
                    "source": "UNKNOWN",
                }
                if thread_ts:
                    entry.update(thread_ts=thread_ts, reply_count=0, reply_users=[])
                self._meta[f["id"]]["shares"].setdefault("public", {}).setdefault(channel, []).append(entry)
                self._meta[f["id"]]["channels"].append(channel)
        # Sharing is asynchronous on real Slack: this answer carries no shares/channels and
        # so no message ts. Snapshots taken above, before the share, keep them empty.
        return {"files": out}

    def _files_info(self, args: dict) -> dict:
        if args.get("file") not in self._meta:
            raise SlackError("file_not_found")
        file = self._meta[args["file"]]
        if time.monotonic() < self._shared_at.get(args["file"], 0.0) + self.share_lag:
            file = {**file, "channels": [], "shares": {}}  # completed, its share not visible yet
        return {"file": file, "comments": [], "response_metadata": {"next_cursor": ""}}

    def _file_object(
        self, file_id: str, name: str, title: str, size: int, user: str, mimetype: str | None = None
    ) -> dict:
        mimetype = mimetype or mimetypes.guess_type(name)[0] or "application/octet-stream"
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else "binary"
        key = f"{self.team_id}-{file_id}"  # Slack's url_private paths are /files-pri/T-F/name
        now = int(time.time())
        obj = {
            "id": file_id,
            "created": now,
            "timestamp": now,
            "name": name,
            "title": title,
            "mimetype": mimetype,
            "filetype": ext,
            "pretty_type": ext.upper(),
            "user": user,
            "user_team": self.team_id,
            "editable": False,
            "size": size,
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": True,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{self.root}/files-pri/{key}/{name}",
            "url_private_download": f"{self.root}/files-pri/{key}/download/{name}",
            "media_display_type": "unknown",
            "permalink": f"https://imagine-test.slack.com/files/{user}/{file_id}/{name}",
            "permalink_public": f"https://slack-files.com/{key}-0123456789",
            "comments_count": 0,
            "has_rich_preview": False,
            "file_access": "visible",
        }
        self._meta[file_id] = {**obj, "shares": {}, "channels": [], "groups": [], "ims": [], "has_more_shares": False}
        return {**obj, "shares": {}, "channels": [], "groups": [], "ims": [], "has_more_shares": False}
