"""What an image costs: the worst-case estimate before, the settled cost after.

All money is Decimal and rounded to the micro-dollar only at the end, so
a price of $0.134 never turns into 0.13400000000000001.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal

from bot.catalog import ModelInfo
from bot.types import InvalidRequest, Lane, Usage

MICRO = Decimal("0.000001")
PER_MILLION = Decimal(1_000_000)
# Input images cost about this many input tokens each (Google's figure for Flash).
TOKENS_PER_INPUT_IMAGE = 1120
# A prompt is at most one token per character (CJK text comes close), plus the
# request's own framing.
PROMPT_OVERHEAD_TOKENS = 100


class Unpriced(InvalidRequest):
    """No price is configured: refuse rather than charge $0."""


def _lane_factor(model: ModelInfo, lane: Lane) -> Decimal:
    """Each lane's price against Standard: Batch and Flex at the model's discount (both
    "50%" on Google's tiers page), Priority at its catalog multiplier."""
    if lane in (Lane.BATCH, Lane.FLEX):
        return model.batch_discount
    if lane is Lane.PRIORITY:
        return model.priority_multiplier
    return Decimal(1)


def image_price(model: ModelInfo, size: str, lane: Lane) -> Decimal:
    price = model.price.get(size)
    if price is None:
        raise Unpriced(
            f"No price is configured for {model.alias} at {size}, so it can't be used. "
            "An operator can add one in the IMAGINE_CONFIG file."
        )
    return price * _lane_factor(model, lane)


def at_standard(model: ModelInfo, lane: Lane, charged: Decimal) -> Decimal:
    """What `charged` on `lane` would have cost on the Standard lane: the charge divided by the
    lane's factor, to the micro-dollar."""
    return (charged / _lane_factor(model, lane)).quantize(MICRO, rounding=ROUND_HALF_UP)


def estimate(model: ModelInfo, size: str, lane: Lane, input_images: int = 0, prompt_chars: int = 2000) -> Decimal:
    """The most this request should cost: what gets reserved against budgets.

    The image part is the larger of the table's per-image price and its
    token price ($0.134 vs 1,120 x $120/M = $0.1344 on Pro); the input is the
    prompt and images at their worst; the answer's text and thinking get the
    model's allowance at its text rate. Settlement from reported usage stays
    under this unless an answer thinks past the allowance.
    """
    factor = _lane_factor(model, lane)
    cost = image_price(model, size, lane)
    tokens = model.image_tokens.get(size)
    if tokens and model.image_output_per_million is not None:
        cost = max(cost, tokens * model.image_output_per_million / PER_MILLION * factor)
    if model.input_per_million is not None:
        tokens = prompt_chars + PROMPT_OVERHEAD_TOKENS + input_images * TOKENS_PER_INPUT_IMAGE
        cost += tokens * model.input_per_million / PER_MILLION * factor
    if model.text_output_per_million is not None:
        cost += model.text_allowance_tokens * model.text_output_per_million / PER_MILLION * factor
    return cost.quantize(MICRO, rounding=ROUND_CEILING)


def settle(model: ModelInfo, size: str, lane: Lane, usage: Usage | None) -> Decimal:
    """The cost of a finished call, from the usage the provider reported.

    Falls back to the table's per-image price when the provider reported no
    image tokens (some routes don't), so a success is never free.
    """
    if usage is None or model.image_output_per_million is None or not usage.image_tokens:
        return image_price(model, size, lane).quantize(MICRO, rounding=ROUND_HALF_UP)
    return tokens_cost(model, lane, usage)


def tokens_cost(model: ModelInfo, lane: Lane, usage: Usage) -> Decimal:
    """Cost of exactly the tokens reported (also for blocked calls that were billed)."""
    cost = Decimal(0)
    if model.image_output_per_million is not None:
        cost += usage.image_tokens * model.image_output_per_million
    if model.input_per_million is not None:
        cost += usage.prompt_tokens * model.input_per_million
    if model.text_output_per_million is not None:
        cost += (usage.text_tokens + usage.thoughts_tokens) * model.text_output_per_million
    cost = cost / PER_MILLION * _lane_factor(model, lane)
    return cost.quantize(MICRO, rounding=ROUND_HALF_UP)
