"""Retention and disk: the `[retention]` settings, the pruner the worker role runs, and the
disk-usage watch that alerts the operators once per episode.

The pruner asks the store (bot/store/retention.py) to prune each kind a batch at a time until
a batch comes back short, so no transaction is long and several worker processes can prune at
once (each row is pruned, and counted, once). Money history is never pruned: a job row that a
ledger row names stays, whatever `jobs_days` says.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from bot.alerts import EPISODE_BUCKET, CallWatch
from bot.metrics import Metrics
from bot.store.ports import Store, StoreUnavailable
from bot.types import StorageSizes

log = logging.getLogger(__name__)
DAY = 86400.0
Days = Annotated[int, Field(ge=0, strict=True)]


class RetentionSettings(BaseModel):
    """`[retention]` in IMAGINE_CONFIG: days each kind of row is kept (0 keeps it for ever)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    images_days: Days = 90  # result images' bytes (the row stays, as a deleted image's does)
    inputs_days: Days = 30  # input pictures of finished jobs (a Reroll then sends none)
    jobs_days: Days = 365  # finished jobs no ledger row names (prompt-cache hits), closed batches
    outbox_days: Days = 30  # delivered (or given up) messages
    dedupe_days: Days = 7  # idempotency keys, expired confirmations and sign-in claims, rate slots
    moderation_text_days: Days = 30  # refused prompts' text; the refusal itself stays, counted
    disk_alert_percent: Annotated[int, Field(ge=1, le=100, strict=True)] = 90
    # Where to measure free disk: by default the SQLite file's directory; for PostgreSQL a
    # path on the server's data disk, when this host mounts it (else it is not measured).
    disk_path: str | None = None

    def cutoffs(self) -> list[tuple[str, int]]:
        """(kind, days) in pruning order: images before the jobs that made them."""
        return [
            ("images", self.images_days),
            ("inputs", self.inputs_days),
            ("outbox", self.outbox_days),
            ("jobs", self.jobs_days),
            ("batches", self.jobs_days),
            ("approvals", self.jobs_days),  # answered requests to moderators, as the jobs they ran
            ("confirmations", self.dedupe_days),
            ("sign_in_links", self.dedupe_days),
            ("rate_slots", self.dedupe_days),
            ("idempotency_keys", self.dedupe_days),
            ("moderation_text", self.moderation_text_days),
        ]


def human(size: int) -> str:
    """Bytes as a person reads them: 812 bytes, 3.4 GB."""
    if size < 1024:
        return f"{size} bytes"
    exponent = min(3, int(math.log(size, 1024)))  # 1 and more, since size >= 1024
    return f"{size / 1024**exponent:.1f} {('KB', 'MB', 'GB')[exponent - 1]}"


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


@dataclass(frozen=True)
class Storage:
    """The store's sizes, with its file and disk where this host can see them."""

    sizes: StorageSizes
    file_bytes: int | None  # the SQLite file and its WAL, as the disk holds them
    disk_path: str | None
    disk: DiskUsage | None

    def lines(self) -> list[str]:
        """doctor's lines: the database, the image bytes, the disk."""
        database = f"database {human(self.sizes.database_bytes)} ({self.sizes.detail})"
        if self.file_bytes is not None:
            database += f", file with its WAL {human(self.file_bytes)}"
        lines = [database]
        if self.sizes.tables:
            lines.append("tables " + ", ".join(f"{n} {human(b)}" for n, b in self.sizes.tables.items()))
        lines.append(f"image bytes {human(self.sizes.blob_bytes)} in {self.sizes.blobs} distinct images")
        if self.disk is None:
            lines.append("disk not measured (set [retention] disk_path to a path on the database's disk)")
        else:
            lines.append(f"disk at {self.disk_path}: {percent_used(self.disk):.0f}% used, {human(self.disk.free)} free")
        return lines


def percent_used(disk: DiskUsage) -> float:
    return 100.0 * disk.used / disk.total if disk.total else 0.0


def disk_path(store: Store, settings: RetentionSettings) -> str | None:
    if settings.disk_path:
        return settings.disk_path
    return os.path.dirname(os.path.abspath(store.database_file)) if store.database_file else None


def _disk_usage(path: str) -> DiskUsage:
    total, used, free = shutil.disk_usage(path)
    return DiskUsage(total, used, free)


async def measure(
    store: Store, settings: RetentionSettings, disk_usage: Callable[[str], DiskUsage] = _disk_usage
) -> Storage:
    sizes = await store.storage_sizes()
    path = disk_path(store, settings)
    file_bytes, disk = await asyncio.to_thread(_on_disk, store.database_file, path, disk_usage)
    return Storage(sizes, file_bytes, path, disk)


def _on_disk(
    database_file: str | None, path: str | None, disk_usage: Callable[[str], DiskUsage]
) -> tuple[int | None, DiskUsage | None]:
    """The SQLite file's bytes with its WAL (None for a server), and the disk's usage at `path`."""
    file_bytes = None
    if database_file:
        names = (database_file, f"{database_file}-wal")
        file_bytes = sum(os.path.getsize(name) for name in names if os.path.exists(name))
    disk = None
    if path is not None:
        try:
            disk = disk_usage(path)
        except OSError as exc:
            log.warning("disk usage of %s cannot be read: %s", path, exc)
    return file_bytes, disk


class Pruner:
    """Prunes every kind past its days, then measures the store and its disk (the metrics, and
    an operator alert when the disk is fuller than `disk_alert_percent`). The worker role runs
    it every `every` seconds; each process's pruner may overlap another's safely."""

    def __init__(
        self,
        store: Store,
        settings: RetentionSettings,
        metrics: Metrics,
        watch: CallWatch | None,
        *,
        batch: int = 500,
        every: float = 600.0,
        clock: Callable[[], float] = time.time,
        disk_usage: Callable[[str], DiskUsage] = _disk_usage,
    ) -> None:
        self._store = store
        self._settings = settings
        self._metrics = metrics
        self._watch = watch
        self._batch = batch
        self._every = every
        self._clock = clock
        self._disk_usage = disk_usage
        self._disk_episode: str | None = None  # the key of the open disk alert
        self._opened: Counter[int] = Counter()  # disk episodes opened per ten minutes

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once(stop)
            except StoreUnavailable as exc:
                log.warning("pruner: store unavailable, trying again later: %s", exc)
            except Exception:  # a pruning bug must not stop the worker's process
                log.exception("pruner: run failed")
            try:
                await asyncio.wait_for(stop.wait(), self._every)
            except TimeoutError:
                pass

    async def run_once(self, stop: asyncio.Event | None = None) -> dict[str, int]:
        """One pass over every kind; returns the rows pruned by kind."""
        now = self._clock()
        pruned: dict[str, int] = {}
        for kind, days in self._settings.cutoffs():
            if days == 0:
                continue
            pruned[kind] = 0
            while stop is None or not stop.is_set():
                done = await self._store.prune(kind, now - days * DAY, self._batch)
                pruned[kind] += done
                self._metrics.pruned(kind, done)
                if done < self._batch:
                    break
                await asyncio.sleep(0)  # a long backlog: let the worker's own work in between batches
        self._metrics.prune_ran(self._clock())
        if any(pruned.values()):
            log.info("pruned %s", ", ".join(f"{kind} {n}" for kind, n in pruned.items() if n))
        await self.check_storage()
        return pruned

    async def check_storage(self) -> Storage:
        storage = await measure(self._store, self._settings, self._disk_usage)
        self._metrics.storage(storage.sizes.database_bytes, storage.sizes.blob_bytes, storage.disk)
        if storage.disk is not None:
            await self._watch_disk(storage.disk_path or "", storage.disk)
        return storage

    async def _watch_disk(self, path: str, disk: DiskUsage) -> None:
        """Alert once when the disk passes the line, and once when it is back 5 points under."""
        used, line = percent_used(disk), self._settings.disk_alert_percent
        if used >= line and self._disk_episode is None:
            # Keyed like CallWatch's episodes: processes that see the same disk post it once.
            bucket = int(self._clock() // EPISODE_BUCKET)
            self._opened[bucket] += 1
            self._disk_episode = f"alert:disk:{bucket}:{self._opened[bucket]}"
            await self._alert(
                self._disk_episode,
                f"The database's disk is {used:.0f}% full ({human(disk.free)} free at {path}; "
                f"alert line {line}%). Shorten [retention] days or give it more space: "
                "`python -m bot doctor` shows the database and image sizes.",
            )
        elif used < line - 5 and self._disk_episode is not None:
            key, self._disk_episode = self._disk_episode, None
            await self._alert(f"{key}:recovered", f"Recovered: the database's disk is {used:.0f}% full.")

    async def _alert(self, key: str, text: str) -> None:
        if self._watch is not None:
            await self._watch.alert(key, text)
        else:
            log.warning("alert: %s", text)
