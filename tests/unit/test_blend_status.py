"""What a blend's "Queued" status says: the estimate, which prices every input, names them."""

from __future__ import annotations

from decimal import Decimal

from adapters.status import queued
from bot.types import Accepted


def accepted(**kw) -> Accepted:
    return Accepted(
        job_id=1, position=1, model="pro", size="1K", aspect_ratio="1:1", estimate_usd=Decimal("0.165378"), **kw
    )


def test_a_blend_s_estimate_says_what_it_covers():
    assert queued(accepted(input_images=3)) == "Queued, next up · pro 1K 1:1 · about $0.17 for a blend of 3 images"
    assert "blend" not in queued(accepted(input_images=1)) and "blend" not in queued(accepted())
    assert "about $0.17 for a blend of 3 images (half price)" in queued(
        accepted(input_images=3, relaxed=True, lane="batch")
    )
    assert "about $0.17 for a blend of 3 images · relaxed" in queued(accepted(input_images=3, lane="flex"))
