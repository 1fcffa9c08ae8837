"""[Ask a moderator]: a budget refusal that a moderator may turn into one approved overage.

A budget refusal (when the team's `approvals` policy is on) keeps the refused request as an
"offered" approval and carries its token: the adapter shows [Ask a moderator]. The requester's
press makes it "pending" and the adapter posts it, with [Approve] [Deny], to the alert channel.
A moderator's [Approve] submits the request once more, past its budgets, as an approved overage
(its ledger rows name the approver); the approval is claimed in the same transaction as the job
(bot/store/ledger.py), so two presses at once approve once. [Deny], or 24 hours without an
answer (the worker's sweep), tells the requester. A request waiting holds no money.

An approval lets a request past the team's budgets, never past the requester's own role limits:
the roles their platform reported with the refused request are kept with it (Slack's are looked
up afresh), and the store still checks role budgets. If the alert cannot be posted the request
goes back to offered, so the button works again. Answered requests drop their input pictures
and are pruned with the jobs (bot/retention.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.access import Caller, is_moderator
from bot.confirmations import request_from_json, request_json
from bot.money import usd
from bot.store.ports import Store, StoreUnavailable
from bot.types import EditRequest, ImagineRequest, RefusalReason, Refused
from policies.config import PolicyBook
from policies.roles import PlatformRole

log = logging.getLogger(__name__)
# The platforms whose refusals can carry the button (the alert channel is a chat channel): not the
# CLI, whose operator needs nobody's approval, nor the web playground.
ASKS_FROM = frozenset({"slack", "discord"})
# How long a moderator has to answer (and a requester to ask) before the request lapses.
ANSWER_WITHIN = 24 * 3600.0
OFFER_LINE = " A moderator can let this one image through: press Ask a moderator."
NO_ALERT_CHANNEL = (
    "Your team has no alert channel set up, so I can't ask a moderator from here. Ask one directly, "
    "or ask the bot's operator to set the alert channel (SLACK_ALERT_CHANNEL / DISCORD_ALERT_CHANNEL). "
    "Nothing was charged."
)
ALERT_NOT_POSTED = (
    "I couldn't post your request in the alert channel (the bot may not be in it, or may not be "
    "allowed to post there), so no moderator has seen it. Ask one directly, or press Ask a moderator "
    "again once the bot's operator has fixed the channel. Nothing was charged."
)
NO_ALERT_HERE = (
    " No moderator can be asked from here: there is no alert channel for this server."
    " Ask a moderator directly, or ask the bot's operator to set one up."
)
NOT_YOURS = "Only the person who asked for this image can ask a moderator about it."
GONE = "That request was already sent to the moderators, answered, or it has expired. Nothing was charged."
MODERATORS_ONLY = "Only a moderator can approve or deny this request. Nothing changed."
ANSWERED = "This request was already answered, or it has expired. Nothing changed."
ASKED = (
    "Sent to the moderators. You'll hear here when one approves it (the image then runs, as an "
    "approved overage) or denies it; without an answer it lapses in 24 hours. Nothing is held meanwhile."
)


@dataclass(frozen=True)
class PendingApproval:
    """A request sent to the moderators: what the alert channel shows, beside [Approve] [Deny]."""

    token: str
    user: str
    channel: str
    prompt: str
    model: str
    size: str
    estimate_micros: int
    budget_state: str

    def text(self, quote: Callable[[str], str] = str) -> str:
        """What the alert channel shows; `quote` makes the prompt (user text) safe for the platform."""
        return (
            f"<@{self.user}> asks for an image over the budget in <#{self.channel}>:\n"
            f"> {quote(self.prompt[:500])}\n"
            f"Model {self.model}, size {self.size}, about {usd(self.estimate_micros)}. "
            f"Budget: {self.budget_state}\n"
            "Approve it to run this one image as an approved overage, or deny it. "
            "Without an answer it lapses in 24 hours."
        )


def without_offer(refused: Refused) -> Refused:
    """A budget refusal shown where [Ask a moderator] cannot work (no alert channel for the
    requester's server): no button, and the words say so instead of offering it."""
    if refused.ask_token is None:
        return refused
    detail = refused.detail.removesuffix(OFFER_LINE)
    return dataclasses.replace(refused, detail=detail + NO_ALERT_HERE, ask_token=None)


class ApprovalDesk:
    def __init__(self, store: Store, policies: PolicyBook, clock: Callable[[], float]) -> None:
        self._store = store
        self._policies = policies
        self._clock = clock

    async def offer(
        self, req: ImagineRequest | EditRequest, refused: Refused, budget_state: str, estimate_micros: int
    ) -> Refused:
        """A budget refusal, with [Ask a moderator] when the team's policy allows approvals;
        `budget_state` is what the moderators are told about the budget."""
        if req.platform not in ASKS_FROM or req.approved_by or not self._policies.for_team(req.team).approvals:
            return refused
        token = secrets.token_urlsafe(12)
        # Kept as asked: a fresh idempotency key is given when it is approved.
        kept = dataclasses.replace(req, idempotency_key=None, idempotency_window=None, confirmed=False)
        await self._store.offer_approval(
            token,
            (req.team, req.platform, req.channel, req.user),
            {**request_json(kept), **_standing_json(req)},
            estimate_micros,
            budget_state.removesuffix(" Nothing was charged."),
            ANSWER_WITHIN,
        )
        return dataclasses.replace(refused, detail=refused.detail + OFFER_LINE, ask_token=token)

    async def ask(self, token: str, caller: Caller) -> PendingApproval | Refused:
        """The requester's [Ask a moderator]: pending now, once; what to post to the alert channel."""
        row = await self._store.approval(token)
        if row is None or row["team"] != caller.team:
            return Refused(RefusalReason.NOT_FOUND, GONE)
        if row["user"] != caller.user:
            return Refused(RefusalReason.NOT_ALLOWED_HERE, NOT_YOURS)
        asked = await self._store.ask_approval(token, caller.user, ANSWER_WITHIN)
        if asked is None:
            return Refused(RefusalReason.NOT_FOUND, GONE)
        return _pending(asked)

    async def not_posted(self, token: str) -> str:
        """The alert for `token` could not be posted: back to offered, so the button works again;
        what the requester is told."""
        await self._store.unask_approval(token)
        return ALERT_NOT_POSTED

    async def approved_request(self, token: str, caller: Caller) -> ImagineRequest | EditRequest | Refused:
        """The request an [Approve] submits: past its budgets, claimed with its job (once)."""
        row = await self._store.approval(token)
        if row is None or row["team"] != caller.team:
            return Refused(RefusalReason.NOT_FOUND, ANSWERED)
        if not is_moderator(self._policies, caller):
            return Refused(RefusalReason.NOT_MODERATOR, MODERATORS_ONLY)
        kept = dict(row["request"])
        roles, platform_admin = _standing(kept.pop(STANDING, None))
        return dataclasses.replace(
            request_from_json(kept),
            # The requester's roles as their platform reported them when refused (None, as a Slack
            # request's: looked up afresh), never the moderator's, nor "can't be read".
            roles=roles,
            platform_admin=platform_admin,
            confirmed=True,
            announced=True,
            # Every press of every moderator is the same job: a second one gets the first back.
            idempotency_key=f"approval:{token}",
            idempotency_window=None,
            approval_token=token,
            approved_by=caller.user,
        )

    async def deny(self, token: str, caller: Caller) -> dict[str, Any] | Refused:
        """A moderator's [Deny]: denied once, the requester told; the row, or why not."""
        row = await self._store.approval(token)
        if row is None or row["team"] != caller.team:
            return Refused(RefusalReason.NOT_FOUND, ANSWERED)
        if not is_moderator(self._policies, caller):
            return Refused(RefusalReason.NOT_MODERATOR, MODERATORS_ONLY)
        denied = await self._store.deny_approval(token, caller.user, denied_notice)
        return Refused(RefusalReason.NOT_FOUND, ANSWERED) if denied is None else denied

    async def expire(self) -> int:
        """Lapse every request unanswered for 24 hours, each requester told; how many."""
        expired = await self._store.expire_approvals(expired_notice)
        if expired:
            log.info("approvals: %d requests lapsed unanswered", len(expired))
        return len(expired)


# The key of the approval's request under which the requester's standing is kept: the roles
# their platform reported with the refused request (they came from the platform, not from text).
STANDING = "asker_standing"


def _standing_json(req: ImagineRequest | EditRequest) -> dict[str, Any]:
    roles = None if req.roles is None else [{"id": r.id, "name": r.name} for r in req.roles]
    return {STANDING: {"roles": roles, "platform_admin": req.platform_admin}}


def _standing(kept: dict[str, Any] | None) -> tuple[tuple[PlatformRole, ...] | None, bool]:
    if not kept:
        return None, False
    roles = kept.get("roles")
    return (
        None if roles is None else tuple(PlatformRole(str(r["id"]), str(r["name"])) for r in roles),
        bool(kept.get("platform_admin")),
    )


def _prompt(row: dict[str, Any]) -> str:
    request = row["request"]
    return str(request.get("prompt") or request.get("instruction") or "")


def _pending(row: dict[str, Any]) -> PendingApproval:
    request = row["request"]
    return PendingApproval(
        token=row["token"],
        user=row["user"],
        channel=row["channel"],
        prompt=_prompt(row),
        model=str(request.get("model") or "default"),
        size=str(request.get("size") or "default"),
        estimate_micros=row["estimate_micros"],
        budget_state=row["budget_state"],
    )


# The requester's notices: the adapter puts its own mention of the requester in front.
def denied_notice(row: dict[str, Any]) -> str:
    return f"a moderator denied your request over the budget (“{_prompt(row)[:200]}”). Nothing was charged."


def expired_notice(row: dict[str, Any]) -> str:
    return (
        f"no moderator answered your request over the budget (“{_prompt(row)[:200]}”) within 24 hours, "
        "so it lapsed. Nothing was charged."
    )


class ApprovalSweep:
    """Lapses unanswered requests every `every` seconds, in the worker role (as the pruner
    prunes); sweeps in several processes may overlap: each request lapses, and is told, once."""

    def __init__(self, expire: Callable[[], Awaitable[int]], every: float) -> None:
        self._expire = expire  # ImagineService.expire_approvals
        self._every = every

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._expire()
            except StoreUnavailable as exc:
                log.warning("approvals: store unavailable, sweeping again later: %s", exc)
            except Exception:  # a sweep's bug must not stop the worker's process
                log.exception("approvals: sweep failed")
            try:
                await asyncio.wait_for(stop.wait(), self._every)
            except TimeoutError:
                pass
