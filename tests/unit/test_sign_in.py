"""One-time sign-in links and sessions (bot/sign_in.py): signing, expiry, binding, CSRF. Pure:
the store is a stand-in that only counts claims and failed tries."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from itsdangerous import URLSafeSerializer

from bot.access import DASHBOARD_NOT_SET_UP, Caller, dashboard_link
from bot.sign_in import LINK_PATH, LinkProblem, Refusal, Role, Session, SignIn
from bot.types import Refused
from policies.config import PolicyBook
from tests.support.clock import FakeClock

SECRET = "s" * 40


class Claims:
    """The two store calls sign-in makes, in memory."""

    def __init__(self) -> None:
        self.used: set[str] = set()
        self.failures = 0

    async def use_sign_in_link(self, link_id: str, team: str, user: str, expires_at: float) -> bool:
        if link_id in self.used:
            return False
        self.used.add(link_id)
        return True

    async def take_rate_slot(self, key: str, limit: int, window: float) -> float:
        self.failures += 1
        return 0.0 if self.failures <= limit else 30.0


def make(clock: FakeClock, secret: str = SECRET, url: str = "https://dash.example.com/") -> tuple[SignIn, Claims]:
    claims = Claims()
    return SignIn(claims, secret, url, session_seconds=3600, clock=clock), claims  # type: ignore[arg-type]


def token_of(link: str) -> str:
    return unquote(link.split(LINK_PATH, 1)[1])


def test_a_link_is_on_the_public_url_and_bound_to_team_user_and_role():
    clock = FakeClock()
    sign_in, _ = make(clock)
    link = sign_in.link("T1", "U1", Role.MODERATOR)
    assert link.startswith("https://dash.example.com/dashboard/sign-in/")
    payload = sign_in.read_link(token_of(link))
    assert isinstance(payload, dict)
    assert (payload["t"], payload["u"], payload["r"]) == ("T1", "U1", "moderator")
    assert payload["x"] == clock.now + 600
    member = sign_in.read_link(token_of(sign_in.link("T1", "U1", Role.MEMBER)))
    assert isinstance(member, dict) and member["r"] == "member"


def test_every_link_is_different():
    sign_in, _ = make(FakeClock())
    assert sign_in.link("T1", "U1", Role.MEMBER) != sign_in.link("T1", "U1", Role.MEMBER)


def test_a_link_expires_after_ten_minutes():
    clock = FakeClock()
    sign_in, _ = make(clock)
    token = token_of(sign_in.link("T1", "U1", Role.MEMBER))
    clock.advance(600)
    assert isinstance(sign_in.read_link(token), dict)
    clock.advance(1)
    assert sign_in.read_link(token) is LinkProblem.EXPIRED


@pytest.mark.parametrize("change", ["team", "role", "secret", "truncated", "salt"])
def test_a_changed_or_foreign_link_is_forged(change):
    clock = FakeClock()
    sign_in, _ = make(clock)
    token = token_of(sign_in.link("T1", "U1", Role.MEMBER))
    if change == "secret":
        other, _ = make(clock, secret="o" * 40)
        token = token_of(other.link("T1", "U1", Role.MEMBER))
    elif change == "salt":
        token = URLSafeSerializer(SECRET, salt="imagine-web-session").dumps(
            {"t": "T1", "u": "U1", "r": "member", "j": "j", "x": 2e9}
        )
    elif change == "truncated":
        token = token[:-3]
    else:
        # The same payload with one field changed, under the original signature.
        payload = sign_in.read_link(token)
        assert isinstance(payload, dict)
        payload = {**payload, **({"t": "T2"} if change == "team" else {"r": "moderator"})}
        body = URLSafeSerializer("any key").dumps(payload).rsplit(".", 1)[0]
        signature = token.rsplit(".", 1)[1]
        token = f"{body}.{signature}"
    assert sign_in.read_link(token) is LinkProblem.FORGED


def test_a_session_cookie_is_no_link_and_a_link_no_session():
    clock = FakeClock()
    sign_in, _ = make(clock)
    token = token_of(sign_in.link("T1", "U1", Role.MEMBER))
    assert sign_in.session(token) is None


async def test_opening_a_link_gives_a_session_of_its_team_user_and_role_once():
    clock = FakeClock()
    sign_in, claims = make(clock)
    token = token_of(sign_in.link("T1", "U1", Role.MODERATOR))
    opened = await sign_in.open_link(token, "10.0.0.1")
    assert not isinstance(opened, Refusal)
    session, cookie = opened
    assert (session.team, session.user, session.role, session.moderator) == ("T1", "U1", Role.MODERATOR, True)
    assert sign_in.session(cookie) == session
    assert await sign_in.open_link(token, "10.0.0.1") == Refusal(LinkProblem.USED)


async def test_a_session_lasts_its_configured_time():
    clock = FakeClock()
    sign_in, _ = make(clock)
    opened = await sign_in.open_link(token_of(sign_in.link("T1", "U1", Role.MEMBER)), "c")
    assert not isinstance(opened, Refusal)
    clock.advance(3600)
    assert sign_in.session(opened[1]) is not None
    clock.advance(1)
    assert sign_in.session(opened[1]) is None
    assert sign_in.session(None) is None and sign_in.session("garbage") is None


async def test_too_many_bad_links_from_one_client_are_rate_limited():
    sign_in, claims = make(FakeClock())
    for _ in range(10):
        assert await sign_in.open_link("not-a-token", "c") == Refusal(LinkProblem.FORGED)
    refused = await sign_in.open_link("not-a-token", "c")
    assert isinstance(refused, Refusal) and refused.problem is LinkProblem.RATE_LIMITED and refused.retry_after > 0


async def test_refusals_are_logged_without_the_token(caplog):
    clock = FakeClock()
    sign_in, _ = make(clock)
    token = token_of(sign_in.link("T1", "U1", Role.MEMBER))
    clock.advance(601)
    with caplog.at_level("INFO"):
        assert await sign_in.open_link(token, "c") == Refusal(LinkProblem.EXPIRED)
    assert "expired" in caplog.text and token not in caplog.text
    assert token.split(".")[-1] not in caplog.text


def test_csrf_token_must_match_exactly():
    session = Session("T1", "U1", Role.MEMBER, "abc123", 0)
    assert session.csrf_ok("abc123")
    assert not session.csrf_ok(None) and not session.csrf_ok("") and not session.csrf_ok("abc124")


def test_secure_cookies_follow_the_public_url_and_short_secrets_are_refused():
    assert make(FakeClock())[0].secure_cookies
    assert not make(FakeClock(), url="http://localhost:3000")[0].secure_cookies
    with pytest.raises(ValueError, match="32"):
        make(FakeClock(), secret="short")


def test_a_link_needs_a_team_and_a_user():
    sign_in, _ = make(FakeClock())
    with pytest.raises(ValueError):
        sign_in.link(" ", "U1", Role.MEMBER)


def test_a_chat_dashboard_link_carries_the_role_the_budget_commands_would_give():
    sign_in, _ = make(FakeClock())
    policies = PolicyBook(teams={"T1": {"moderators": ["U042"]}}, access={"teams": ["T1"]})

    def role(caller: Caller) -> str:
        link = dashboard_link(policies, sign_in, caller)
        assert isinstance(link, str)
        payload = sign_in.read_link(token_of(link))
        assert isinstance(payload, dict) and (payload["t"], payload["u"]) == (caller.team, caller.user)
        return payload["r"]

    assert role(Caller("T1", "U1", platform="slack")) == "member"
    assert role(Caller("T1", "U1", platform_admin=True, platform="slack")) == "moderator"
    assert role(Caller("T1", "U042", platform="discord")) == "moderator"  # the team policy's moderators
    off_list = dashboard_link(policies, sign_in, Caller("T2", "U1", platform_admin=True, platform="slack"))
    assert isinstance(off_list, Refused) and "allow-list" in off_list.detail
    not_set_up = dashboard_link(policies, None, Caller("T1", "U1", platform="slack"))
    assert isinstance(not_set_up, Refused) and not_set_up.detail == DASHBOARD_NOT_SET_UP
