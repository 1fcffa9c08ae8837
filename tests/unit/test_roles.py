"""Per-role limits: which roles bind a user, how several combine (the most generous per
limit), the strictest when roles can't be read, and who is never limited (issue 18)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest

from bot.roles import LOOKUP_FAILED, NOT_READABLE, RoleDesk, RoleLookupFailed, Standing
from bot.types import ImagineRequest
from policies.config import PolicyBook
from policies.roles import Bound, PlatformRole, check_roles, most_generous, strictest
from policies.routing import NotAllowedHere

INTERNS = PlatformRole("S-interns", "interns")
DESIGN = PlatformRole("S-design", "design")
GUESTS = PlatformRole("S-guests", "guests")
ROLES = {
    "S-interns": {"user_daily_usd": 5, "user_images_per_day": 20, "models": ["flash"], "sizes": ["1K", "2K"]},
    "S-design": {"user_daily_usd": 2, "user_images_per_day": 200, "models": ["pro", "flash"]},
    "S-guests": {"sizes": ["1K"]},
}


def book(**team) -> PolicyBook:
    return PolicyBook(teams={"T1": {"roles": ROLES, **team}})


def request(**kw) -> ImagineRequest:
    return ImagineRequest(
        team="T1", channel="C1", user=kw.pop("user", "U1"), platform=kw.pop("platform", "slack"), prompt="p", **kw
    )


def test_no_configured_role_held_means_no_role_limits():
    assert most_generous(book().for_team("T1"), [PlatformRole("S-other", "other")]) is None
    assert most_generous(book().for_team("T1"), []) is None
    assert strictest(PolicyBook().for_team("T1"), "why") is None  # a team without roles


def test_one_role_gives_its_own_limits_named_by_it():
    limits = most_generous(book().for_team("T1"), [INTERNS])
    assert limits.daily_usd == Bound(Decimal(5), ("interns",))
    assert limits.images_per_day == Bound(20, ("interns",))
    assert limits.models.value == {"flash"} and limits.sizes.value == {"1K", "2K"}


def test_several_roles_combine_per_limit_taking_the_most_generous_value_among_those_that_set_it():
    limits = most_generous(book().for_team("T1"), [INTERNS, DESIGN, GUESTS])
    assert limits.daily_usd == Bound(Decimal(5), ("interns",))  # the highest dollars, from interns
    assert limits.images_per_day == Bound(200, ("design",))  # the most images, from design
    assert limits.models == Bound(frozenset({"pro", "flash"}), ("interns", "design"))  # every model any allows
    assert limits.sizes == Bound(frozenset({"1K", "2K"}), ("interns", "guests"))
    # A limit none of the held roles sets stays the team's own.
    only_guests = most_generous(book().for_team("T1"), [GUESTS])
    assert only_guests.daily_usd is None and only_guests.images_per_day is None and only_guests.models is None


def test_unread_roles_get_the_strictest_value_of_each_limit():
    limits = strictest(book().for_team("T1"), "Can't read.")
    assert limits.daily_usd.value == 2 and limits.images_per_day.value == 20
    assert limits.models.value == {"flash"} and limits.sizes.value == {"1K"}
    with pytest.raises(NotAllowedHere) as refused:
        check_roles(limits, "flash", "2K")
    assert str(refused.value).startswith("Can't read. The roles S-interns and S-guests allow 1K; 2K isn't one")


def test_a_model_or_size_refusal_names_the_role_and_what_it_allows():
    limits = most_generous(book().for_team("T1"), [INTERNS])
    check_roles(limits, "flash", "2K")
    with pytest.raises(NotAllowedHere) as refused:
        check_roles(limits, "pro", "2K")
    assert str(refused.value) == "Your role interns allows flash; pro isn't one of them. Nothing was charged."
    with pytest.raises(NotAllowedHere, match="Your role interns allows 1K, 2K; 4K isn't one"):
        check_roles(limits, "flash", "4K")


class Directory:
    what, platform = "user groups", "Slack"

    def __init__(self, standing: Standing | None = None) -> None:
        self.standing_ = standing
        self.asked: list[tuple[str, str, Sequence[str]]] = []

    async def standing(self, team: str, user: str, role_ids: Sequence[str]) -> Standing:
        self.asked.append((team, user, role_ids))
        if self.standing_ is None:
            raise RoleLookupFailed("missing_scope")
        return self.standing_


async def test_the_desk_reads_roles_from_the_request_or_asks_the_platforms_directory():
    desk = RoleDesk(book())
    given = await desk.limits(request(platform="discord", roles=(INTERNS,)))
    assert given.images_per_day.value == 20
    directory = Directory(Standing((DESIGN,)))
    desk.add_directory("slack", directory)
    looked_up = await desk.limits(request())
    assert looked_up.images_per_day == Bound(200, ("design",))
    assert directory.asked == [("T1", "U1", ("S-interns", "S-design", "S-guests"))]


async def test_moderators_admins_and_the_cli_are_never_limited_by_roles():
    desk = RoleDesk(book(moderators=["U-mod"]))
    desk.add_directory("slack", Directory(Standing((INTERNS,), platform_admin=True)))
    assert await desk.limits(request(platform="discord", roles=(INTERNS,), user="U-mod")) is None
    assert await desk.limits(request(platform="discord", roles=(INTERNS,), platform_admin=True)) is None
    assert await desk.limits(request()) is None  # Slack says: a workspace admin
    assert await desk.limits(request(platform="cli")) is None


async def test_a_failed_lookup_or_a_platform_without_roles_gets_the_strictest_limits():
    desk = RoleDesk(book())
    desk.add_directory("slack", Directory(None))
    failed = await desk.limits(request())
    assert failed.unread == LOOKUP_FAILED.format(what="user groups", platform="Slack")
    assert failed.images_per_day.value == 20 and failed.daily_usd.value == 2
    unknown = await desk.limits(request(platform="web"))
    assert unknown.unread == NOT_READABLE
    # A team without roles is never looked up.
    assert await RoleDesk(PolicyBook()).limits(request()) is None
