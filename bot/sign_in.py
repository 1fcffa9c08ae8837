"""Sign-in to the web dashboard without passwords: one-time links, then a session cookie.

A link carries a token signed with IMAGINE_WEB_SECRET (itsdangerous: HMAC-SHA1 over a
key derived per purpose with a salt, compared in constant time). The token holds the team,
the user, the role (moderator or member), a random link id and when it expires (10
minutes). Opening it claims the link id in the database (bot/store/dashboard.py): the
insert is the claim, so a replay is refused even by another process.

The session is a second signed value (another salt, so a link can never pass for a
session or the other way round) with its own expiry and a random CSRF token that every
POST must echo. Sessions are stateless: signing out drops the cookie.

Expiry is checked against the injected clock (not itsdangerous' own timestamp), so tests
move time by hand. Tokens are secrets: never log one.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeSerializer

from bot.store.ports import Store, StoreUnavailable

log = logging.getLogger(__name__)

LINK_TTL_SECONDS = 600.0
LINK_PATH = "/dashboard/sign-in/"
# A client (its address) may open this many bad links per window before being told to wait.
FAILED_LINKS_PER_WINDOW = 10
FAILED_LINKS_WINDOW = 600.0
MIN_SECRET_LENGTH = 32


class Role(StrEnum):
    MODERATOR = "moderator"
    MEMBER = "member"


class LinkProblem(StrEnum):
    """Why a link did not sign anyone in; each has its own page."""

    FORGED = "forged"  # not made by this bot (or made with another secret), or damaged in copying
    EXPIRED = "expired"
    USED = "used"  # opened before: a link works once
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"  # the database could not be reached


@dataclass(frozen=True)
class Session:
    team: str
    user: str
    role: Role
    csrf: str
    expires_at: float

    @property
    def moderator(self) -> bool:
        return self.role is Role.MODERATOR

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(self.csrf.encode(), (sent or "").encode())


@dataclass(frozen=True)
class Refusal:
    problem: LinkProblem
    retry_after: float = 0.0


class SignIn:
    """Makes links, turns an opened link into a session, and reads sessions back."""

    def __init__(
        self,
        store: Store,
        secret: str,
        public_url: str,
        *,
        session_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"the web secret must be at least {MIN_SECRET_LENGTH} characters")
        self._store = store
        self._links = URLSafeSerializer(secret, salt="imagine-sign-in-link")
        self._sessions = URLSafeSerializer(secret, salt="imagine-web-session")
        self._public_url = public_url.rstrip("/")
        self.session_seconds = session_seconds
        self._clock = clock

    @property
    def secure_cookies(self) -> bool:
        """Cookies only over https when the public URL is https."""
        return self._public_url.startswith("https://")

    def link(self, team: str, user: str, role: Role) -> str:
        """A one-time sign-in link for this person of this team, valid 10 minutes."""
        if not team.strip() or not user.strip():
            raise ValueError("a sign-in link needs a team and a user")
        payload = {
            "t": team,
            "u": user,
            "r": role.value,
            "j": secrets.token_urlsafe(16),
            "x": int(self._clock() + LINK_TTL_SECONDS),
        }
        return self._public_url + LINK_PATH + quote(self._links.dumps(payload), safe="")

    def read_link(self, token: str) -> dict[str, Any] | LinkProblem:
        """The link's payload when it is genuine and unexpired (pure: claims nothing)."""
        payload = _load(self._links, token)
        if payload is None or not isinstance(payload.get("j"), str):
            return LinkProblem.FORGED
        if payload["x"] < self._clock():
            return LinkProblem.EXPIRED
        return payload

    async def open_link(self, token: str, client: str) -> tuple[Session, str] | Refusal:
        """Claim a link: a new session and its cookie value, or why not (logged, without the token)."""
        payload = self.read_link(token)
        try:
            if isinstance(payload, LinkProblem):
                return await self._refuse(payload, client, None)
            if not await self._store.use_sign_in_link(payload["j"], payload["t"], payload["u"], payload["x"]):
                return await self._refuse(LinkProblem.USED, client, payload)
        except StoreUnavailable:
            log.exception("sign-in: the store is unavailable")
            return Refusal(LinkProblem.UNAVAILABLE)
        session = Session(
            team=payload["t"],
            user=payload["u"],
            role=Role(payload["r"]),
            csrf=secrets.token_urlsafe(24),
            expires_at=self._clock() + self.session_seconds,
        )
        log.info("sign-in: team=%s user=%s role=%s from %s", session.team, session.user, session.role, client)
        cookie = self._sessions.dumps(
            {"t": session.team, "u": session.user, "r": session.role.value, "c": session.csrf, "x": session.expires_at}
        )
        return session, cookie

    def session(self, cookie: str | None) -> Session | None:
        """The session a cookie holds, or None when it is missing, forged or expired."""
        payload = _load(self._sessions, cookie or "")
        if payload is None or payload["x"] < self._clock():
            return None
        return Session(payload["t"], payload["u"], Role(payload["r"]), payload["c"], payload["x"])

    async def _refuse(self, problem: LinkProblem, client: str, payload: dict[str, Any] | None) -> Refusal:
        who = f" team={payload['t']} user={payload['u']}" if payload else ""
        log.warning("sign-in refused: %s link from %s%s", problem.value, client, who)
        wait = await self._store.take_rate_slot(f"sign-in:{client}", FAILED_LINKS_PER_WINDOW, FAILED_LINKS_WINDOW)
        if wait > 0:
            log.warning("sign-in: %s is opening too many bad links; told to wait %.0fs", client, wait)
            return Refusal(LinkProblem.RATE_LIMITED, wait)
        return Refusal(problem)


def _load(serializer: URLSafeSerializer, token: str) -> dict[str, Any] | None:
    """A signed payload of ours (team, user, role, expiry...), or None."""
    try:
        payload = serializer.loads(token)
    except BadSignature:
        return None
    if not isinstance(payload, dict):
        return None
    ok = (
        isinstance(payload.get("t"), str)
        and isinstance(payload.get("u"), str)
        and payload.get("r") in (Role.MODERATOR.value, Role.MEMBER.value)
        and isinstance(payload.get("x"), int | float)
    )
    return payload if ok else None
