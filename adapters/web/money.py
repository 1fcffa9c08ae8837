"""The moderators' money pages: the ledger (filtered, paged, exported as the CLI's CSV) and the
budgets (shown, set through the same core call as the chat command, and who changed what).

Every rule is the core's: who may see and set (service), what a filter or a budget may be
(bot.ledger_view, bot.money.budgets), the CSV's rows and columns (bot.reports, as `python -m bot
usage --format csv` writes them). The team is always the session's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from adapters.web.charts import budget_bar
from adapters.web.pages import PREFIX, SERVICE, caller_of, page, problem, signed_in, signed_out
from bot.ledger_view import PAGE_SIZE, LedgerFilter, ledger_filter
from bot.money import from_micros, usd
from bot.money.budgets import Period, Scope
from bot.reports import render_ledger, shown_entry
from bot.service import ImagineService
from bot.sign_in import Session
from bot.types import InvalidRequest, Lane, RefusalReason, Refused

# The ledger form's fields, kept in the newer/older and CSV links.
FILTER_FIELDS = ("from", "to", "user", "channel", "model", "lane", "all")
# The CSV holds every matching row, as the CLI's does: no page limit.
EVERY_ROW = 2**62
CHANGES_SHOWN = 20


def routes() -> list[web.RouteDef]:
    return [
        web.get("/ledger", ledger, name="ledger"),
        web.get("/ledger.csv", ledger_csv, name="ledger_csv"),
        web.get("/budgets", budgets, name="budgets"),
        web.post("/budgets", set_budget),
    ]


def _refused(request: web.Request, refused: Refused, session: Session) -> web.Response:
    status = 403 if refused.reason in (RefusalReason.NOT_MODERATOR, RefusalReason.TEAM_NOT_ALLOWED) else 503
    return problem(request, status, "Not available to you", refused.detail, session)


# -- the ledger ---------------------------------------------------------------


async def ledger(request: web.Request) -> web.Response:
    session = signed_in(request)
    if session is None:
        return signed_out(request)
    service = request.app[SERVICE]
    kept = {name: request.query[name] for name in FILTER_FIELDS if request.query.get(name, "").strip()}
    context: dict[str, Any] = {
        "session": session,
        "form": {name: request.query.get(name, "") for name in FILTER_FIELDS},
        "lanes": [lane.value for lane in Lane],
        "rows": [],
        "error": None,
        "newer": None,
        "older": None,
        "csv": f"{PREFIX}/ledger.csv?{urlencode(kept)}",
        "page_number": 1,
    }
    filters: LedgerFilter | None = None
    try:
        filters, number = ledger_filter(request.query), _page_number(request.query.get("page", "1"))
    except InvalidRequest as exc:
        context["error"], number = str(exc), 1
    # One row more than a page says whether an older page exists. With a bad filter, none are
    # read, but a member is still refused first.
    rows = await service.ledger(
        caller_of(session),
        filters or LedgerFilter(),
        limit=PAGE_SIZE + 1 if filters else 0,
        offset=(number - 1) * PAGE_SIZE,
    )
    if isinstance(rows, Refused):
        return _refused(request, rows, session)
    if context["error"]:
        return page(request, "ledger.html", 400, **context)
    link = f"{PREFIX}/ledger?"
    context |= {
        "rows": [_ledger_line(r) for r in rows[:PAGE_SIZE]],
        "page_number": number,
        "newer": link + urlencode({**kept, "page": number - 1}) if number > 1 else None,
        "older": link + urlencode({**kept, "page": number + 1}) if len(rows) > PAGE_SIZE else None,
    }
    return page(request, "ledger.html", **context)


def _page_number(text: str) -> int:
    # Nine digits at most: a page past any ledger, yet an offset every database takes.
    if not text.strip().isdecimal() or len(text.strip()) > 9 or int(text) < 1:
        raise InvalidRequest(f"The page is a number from 1, not {text.strip()!r}.")
    return int(text)


def _ledger_line(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **row,
        # An approved overage's charge is its own line, naming who approved it.
        "entry": shown_entry(row) + (f" (approved by {row['approved_by']})" if row.get("approved_by") else ""),
        "at": datetime.fromtimestamp(row["created_at"], UTC).strftime("%Y-%m-%d %H:%M"),
        "cost": f"${from_micros(row['cost_micros']):.4f}",
    }


async def ledger_csv(request: web.Request) -> web.Response:
    session = signed_in(request)
    if session is None:
        return signed_out(request)
    try:
        filters = ledger_filter(request.query)
    except InvalidRequest as exc:
        return problem(request, 400, "That filter does not work", str(exc), session)
    rows = await request.app[SERVICE].ledger(caller_of(session), filters, limit=EVERY_ROW)
    if isinstance(rows, Refused):
        return _refused(request, rows, session)
    # Oldest first, as `python -m bot usage --format csv` lists them.
    text = render_ledger(list(reversed(rows)), "csv", filters.since or 0.0)
    return web.Response(
        text=text,
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="ledger.csv"'},
    )


# -- budgets ------------------------------------------------------------------


async def budgets(request: web.Request) -> web.Response:
    session = signed_in(request)
    if session is None:
        return signed_out(request)
    return await _budgets_page(request, session, saved=request.query.get("saved") == "1")


async def _budgets_page(
    request: web.Request,
    session: Session,
    *,
    status: int = 200,
    error: str | None = None,
    form: Mapping[str, str] | None = None,
    saved: bool = False,
) -> web.Response:
    service: ImagineService = request.app[SERVICE]
    caller = caller_of(session)
    statuses = await service.show_budgets(caller)
    if isinstance(statuses, Refused):
        return _refused(request, statuses, session)
    changes = await service.budget_changes(caller, CHANGES_SHOWN)
    if isinstance(changes, Refused):
        return _refused(request, changes, session)
    return page(
        request,
        "budgets.html",
        status,
        session=session,
        bars=[budget_bar(s) for s in statuses],
        changes=[_change_line(c) for c in changes],
        scopes=[s.value for s in Scope],
        periods=[p.value for p in Period],
        form={"scope": "team", "scope_id": "", "usd": "", "period": "month", "soft": "", **(form or {})},
        error=error,
        saved=saved,
    )


async def set_budget(request: web.Request) -> web.Response:
    session = signed_in(request)
    assert session is not None  # the CSRF check passed, so there is a session
    posted = await request.post()
    form = {name: str(posted.get(name, "")) for name in ("scope", "scope_id", "usd", "period", "soft")}
    try:
        scope = Scope(form["scope"])
    except ValueError:
        return await _budgets_page(request, session, status=400, error="Pick team, channel or user.", form=form)
    result = await request.app[SERVICE].set_budget(
        caller_of(session),
        form["usd"],
        form["period"],
        scope=scope,
        # A team budget has no id, whatever was left in the field.
        scope_id="" if scope is Scope.TEAM else form["scope_id"].strip(),
        soft_threshold=_fraction(form["soft"]),
    )
    if isinstance(result, Refused):
        if result.reason is RefusalReason.INVALID_REQUEST:
            return await _budgets_page(request, session, status=400, error=result.detail, form=form)
        return _refused(request, result, session)
    # Post, redirect, get: a reload does not post the form again.
    raise web.HTTPSeeOther(f"{PREFIX}/budgets?saved=1")


def _fraction(text: str) -> float | None:
    """The alert threshold as typed: blank for the team's default; what is not a number goes to
    the core as NaN, which it refuses in its own words (the chat command's)."""
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        return math.nan


def _change_line(row: Mapping[str, Any]) -> dict[str, str]:
    def terms(prefix: str) -> str | None:
        if row[f"{prefix}_limit_micros"] is None:
            return None
        alert = round(100 * row[f"{prefix}_soft_threshold"])
        return f"{usd(row[f'{prefix}_limit_micros'])} per {row[f'{prefix}_period']}, alert at {alert}%"

    label = "team" if row["scope"] == Scope.TEAM.value else f"{row['scope']} {row['scope_id']}"
    old, new = terms("old"), terms("new")
    what = f"removed the {label} budget" if new is None else f"set the {label} budget to {new}"
    return {
        "at": datetime.fromtimestamp(row["created_at"], UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "who": f"{row['user']} ({row['platform'] or 'unknown'})",
        "what": what + (f" (was {old})" if old else " (new)"),
    }
