"""Billed like Google bills, decided without a call: the price table, the rates per part of
an answer, and a hold that covers a real-shaped answer (the settlements: tests/integration).

Google's pricing page (ai.google.dev/gemini-api/docs/pricing) prices an image model's output
twice: image tokens at the image rate, and text and thinking tokens at the model's text rate.
A real answer reports the image and the text together in candidatesTokenCount, itemises only
IMAGE, and reports thinking apart in thoughtsTokenCount.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.catalog import load_catalog
from bot.money.pricing import estimate, settle, tokens_cost
from bot.types import Lane, Usage


def test_the_price_table_is_googles_and_dated():
    catalog = load_catalog()
    rates = {
        alias: (m.image_output_per_million, m.input_per_million, m.text_output_per_million)
        for alias, m in catalog.models.items()
    }
    assert rates == {
        "pro": (Decimal("120"), Decimal("2"), Decimal("12")),
        "flash": (Decimal("60"), Decimal("0.5"), Decimal("3")),
        "legacy": (Decimal("30"), Decimal("0.3"), Decimal("2.5")),
        "lite": (None, None, None),  # no published price: refused, never free
    }
    assert catalog.version == "2026-11-30"
    tokens = {alias: m.image_tokens for alias, m in catalog.models.items()}
    assert tokens["pro"] == {"1K": 1120, "2K": 1120, "4K": 2000}
    assert tokens["flash"] == {"512": 747, "1K": 1120, "2K": 1680, "4K": 2520}
    assert tokens["legacy"] == {"1K": 1290}


def test_every_part_is_billed_at_its_own_rate():
    usage = Usage(prompt_tokens=2076, output_tokens=1332, image_tokens=1120, text_tokens=212, thoughts_tokens=137)
    flash = load_catalog().resolve("flash")
    # 1120 x $60/M + 2076 x $0.50/M + (212 + 137) x $3/M = 0.0672 + 0.001038 + 0.001047
    assert tokens_cost(flash, Lane.STANDARD, usage) == Decimal("0.069285")
    legacy = load_catalog().resolve("legacy")
    text_only = Usage(prompt_tokens=0, output_tokens=1330, image_tokens=1290, text_tokens=40)
    assert tokens_cost(legacy, Lane.STANDARD, text_only) == Decimal("0.0388")  # 0.0387 + 40 x $2.50/M


# Text plus thinking tokens in real answers: Pro 677 (the 4K answer; 209 at 1K), Flash 349
# (212 text, 137 thinking). 2.5 Flash Image does not think; 40 stands for a sentence of text.
OBSERVED_TEXT_AND_THINKING = {"pro": 677, "flash": 349, "legacy": 40}


@pytest.mark.parametrize(
    "alias, size",
    [
        ("pro", "1K"),
        ("pro", "2K"),
        ("pro", "4K"),
        ("flash", "512"),
        ("flash", "1K"),
        ("flash", "2K"),
        ("flash", "4K"),
        ("legacy", "1K"),
    ],
)
@pytest.mark.parametrize("lane", [Lane.STANDARD, Lane.BATCH])
def test_the_hold_covers_a_real_shaped_answer(alias, size, lane):
    model = load_catalog().resolve(alias)
    prompt = "a lighthouse on a cliff at dusk, oil painting"
    usage = Usage(
        prompt_tokens=len(prompt) + 100,
        image_tokens=model.image_tokens[size],
        text_tokens=OBSERVED_TEXT_AND_THINKING[alias],
    )
    assert estimate(model, size, lane, prompt_chars=len(prompt)) >= settle(model, size, lane, usage)


@pytest.mark.parametrize("alias", ["pro", "flash", "legacy"])
def test_the_hold_has_room_for_the_text_allowance_but_not_twice_it(alias):
    model = load_catalog().resolve(alias)
    size = model.sizes[-1]
    allowance = model.text_allowance_tokens
    assert allowance >= 2 * OBSERVED_TEXT_AND_THINKING[alias]  # the margin over what was seen
    held = estimate(model, size, Lane.STANDARD, prompt_chars=0)
    within = Usage(prompt_tokens=100, image_tokens=model.image_tokens[size], text_tokens=allowance)
    beyond = Usage(prompt_tokens=100, image_tokens=model.image_tokens[size], text_tokens=2 * allowance)
    assert settle(model, size, Lane.STANDARD, within) <= held < settle(model, size, Lane.STANDARD, beyond)
