"""Bad input gets a friendly refusal and changes nothing."""

from __future__ import annotations

import pytest

from bot.catalog import load_catalog
from bot.service import STORE_DOWN, ImagineService
from bot.store.sqlite import SQLiteStore
from bot.types import Accepted, EditRequest, ImagineRequest, InputImage, RefusalReason, Refused
from tests.support.images import png_bytes


@pytest.fixture
async def service(store):
    return ImagineService(store, load_catalog())


def request(prompt="a koi pond", **kw) -> ImagineRequest:
    return ImagineRequest(team=kw.pop("team", "T1"), channel="C1", user="U1", platform="test", prompt=prompt, **kw)


INVALID, MODERATION = RefusalReason.INVALID_REQUEST, RefusalReason.MODERATION


@pytest.mark.parametrize(
    "kwargs, reason, says",
    [
        ({"prompt": "   "}, MODERATION, "what to draw"),
        ({"prompt": "x" * 2001}, MODERATION, "2,001 characters; the limit is 2,000"),
        ({"model": "turbo"}, INVALID, "Unknown model 'turbo'"),
        ({"aspect_ratio": "7:3"}, INVALID, "does not do aspect ratio '7:3'"),
        ({"model": "pro", "size": "512"}, INVALID, "does not do size '512'"),
        ({"model": "pro", "aspect_ratio": "1:8"}, INVALID, "does not do aspect ratio '1:8'"),
        ({"model": "lite"}, RefusalReason.UNPRICED, "No price is configured for lite"),
        ({"lane": "batch"}, INVALID, "Leave out --batch"),
        ({"relax": True}, INVALID, "Leave out --relax"),
        ({"images": (InputImage(b"<html>login</html>", "image/png"),)}, INVALID, "not an image"),
        ({"images": (InputImage(b"", "image/png"),)}, INVALID, "empty"),
    ],
)
async def test_invalid_requests_are_refused_and_queue_nothing(service, store, kwargs, reason, says):
    outcome = await service.submit(request(**kwargs))
    assert isinstance(outcome, Refused) and outcome.reason is reason
    assert says in outcome.detail
    assert "Traceback" not in outcome.detail and "Error(" not in outcome.detail
    assert await store.counts_by_state() == {}


@pytest.mark.parametrize(
    "kwargs, model, size, ratio",
    [
        ({}, "pro", "2K", "1:1"),
        ({"model": "gemini-3-pro-image-preview", "size": "4k"}, "pro", "4K", "1:1"),
        ({"model": "FLASH", "size": "512", "aspect_ratio": "1:8"}, "flash", "512", "1:8"),
        # legacy was shut down on 2026-10-02: its requests are made with flash.
        ({"model": "legacy", "aspect_ratio": "21:9"}, "flash", "1K", "21:9"),
    ],
)
async def test_accepted_requests_fill_defaults_and_normalise(service, kwargs, model, size, ratio):
    outcome = await service.submit(request(**kwargs))
    assert isinstance(outcome, Accepted)
    assert (outcome.model, outcome.size, outcome.aspect_ratio) == (model, size, ratio)
    assert outcome.estimate_usd > 0


async def test_store_down_refuses_instead_of_admitting(tmp_path):
    store = SQLiteStore(str(tmp_path / "x.db"))
    await store.open()
    service = ImagineService(store, load_catalog())
    await store.close()
    outcome = await service.submit(request())
    assert outcome == Refused(RefusalReason.UNAVAILABLE, STORE_DOWN)


async def test_edit_of_an_unknown_or_foreign_image_is_refused(service, store):
    outcome = await service.edit(
        EditRequest(
            team="T1", channel="C1", user="U1", platform="test", parent_image_id=999, instruction="make it night"
        )
    )
    assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.NOT_FOUND
    # An input image (not a bot result) of this team cannot be "edited" either.
    accepted = await service.submit(request(images=(InputImage(png_bytes(), "image/png"),)))
    [input_image] = await store.job_inputs(accepted.job_id)
    outcome = await service.edit(
        EditRequest(
            team="T1", channel="C1", user="U1", platform="test", parent_image_id=input_image.id, instruction="night"
        )
    )
    assert isinstance(outcome, Refused) and outcome.reason is RefusalReason.NOT_FOUND


async def test_duplicate_idempotency_key_returns_the_first_job(service, store):
    first = await service.submit(request(idempotency_key="slack:Ev1"))
    second = await service.submit(request(idempotency_key="slack:Ev1"))
    assert second.job_id == first.job_id and second.duplicate and not first.duplicate
    assert await store.counts_by_state() == {"queued": 1}
