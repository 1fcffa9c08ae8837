"""Prometheus metrics, on GET /metrics. One registry per process, built at start-up."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Generation is slow (15-60 s on Pro): buckets that can tell 20 s from 45 s.
GENERATION_BUCKETS = (0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300)
QUEUE_BUCKETS = (0.05, 0.25, 1, 5, 15, 30, 60, 120, 300, 900, 3600)
MEMORY_WAIT_BUCKETS = (0.01, 0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 900)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.jobs = Gauge("imagine_jobs", "Jobs by state, read from the store at scrape time", ["state"], registry=r)
        self.queue_wait = Histogram(
            "imagine_queue_wait_seconds", "From submit to a worker taking the job", buckets=QUEUE_BUCKETS, registry=r
        )
        self.generation = Histogram(
            "imagine_generation_seconds",
            "Provider call latency",
            ["model", "size"],
            buckets=GENERATION_BUCKETS,
            registry=r,
        )
        self.calls = Counter(
            "imagine_provider_calls_total", "Provider calls by outcome", ["route", "model", "status"], registry=r
        )
        self.errors = Counter(
            "imagine_errors_total",
            "Failed provider calls by error class and route",
            ["error_class", "route"],
            registry=r,
        )
        self.rate_limited = Counter("imagine_rate_limited_total", "429s received from providers", ["route"], registry=r)
        self.spend = Counter("imagine_spend_usd_total", "Money charged, by team and lane", ["team", "lane"], registry=r)
        self.cache_hits = Counter("imagine_cache_hits_total", "Requests answered from the prompt cache", registry=r)
        self.hedges = Counter(
            "imagine_hedges_total",
            "Hedged attempts, by which call decided them and whether the other call answered before it was cancelled",
            ["winner", "other"],
            registry=r,
        )
        self.stale_answers = Counter(
            "imagine_stale_answers_total",
            "Jobs answered with an earlier identical request's image because every route was down",
            registry=r,
        )
        # A call that cost more than its job held: charged in full all the same, so the
        # budgets were briefly exceedable by this much. Any increase is a pricing fault.
        self.overshoots = Counter(
            "imagine_hold_overshoot_total", "Calls that cost more than their job's hold", ["route", "model"], registry=r
        )
        self.overshoot_usd = Counter(
            "imagine_hold_overshoot_usd", "Money charged beyond the jobs' holds", ["route", "model"], registry=r
        )
        # IMAGINE_MEMORY_MB (bot/memory_budget.py): what jobs hold of it, and how long they wait for it.
        self.memory_limit = Gauge("imagine_memory_limit_bytes", "Image memory budget of this process", registry=r)
        self.memory_reserved = Gauge(
            "imagine_memory_reserved_bytes", "Image memory reserved by the jobs running now", registry=r
        )
        self.memory_wait = Histogram(
            "imagine_memory_wait_seconds",
            "How long a job waited for image memory before its call",
            buckets=MEMORY_WAIT_BUCKETS,
            registry=r,
        )

        # Retention (bot/retention.py): the pruner's progress, the store's size and its disk.
        self.pruned_rows = Counter(
            "imagine_pruned_rows_total", "Rows pruned by the retention pruner, by kind", ["table"], registry=r
        )
        self.prune_last_run = Gauge(
            "imagine_prune_last_run_timestamp_seconds", "When this process's pruner last finished a pass", registry=r
        )
        self.database_bytes = Gauge("imagine_database_bytes", "The database's size", registry=r)
        self.blob_bytes = Gauge("imagine_blob_bytes", "Image bytes stored, each distinct content once", registry=r)
        self.disk_free = Gauge("imagine_disk_free_bytes", "Free bytes on the database's disk", registry=r)
        self.disk_used = Gauge("imagine_disk_used_ratio", "Share of the database's disk in use (0-1)", registry=r)

    def provider_call(self, *, route: str, model: str, size: str, status: str, seconds: float | None) -> None:
        self.calls.labels(route, model, status).inc()
        if seconds is not None:
            self.generation.labels(model, size).observe(seconds)
        if status != "ok":
            self.errors.labels(status, route).inc()
            if status == "quota":
                self.rate_limited.labels(route).inc()

    def charged(self, team: str, usd: float, *, lane: str = "standard") -> None:
        if usd > 0:
            self.spend.labels(team, lane).inc(usd)

    def overshoot(self, *, route: str, model: str, usd: float) -> None:
        self.overshoots.labels(route, model).inc()
        self.overshoot_usd.labels(route, model).inc(usd)

    def pruned(self, kind: str, rows: int) -> None:
        self.pruned_rows.labels(kind).inc(rows)

    def prune_ran(self, at: float) -> None:
        self.prune_last_run.set(at)

    def storage(self, database_bytes: int, blob_bytes: int, disk: tuple[int, int, int] | None) -> None:
        """The store's sizes, and its disk's (total, used, free) when measured."""
        self.database_bytes.set(database_bytes)
        self.blob_bytes.set(blob_bytes)
        if disk is not None:
            total, used, free = disk
            self.disk_free.set(free)
            self.disk_used.set(used / total if total else 0.0)

    def render(self, counts_by_state: dict[str, int]) -> bytes:
        for state in ("queued", "running", "succeeded", "failed", "blocked", "cancelled", "dead"):
            self.jobs.labels(state).set(counts_by_state.get(state, 0))
        return generate_latest(self.registry)
