"""The overview's chart geometry (adapters/web/charts.py): the figures a page draws."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.web.charts import PLOT_HEIGHT, budget_bar, daily_chart, ranking
from bot.money.budgets import Budget, BudgetStatus, Period, Scope

TODAY = datetime(2026, 11, 30, tzinfo=UTC).timestamp()
DAY = 86400


def test_days_stack_by_model_scaled_to_the_busiest_day():
    rows = [
        {"day": TODAY, "model": "pro", "micros": 300_000},
        {"day": TODAY, "model": "flash", "micros": 100_000},
        {"day": TODAY - 2 * DAY, "model": "pro", "micros": 200_000},
        {"day": TODAY - 40 * DAY, "model": "pro", "micros": 999_000},  # outside the window: not drawn
    ]
    chart = daily_chart(rows, TODAY, 30)
    assert len(chart.columns) == 30
    assert chart.columns[0].day == "2026-11-01" and chart.columns[-1].day == "2026-11-30"
    today = chart.columns[-1]
    assert today.total_micros == 400_000
    # Name order, bottom up: flash first, then pro on top of it.
    assert [(s.model, s.height) for s in today.segments] == [("flash", 45.0), ("pro", 135.0)]
    assert today.segments[0].y == PLOT_HEIGHT - 45 and today.segments[1].y == 0
    assert [(s.model, s.height) for s in chart.columns[-3].segments] == [("pro", 90.0)]
    assert chart.legend == [("flash", "#0072B2"), ("pro", "#E69F00")]
    assert (chart.total, chart.max_total) == ("$0.60", "$0.40")
    assert not chart.empty


def test_no_spend_draws_an_empty_chart():
    chart = daily_chart([], TODAY, 30)
    assert chart.empty and all(not c.segments for c in chart.columns) and chart.total == "$0.00"


def test_a_budget_bar_shows_used_against_the_limit_and_the_threshold():
    budget = Budget("T1", Scope.TEAM, "", 10_000_000, Period.MONTH, soft_threshold=0.8)
    bar = budget_bar(BudgetStatus(budget, spent_micros=6_000_000, reserved_micros=2_500_000, resets_at=TODAY))
    assert (bar.percent, bar.threshold_percent, bar.past_threshold, bar.over) == (85.0, 80.0, True, False)
    assert (bar.limit, bar.spent, bar.held, bar.left) == ("$10.00", "$6.00", "$2.50", "$1.50")
    over = budget_bar(BudgetStatus(budget, spent_micros=12_000_000, reserved_micros=0, resets_at=TODAY))
    assert over.percent == 100.0 and over.over


def test_a_ranking_measures_each_bar_against_the_biggest():
    ranks = ranking([("U1", 400_000), ("U2", 100_000), ("", 50_000)])
    assert [(r.name, r.amount, r.percent) for r in ranks] == [
        ("U1", "$0.40", 100.0),
        ("U2", "$0.10", 25.0),
        ("(none)", "$0.05", 12.5),
    ]
    assert ranking([]) == []
