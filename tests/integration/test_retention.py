"""The pruner the worker role runs (bot/retention.py): every kind past its days, in batches, its
progress in /metrics; the disk watch's operator alert, once per episode; doctor's sizes; and
the `[retention]` table read at start-up. Time moves on a FakeClock, the disk is a stand-in."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot import bootstrap
from bot.alerts import CallWatch
from bot.catalog import load_catalog
from bot.doctor import doctor
from bot.metrics import Metrics
from bot.retention import DiskUsage, Pruner, RetentionSettings
from bot.service import Caller, ImagineService
from bot.settings import Settings
from bot.store.ports import final_delivery_key
from bot.store.sqlite import SQLiteStore
from bot.types import JobState, NewDelivery, Refused
from tests.support.clock import FakeClock
from tests.support.gallery import png, render
from tests.support.jobs import new_job
from tests.support.probe import eventually

DAY = 86400.0
GB = 1024**3


class Disk:
    """A disk whose fill the test sets; the pruner reads it where the database lives."""

    def __init__(self, percent: float = 50) -> None:
        self.percent = percent
        self.asked: list[str] = []

    def __call__(self, path: str) -> DiskUsage:
        self.asked.append(path)
        used = int(100 * GB * self.percent / 100)
        return DiskUsage(100 * GB, used, 100 * GB - used)


# The disk watch measures the disk the SQLite file is on (a PostgreSQL server's is not ours).
ON_SQLITE_ONLY = pytest.mark.parametrize("store_factory", ["sqlite"], indirect=True)


def worker_settings(tmp_path, fake, **extra) -> Settings:
    """A worker's settings on imagine.db in tmp_path, its Gemini the loopback fake."""
    database_url = f"sqlite:///{tmp_path / 'imagine.db'}"
    return Settings(_env_file=None, database_url=database_url, gemini_api_key="k", gemini_base_url=fake.url, **extra)


def sample(metrics: Metrics, line_start: str) -> float:
    for line in metrics.render({}).decode().splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in /metrics")


@ON_SQLITE_ONLY
async def test_a_pass_prunes_each_kind_in_batches_and_shows_its_progress_in_metrics(store, clock, tmp_path):
    for n in range(5):
        await render(store, f"image {n}", 1_000, color=f"#{n:02x}2020")
    await store.record_moderation("T1", "C1", "U1", "banned_term", "a refused prompt")
    clock.advance(91 * DAY)
    fresh = await render(store, "a recent image", 1_000, color="green")
    metrics, disk = Metrics(), Disk()
    pruner = Pruner(store, RetentionSettings(), metrics, None, batch=2, clock=clock, disk_usage=disk)

    pruned = await pruner.run_once()

    assert pruned["images"] == 5 and pruned["moderation_text"] == 1
    assert (await store.get_image(fresh)).data  # recent: kept
    assert sample(metrics, 'imagine_pruned_rows_total{table="images"}') == 5
    assert sample(metrics, 'imagine_pruned_rows_total{table="moderation_text"}') == 1
    assert sample(metrics, "imagine_prune_last_run_timestamp_seconds") == clock()
    sizes = await store.storage_sizes()
    assert sample(metrics, "imagine_blob_bytes") == sizes.blob_bytes > 0  # the recent image's bytes
    assert sample(metrics, "imagine_database_bytes") == sizes.database_bytes
    assert sample(metrics, "imagine_disk_free_bytes") == 50 * GB
    assert sample(metrics, "imagine_disk_used_ratio") == 0.5
    assert disk.asked == [str(tmp_path)]  # the SQLite file's own disk

    assert (await pruner.run_once())["images"] == 0  # nothing twice
    assert sample(metrics, 'imagine_pruned_rows_total{table="images"}') == 5


async def test_zero_days_keeps_that_kind_for_ever(store, clock):
    await render(store, "an old image", 1_000, color="red")
    clock.advance(1000 * DAY)
    settings = RetentionSettings(images_days=0)
    pruned = await Pruner(store, settings, Metrics(), None, clock=clock, disk_usage=Disk()).run_once()
    assert "images" not in pruned
    assert await store.gallery_count("T1") == 1


@ON_SQLITE_ONLY
async def test_a_full_disk_alerts_the_operators_once_per_episode(store, clock):
    disk = Disk(percent=93)
    settings = RetentionSettings(disk_alert_percent=90)
    watch = CallWatch(store, ["slack"], clock=clock)
    pruner = Pruner(store, settings, Metrics(), watch, clock=clock, disk_usage=disk)

    async def alerts() -> list[str]:
        claimed = await store.claim_deliveries(["slack"], 10, 60)
        for each in claimed:
            await store.mark_delivered(each.id)
        return [d.payload["text"] for d in claimed]

    await pruner.run_once()
    [alert] = await alerts()
    assert "93% full" in alert and "alert line 90%" in alert and "doctor" in alert
    clock.advance(3600)
    await pruner.run_once()  # still full: the same episode, said once
    disk.percent = 88  # under the line, but not well under: still the same episode
    await pruner.run_once()
    assert await alerts() == []
    disk.percent = 70
    await pruner.run_once()
    [recovered] = await alerts()
    assert recovered.startswith("Recovered") and "70% full" in recovered
    disk.percent = 95
    await pruner.run_once()
    [again] = await alerts()
    assert "95% full" in again


async def test_doctor_shows_the_database_the_image_bytes_and_the_disk(tmp_path):
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'imagine.db'}")
    runtime = await bootstrap.build(settings, notifiers=[])
    try:
        await render(runtime.store, "a red fox", 1_000, color="red")
        lines: list[str] = []
        await doctor(runtime, settings, out=lines.append)
        blob_bytes = (await runtime.store.storage_sizes()).blob_bytes
    finally:
        await runtime.close()
    storage = [line for line in lines if line.startswith("storage")]
    assert any("database" in line and "pages of" in line and "file with its WAL" in line for line in storage)
    [blobs] = [line for line in storage if "image bytes" in line]
    assert blobs == f"storage   image bytes {blob_bytes} bytes in 1 distinct images"
    assert any("image bytes" in line and "in 1 distinct images" in line for line in storage)
    assert any(f"disk at {tmp_path}" in line and "% used" in line and "B free" in line for line in storage)
    assert any(line.startswith("retention images 90 d") for line in lines)


async def test_the_worker_role_runs_a_pruner_with_the_configured_days(tmp_path, fake):
    config = tmp_path / "imagine.toml"
    config.write_text("[retention]\nimages_days = 30\ndisk_alert_percent = 80\n")
    settings = worker_settings(tmp_path, fake, imagine_config=config)
    runtime = await bootstrap.build(settings, notifiers=[])
    try:
        assert runtime.pruner is None  # a web or Discord process prunes nothing
        runtime.add_worker()
        assert runtime.pruner is not None
        assert (runtime.retention.images_days, runtime.retention.disk_alert_percent) == (30, 80)
        assert runtime.retention.inputs_days == 30  # the default
    finally:
        await runtime.close()


async def test_a_running_worker_process_prunes_what_is_past_its_days(tmp_path, fake):
    database = tmp_path / "imagine.db"
    # An image made 100 days ago, on the same file the worker then opens.
    earlier = SQLiteStore(str(database), clock=FakeClock(time.time() - 100 * DAY))
    await earlier.open()
    old = await render(earlier, "an old image", 1_000, color="red")
    await earlier.close()
    settings = worker_settings(tmp_path, fake)
    runtime = await bootstrap.build(settings, notifiers=[])
    stop = asyncio.Event()
    try:
        runtime.add_worker(concurrency=1)
        running = asyncio.create_task(runtime.run(stop))

        async def pruned() -> bool:
            return await runtime.store.get_image(old) is None

        await eventually(pruned, what="the worker's pruner removing a 100-day-old image")

        def counted() -> bool:  # the pruner counts once its transaction is back, maybe after our read
            try:
                return sample(runtime.metrics, 'imagine_pruned_rows_total{table="images"}') == 1
            except AssertionError:  # not counted yet
                return False

        await eventually(counted, what="the pruned image counted in /metrics")
        stop.set()
        await asyncio.wait_for(running, 10)
    finally:
        stop.set()
        await runtime.close()


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ("images_days = -1", "[retention] images_days: expected at least 0, found -1"),
        ('outbox_days = "30"', '[retention] outbox_days: expected a whole number, found "30"'),
        ("disk_alert_percent = 0", "[retention] disk_alert_percent: expected at least 1, found 0"),
        ("image_days = 30", "[retention] image_days: unknown key; expected one of dedupe_days, disk_alert_percent"),
    ],
)
async def test_a_bad_retention_table_stops_start_up_naming_the_key(tmp_path, table, named):
    config = tmp_path / "imagine.toml"
    config.write_text(f"[retention]\n{table}\n")
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'imagine.db'}", imagine_config=config)
    with pytest.raises(bootstrap.ConfigError, match="retention") as info:
        await bootstrap.build(settings, notifiers=[])
    assert str(info.value).startswith(f"IMAGINE_CONFIG {config}: ") and named in str(info.value)


async def test_a_reroll_of_a_job_whose_pictures_were_pruned_is_refused_not_run_without_them(store, clock):
    service = ImagineService(store, load_catalog(), clock=clock)
    with_photo = await store.submit(new_job(prompt="make my photo blue"), [png("gray")])
    leased = await store.lease("w", 60, only_job_id=with_photo.job_id)
    await store.fail(
        leased.id,
        leased.worker_id,
        leased.attempt,
        error_class="bad_request",
        detail="x",
        retryable=False,
        final_state=JobState.FAILED,
        retry_at=None,
        delivery=NewDelivery(final_delivery_key(leased.id), "failure", {}),
    )
    clock.advance(31 * DAY)
    await Pruner(store, RetentionSettings(), Metrics(), None, clock=clock, disk_usage=Disk()).run_once()

    refused = await service.rerun(with_photo.job_id, Caller("T1", "U1"), platform="slack", channel="C1")

    assert isinstance(refused, Refused) and "pictures attached" in refused.detail
    assert await store.counts_by_state() == {"failed": 1}  # nothing new queued, nothing held
