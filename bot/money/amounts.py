"""Money as integers of micro-dollars in storage, Decimal in code.

Integers make SQL sums exact and make `spent + reserved + estimate <= limit`
an integer comparison inside the database.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

MICROS_PER_USD = 1_000_000


def to_micros(usd: Decimal) -> int:
    return int((usd * MICROS_PER_USD).to_integral_value(rounding=ROUND_HALF_UP))


def from_micros(micros: int) -> Decimal:
    return (Decimal(micros) / MICROS_PER_USD).quantize(Decimal("0.000001"))


def usd(micros: int) -> str:
    """For people: $0.13, $12.50; sub-cent amounts keep their digits ($0.0045)."""
    value = from_micros(micros)
    if value != 0 and abs(value) < Decimal("0.01"):
        return f"${value.normalize():f}"
    return f"${value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


def reported_usd(cost: Any) -> Decimal | None:
    """A route's own figure for what a call cost, in dollars (a gateway's ``usage.cost``),
    or None when it gave none or nothing usable: not a number, negative, infinite."""
    if cost is None or isinstance(cost, bool):
        return None
    try:
        value = Decimal(str(cost))  # str() first: no binary float error
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() and value >= 0 else None
