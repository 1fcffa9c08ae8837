"""The core's check of a request's attachments before they are downloaded: from their
declared names, sizes and types, the model's image limit, the quotas and the budgets."""

from __future__ import annotations

from bot.attachments import DeclaredFile
from bot.catalog import load_catalog
from bot.money.admission import Admission
from bot.money.budgets import Budget, Period, Scope
from bot.money.quotas import QuotaLimits
from bot.service import ImagineService
from bot.types import EditRequest, ImagineRequest, RefusalReason
from policies.config import PolicyBook
from tests.support.jobs import new_job

PHOTO = DeclaredFile("photo.png", 20_000, "image/png")


def request(**kw) -> ImagineRequest:
    return ImagineRequest(prompt="like this", team="T1", channel="C1", user="U1", platform="slack", **kw)


async def test_what_the_files_say_is_checked_first(sqlite_store):
    store = sqlite_store
    service = ImagineService(store, load_catalog())
    assert await service.check_attachments(request(), [PHOTO]) is None
    assert await service.check_attachments(request(), []) is None
    big = await service.check_attachments(request(), [DeclaredFile("big.png", 15 * 1024 * 1024, "image/png")])
    assert big is not None and big.detail.startswith("big.png is larger than 14 MB")
    gif = await service.check_attachments(request(), [DeclaredFile("cat.gif", 10, "image/gif")])
    assert gif is not None and "cat.gif is not an image I can use" in gif.detail
    # Parameters on the type and its case do not matter; an undeclared type is left to the bytes.
    fine = [DeclaredFile("a.jpg", 10, "Image/JPEG; q=1"), DeclaredFile("b", None, None)]
    assert await service.check_attachments(request(), fine) is None
    many = await service.check_attachments(request(model="pro"), [PHOTO] * 15)
    assert many is not None and many.reason is RefusalReason.INVALID_REQUEST
    assert many.detail.startswith("pro takes up to 14 images; you sent 15.")


async def test_a_blend_over_the_models_limit_names_the_number_allowed(sqlite_store, tmp_path):
    config = tmp_path / "imagine.toml"
    config.write_text("[models.pro]\nmax_reference_images = 3\n")
    service = ImagineService(sqlite_store, load_catalog(config))
    assert await service.check_attachments(request(), [PHOTO] * 3) is None
    five = await service.check_attachments(request(), [PHOTO] * 5)
    assert five is not None and five.detail == "pro takes up to 3 images; you sent 5. Send fewer images."
    # An edit's image counts too (the model is sent it with the attachments).
    edit = EditRequest(
        parent_image_id=1, instruction="blend these in", team="T1", channel="C1", user="U1", platform="slack"
    )
    assert await service.check_attachments(edit, [PHOTO] * 2) is None
    three = await service.check_attachments(edit, [PHOTO] * 3)
    assert three is not None
    assert three.detail == "pro takes up to 3 images; you sent 4, counting the image being edited. Send fewer images."


async def test_a_team_with_no_budget_yet_downloads_nothing(sqlite_store):
    store = sqlite_store
    service = ImagineService(store, load_catalog(), policies=PolicyBook(teams={"T1": {"default_team_budget_usd": 0}}))
    refused = await service.check_attachments(request(), [PHOTO])
    assert refused is not None and refused.reason is RefusalReason.BUDGET_EXHAUSTED


async def test_a_budget_used_up_or_a_quota_reached_downloads_nothing(sqlite_store):
    store = sqlite_store
    service = ImagineService(store, load_catalog(), policies=PolicyBook(teams={"T1": {"user_concurrent_jobs": 1}}))
    limits = QuotaLimits(None, None, None)
    await store.set_budget(Budget("T1", Scope.TEAM, "", 50_000, Period.MONTH), "UADMIN")
    await store.submit(new_job(), [], Admission(50_000, "test-prices", limits))  # holds all of it
    refused = await service.check_attachments(request(), [PHOTO])
    assert refused is not None and refused.reason is RefusalReason.BUDGET_EXHAUSTED
    assert "budget of $0.05 per month is used up" in refused.detail and "Nothing was charged" in refused.detail
    await store.set_budget(Budget("T1", Scope.TEAM, "", 10_000_000, Period.MONTH), "UADMIN")
    refused = await service.check_attachments(request(), [PHOTO])
    assert refused is not None and refused.reason is RefusalReason.QUOTA_EXCEEDED
    assert "You already have 1 of 1 allowed jobs queued or running" in refused.detail


async def test_a_repeated_request_is_not_refused_for_the_job_it_already_made(sqlite_store):
    store = sqlite_store
    service = ImagineService(store, load_catalog(), policies=PolicyBook(teams={"T1": {"user_concurrent_jobs": 1}}))
    await store.submit(new_job(key="slack:event:Ev1"), [], Admission(1000, "test-prices", QuotaLimits(None, 1, None)))
    # A retried event: its submit answers with the first job, never "you already have 1 of 1".
    assert await service.check_attachments(request(idempotency_key="slack:event:Ev1"), [PHOTO]) is None
    refused = await service.check_attachments(request(idempotency_key="slack:event:Ev2"), [PHOTO])
    assert refused is not None and refused.reason is RefusalReason.QUOTA_EXCEEDED
