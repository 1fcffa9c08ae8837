"""The overview's charts as geometry for server-rendered SVG: pure, so a test checks the figures.

No JavaScript charting library: the charts are static bars, SVG drawn on the server shows
them at once on any phone, needs no asset beyond the page, and carries its numbers in
data-* attributes and a table beside it (for screen readers and for tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.money import usd
from bot.money.budgets import BudgetStatus, when

DAY = 86400
# Colour-blind-safe (Okabe-Ito), one per model in name order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
PLOT_WIDTH = 600
PLOT_HEIGHT = 180


@dataclass(frozen=True)
class BudgetBar:
    label: str
    period: str
    limit: str
    spent: str
    held: str
    left: str
    resets: str
    used_micros: int
    limit_micros: int
    percent: float  # of the limit used (spent + held), capped at 100 for the bar's width
    threshold_percent: float  # where the soft-threshold line sits
    past_threshold: bool
    over: bool


def budget_bar(status: BudgetStatus) -> BudgetBar:
    b = status.budget
    used = status.used_micros
    percent = 100.0 if b.limit_micros <= 0 else min(100.0, 100.0 * used / b.limit_micros)
    return BudgetBar(
        label=b.label(),
        period=b.period.value,
        limit=usd(b.limit_micros),
        spent=usd(status.spent_micros),
        held=usd(status.reserved_micros),
        left=usd(status.remaining_micros),
        resets=when(status.resets_at),
        used_micros=used,
        limit_micros=b.limit_micros,
        percent=round(percent, 2),
        threshold_percent=round(100.0 * b.soft_threshold, 2),
        past_threshold=status.past_soft_threshold(),
        over=used >= b.limit_micros,
    )


@dataclass(frozen=True)
class Segment:
    model: str
    micros: int
    amount: str
    colour: str
    y: float
    height: float


@dataclass(frozen=True)
class Column:
    day: str  # YYYY-MM-DD (UTC)
    x: float
    width: float
    total_micros: int
    total: str
    segments: list[Segment]


@dataclass(frozen=True)
class DailyChart:
    width: int
    height: int
    columns: list[Column]
    legend: list[tuple[str, str]]  # (model, colour)
    max_total: str
    total: str
    labels: list[tuple[float, str, str]]  # under the axis: (x, text-anchor, YYYY-MM-DD)

    @property
    def empty(self) -> bool:
        return not any(c.total_micros for c in self.columns)


def daily_chart(rows: list[dict[str, Any]], today_midnight: float, days: int = 30) -> DailyChart:
    """Columns for the `days` UTC days ending today, each stacked by model (in name order,
    bottom up), heights proportional to the busiest day's total."""
    first = today_midnight - (days - 1) * DAY
    models = sorted({r["model"] for r in rows})
    colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}
    per_day: dict[int, dict[str, int]] = {i: {} for i in range(days)}
    for r in rows:
        index = round((r["day"] - first) / DAY)
        if 0 <= index < days:
            per_day[index][r["model"]] = per_day[index].get(r["model"], 0) + r["micros"]
    busiest = max((sum(d.values()) for d in per_day.values()), default=0)
    slot = PLOT_WIDTH / days
    columns = []
    for i in range(days):
        y = float(PLOT_HEIGHT)
        segments = []
        for model in models:
            micros = per_day[i].get(model, 0)
            if not micros:
                continue
            height = round(PLOT_HEIGHT * micros / busiest, 2)
            y = round(y - height, 2)
            segments.append(Segment(model, micros, usd(micros), colours[model], y, height))
        total = sum(per_day[i].values())
        day = datetime.fromtimestamp(first + i * DAY, UTC).strftime("%Y-%m-%d")
        columns.append(Column(day, round(i * slot + 1, 2), round(slot - 2, 2), total, usd(total), segments))
    return DailyChart(
        width=PLOT_WIDTH,
        height=PLOT_HEIGHT,
        columns=columns,
        legend=[(m, colours[m]) for m in models],
        max_total=usd(busiest),
        total=usd(sum(c.total_micros for c in columns)),
        labels=[(0.0, "start", columns[0].day), (float(PLOT_WIDTH), "end", columns[-1].day)],
    )


@dataclass(frozen=True)
class Rank:
    name: str
    micros: int
    amount: str
    percent: float  # of the first (biggest) one: the bar's width


def ranking(entries: list[tuple[str, int]]) -> list[Rank]:
    """Names with what they spent, most first, each bar against the biggest."""
    top = max((micros for _, micros in entries), default=0)
    return [
        Rank(name or "(none)", micros, usd(micros), round(100.0 * micros / top, 2) if top else 0.0)
        for name, micros in entries
    ]
