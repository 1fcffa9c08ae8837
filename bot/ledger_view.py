"""The ledger as a moderator filters it: which rows, by date range, user, channel, model and
lane, as typed into the dashboard's form (or any other front end), checked here once.

A bad value is an InvalidRequest with a sentence for the person who typed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.types import InvalidRequest, Lane

DAY = 86400
PAGE_SIZE = 50
# The entries a ledger shows unless asked for all: what was charged (as `usage` shows by default).
CHARGES = "settlement"


@dataclass(frozen=True)
class LedgerFilter:
    """Which of a team's ledger rows to list; None matches everything. `until` is exclusive."""

    entry: str | None = CHARGES
    since: float | None = None
    until: float | None = None
    user: str | None = None
    channel: str | None = None
    model: str | None = None
    lane: str | None = None


def utc_date(text: str, field: str) -> float:
    """A YYYY-MM-DD date's UTC midnight, in epoch seconds."""
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise InvalidRequest(f"{field} takes a date like 2026-11-01, not {text.strip()!r}.") from None


def ledger_filter(form: Mapping[str, str]) -> LedgerFilter:
    """The filter a form asks for: from and to (UTC dates, both days included), user, channel,
    model, lane, and all ("1": reservations and releases too, not just charges). Blank means any."""

    def given(name: str) -> str | None:
        return form.get(name, "").strip() or None

    since = utc_date(text, "From") if (text := given("from")) else None
    until = utc_date(text, "To") + DAY if (text := given("to")) else None
    if since is not None and until is not None and until <= since:
        raise InvalidRequest("The 'to' date is before the 'from' date.")
    lane = given("lane")
    if lane is not None and lane not in {each.value for each in Lane}:
        raise InvalidRequest(f"The lane is one of {', '.join(each.value for each in Lane)}, not {lane!r}.")
    return LedgerFilter(
        entry=None if given("all") else CHARGES,
        since=since,
        until=until,
        user=given("user"),
        channel=given("channel"),
        model=given("model"),
        lane=lane,
    )
