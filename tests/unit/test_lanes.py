"""The Flex, Batch and Priority lanes as prices and flags: half price, the Priority multiplier,
Slack's lane flags and the usage table (the lanes end to end: tests/integration).

Google's tiers page (ai.google.dev/gemini-api/docs/optimization): Flex "50% discount", "Minutes
(1-15 min target)", "Best-effort (Sheddable)"; Priority "75% to 100% more than standard",
"High (Non-sheddable)".
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.slack.parse import parse_imagine
from bot.catalog import load_catalog
from bot.money import pricing
from bot.types import InvalidRequest, Lane, Usage


def test_flex_and_batch_are_half_price_and_priority_is_the_catalog_multiplier():
    pro = load_catalog().resolve("pro")
    assert pricing.image_price(pro, "2K", Lane.FLEX) == Decimal("0.067")  # the figure for Pro 2K
    assert pricing.image_price(pro, "2K", Lane.BATCH) == Decimal("0.067")
    assert pro.priority_multiplier == Decimal("1.8")
    assert pricing.image_price(pro, "2K", Lane.PRIORITY) == Decimal("0.134") * Decimal("1.8")
    usage = Usage(prompt_tokens=12, output_tokens=1150, image_tokens=1120, text_tokens=30, thoughts_tokens=240)
    standard = pricing.tokens_cost(pro, Lane.STANDARD, usage)
    # Image, text, thinking and input all at the lane's rate, exactly as Standard is billed.
    assert pricing.tokens_cost(pro, Lane.FLEX, usage) == (standard / 2).quantize(pricing.MICRO)
    exact = (1120 * 120 + 12 * 2 + 270 * 12) * Decimal("1.8") / 1_000_000
    assert pricing.tokens_cost(pro, Lane.PRIORITY, usage) == exact.quantize(pricing.MICRO)


@pytest.mark.parametrize(
    "text, lane",
    [
        ("a fox --relax", "flex"),
        ("a fox --batch", "batch"),
        ("a fox —priority", "priority"),
        ("a fox", None),
    ],
)
def test_slack_flags_name_the_lanes(text, lane):
    parsed = parse_imagine(text)
    assert (parsed.prompt, parsed.lane, parsed.relax) == ("a fox", lane, lane == "flex")


def test_two_lanes_at_once_are_refused():
    with pytest.raises(InvalidRequest, match="Choose one of --relax, --batch and --priority"):
        parse_imagine("a fox --relax --priority")


def test_the_usage_table_sums_the_charges_by_lane():
    from bot.reports import render_ledger

    def row(job_id, entry, lane, micros):
        return {
            "created_at": 1_800_000_000.0,
            "job_id": job_id,
            "entry": entry,
            "team": "T1",
            "channel": "C1",
            "user": "U1",
            "model": "pro",
            "size": "2K",
            "lane": lane,
            "status": "succeeded",
            "cost_micros": micros,
            "prompt_tokens": None,
            "output_tokens": None,
            "image_tokens": None,
            "price_version": "v",
        }

    rows = [
        row(1, "settlement", "flex", 67_200),
        row(2, "settlement", "batch", 67_300),
        row(3, "reservation", "priority", 300_000),
        row(3, "settlement", "priority", 241_920),
        row(4, "settlement", "flex", 70_000),
    ]
    table = render_ledger(rows, "table", 1_800_000_000.0)
    by_lane = table.split("Charged by lane:\n", 1)[1].splitlines()[:3]
    assert [line.split() for line in by_lane] == [["batch", "$0.07"], ["flex", "$0.14"], ["priority", "$0.24"]]
