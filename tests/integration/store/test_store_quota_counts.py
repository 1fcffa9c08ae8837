"""The Store contract for quota_counts: the figures admission counts, read before a request
is made (to refuse it before its attachments are downloaded)."""

from __future__ import annotations

from bot.money.admission import Admission
from bot.money.quotas import QuotaLimits
from tests.support.jobs import new_job


async def test_quota_counts_reads_what_admission_counts(store):
    limits = QuotaLimits(user_images_per_day=10, user_concurrent_jobs=None, team_queued_jobs=10)
    assert await store.quota_counts("T1", "U1", limits) == {"team_queued_jobs": 0, "user_images_per_day": 0}
    for prompt in ("a", "b"):
        await store.submit(new_job(prompt=prompt), [], Admission(1000, "test-prices", limits))
    cancelled = await store.submit(new_job(prompt="c"), [], Admission(1000, "test-prices", limits))
    await store.cancel(cancelled.job_id)
    # A cancelled job is no image of today's and not queued; a limit of None is not counted.
    assert await store.quota_counts("T1", "U1", limits) == {"team_queued_jobs": 2, "user_images_per_day": 2}
    assert await store.quota_counts("T1", "U2", limits) == {"team_queued_jobs": 2, "user_images_per_day": 0}
    assert await store.quota_counts("T2", "U1", QuotaLimits(None, 5, None)) == {"user_concurrent_jobs": 0}
