"""Per-role limits: which of a team's `[teams."T".roles."ROLE_ID"]` rules bind a user,
how several of them combine, and how a refusal names them.

Combining is per limit, the most generous first: for each limit (daily dollars, images a
day, models, sizes) the user gets the most generous value among *their roles that set
it* (the highest figure; every model or size any of those roles allows). A limit none of
their roles sets stays the team's own (for images a day, `user_images_per_day`; the
others have no team-wide per-user figure). A user with no configured role keeps the
team's normal limits.

When the roles cannot be read (the platform's lookup failed, or the request comes from
where roles are unknown), money comes first: the strictest configured value of each
limit applies (the lowest figure; only the models and sizes every role that names them
allows), and the refusal says why.

Only the platform's word counts: a role is what the adapter read from the interaction
(Discord) or looked up (Slack), never what a user typed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

from policies.config import RoleRule, TeamPolicy
from policies.routing import NotAllowedHere

T = TypeVar("T")


@dataclass(frozen=True)
class PlatformRole:
    """A role the platform says the user holds: its id, and a name people read (a Discord
    role's name, a Slack user group's handle; the id when the platform gave none)."""

    id: str
    name: str


@dataclass(frozen=True)
class Bound(Generic[T]):
    """One limit's value and the roles (by name) it comes from."""

    value: T
    roles: tuple[str, ...]


@dataclass(frozen=True)
class RoleLimits:
    """What a user's roles allow; None for a limit no role sets."""

    daily_usd: Bound[Decimal] | None = None
    images_per_day: Bound[int] | None = None
    models: Bound[frozenset[str]] | None = None
    sizes: Bound[frozenset[str]] | None = None
    # Why the roles could not be read, when the strictest limits apply instead.
    unread: str | None = None

    def allows(self, bound: Bound) -> str:
        """Who sets a limit, as a refusal starts: "Your role Interns allows", "The roles A and B allow"."""
        *others, last = bound.roles
        names = f"{', '.join(others)} and {last}" if others else last
        whose = "The" if self.unread else "Your"
        return f"{self.prefix()}{whose} role{'s' if others else ''} {names} allow{'' if others else 's'}"

    def prefix(self) -> str:
        return f"{self.unread} " if self.unread else ""


def most_generous(policy: TeamPolicy, held: Sequence[PlatformRole]) -> RoleLimits | None:
    """The limits `held` roles give under `policy`, or None when none of them is configured."""
    rules = [(role.name, policy.roles[role.id]) for role in held if role.id in policy.roles]
    return _combine(rules, max, _union)


def strictest(policy: TeamPolicy, why: str) -> RoleLimits | None:
    """Every configured role's tightest limit at once (roles unknown: money first), or None
    when the team has no roles. The roles are named by their ids: nothing could be read."""
    return _combine(list(policy.roles.items()), min, _intersection, unread=why)


def _combine(
    rules: Sequence[tuple[str, RoleRule]],
    figure: Callable[[Iterable[Any]], Any],
    sets: Callable[[Iterable[frozenset[str]]], frozenset[str]],
    unread: str | None = None,
) -> RoleLimits | None:
    """The rules' limits, each figure picked by `figure` (max, min) and each list by `sets`."""
    if not rules:
        return None
    return RoleLimits(
        daily_usd=_pick(rules, lambda r: r.user_daily_usd, figure),
        images_per_day=_pick(rules, lambda r: r.user_images_per_day, figure),
        models=_pick(rules, _set_of(lambda r: r.models), sets),
        sizes=_pick(rules, _set_of(lambda r: r.sizes), sets),
        unread=unread,
    )


def check_roles(limits: RoleLimits, model_alias: str, size: str) -> None:
    """NotAllowedHere, naming the role, when the model or size is not one the roles allow."""
    for bound, asked, what in ((limits.models, model_alias, "models"), (limits.sizes, size, "sizes")):
        if bound is None or asked in bound.value:
            continue
        allowed = ", ".join(sorted(bound.value)) or f"no {what}"
        raise NotAllowedHere(f"{limits.allows(bound)} {allowed}; {asked} isn't one of them. Nothing was charged.")


def images_refusal(limits: RoleLimits, bound: Bound[int], made: int, resets: str) -> str:
    return (
        f"{limits.allows(bound)} {bound.value} image{'s' if bound.value != 1 else ''} "
        f"a day; you have made {made}. It resets {resets}. Nothing was charged."
    )


def spend_refusal(limits: RoleLimits, bound: Bound[Decimal], used: str, needs: str | None, resets: str) -> str:
    allowed = f"{limits.allows(bound)} ${bound.value:,.2f} a day"
    if needs is None:
        return f"{allowed}; {used} is already spent or held. It resets {resets}. Nothing was charged."
    return (
        f"{allowed}; {used} is already spent or held and this image needs up to {needs}. "
        f"It resets {resets}. Nothing was charged."
    )


def _pick(
    rules: Sequence[tuple[str, RoleRule]],
    value: Callable[[RoleRule], T | None],
    best: Callable[[Iterable[T]], T],
) -> Bound[T] | None:
    """The `best` of the values the rules set, with the roles that set exactly it."""
    set_by = [(name, v) for name, rule in rules if (v := value(rule)) is not None]
    if not set_by:
        return None
    chosen = best(v for _, v in set_by)
    # A figure is named by the roles that set that very figure; a set of models or sizes (a
    # union, or an intersection) by every role that lists some.
    named = [name for name, v in set_by if isinstance(v, frozenset) or v == chosen]
    return Bound(chosen, tuple(dict.fromkeys(named)))


def _set_of(listed: Callable[[RoleRule], list[str] | None]) -> Callable[[RoleRule], frozenset[str] | None]:
    def value(rule: RoleRule) -> frozenset[str] | None:
        found = listed(rule)
        return None if found is None else frozenset(found)

    return value


def _union(sets: Iterable[frozenset[str]]) -> frozenset[str]:
    return frozenset().union(*sets)


def _intersection(sets: Iterable[frozenset[str]]) -> frozenset[str]:
    found = list(sets)
    return found[0].intersection(*found[1:])
