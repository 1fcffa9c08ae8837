"""The soak bench's tally, read once the queue has drained: what became of every request (jobs
lost), how each job was charged (double charges, and calls billed again after a lost lease),
how often each image was posted, and the database's size before and after the pruner.
"""

from __future__ import annotations

import time
from collections import Counter

import psycopg

from bench.soak_load import Sent, SoakSlack
from bot.metrics import Metrics
from bot.retention import DAY, Pruner, RetentionSettings
from bot.service import STORE_DOWN
from bot.store.postgres import PostgresStore


async def _rows(url: str, query: str) -> list[tuple]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await (await conn.execute(query)).fetchall()


async def tally(url: str, slack: SoakSlack, sent: Sent, provider_calls: int) -> dict:
    jobs = {
        job_id: (state, prompt)
        for job_id, state, prompt in await _rows(url, "SELECT id, state, request->>'prompt' FROM jobs ORDER BY id")
    }
    by_prompt = Counter(prompt for _, prompt in jobs.values())
    uploads = slack.upload_counts()
    refused = {n for n, texts in slack.answered.items() if texts}
    down = {n for n, texts in slack.answered.items() if any(STORE_DOWN in t for t in texts)}

    # Lost: a job that never ended, a succeeded one whose image never posted, or a request
    # acked 200 that made no job and got no answer.
    unfinished = sorted(j for j, (state, _) in jobs.items() if state in ("queued", "running"))
    unposted = sorted(j for j, (state, _) in jobs.items() if state == "succeeded" and not uploads[j])
    silent_renders = sorted(p for p, n in sent.renders.items() if not by_prompt[p] and n not in refused)
    rerun_jobs_missing = 0
    prompts = {j: p for j, (_, p) in jobs.items()}
    for parent, numbers in sent.reruns.items():
        admitted = by_prompt[prompts.get(parent)] - 1  # the render itself has that prompt too
        expected = sum(n not in refused for n in numbers)
        rerun_jobs_missing += max(0, expected - admitted)
    # The load sends nothing else that is answered ephemerally in a thread.
    thread_notes = [c.args.get("text", "") for c in slack.calls_to("chat.postEphemeral") if c.args.get("thread_ts")]
    edit_notes = len(thread_notes)
    edit_jobs = sum(by_prompt[text] > 0 for text, _, _ in sent.edits)
    silent_edits = max(0, len(sent.edits) - edit_jobs - edit_notes)
    edits_without_job = [(text, parent.job_id, round(at, 1)) for text, parent, at in sent.edits if not by_prompt[text]]

    # Charges: the ledger's UNIQUE (job, entry, attempt, hedge) allows one settlement per call;
    # a job settled on two attempts made two billed calls (a re-run after its lease was lost).
    settled = await _rows(url, "SELECT job_id, attempt, hedge FROM ledger WHERE entry = 'settlement'")
    per_call = Counter(settled)
    attempts = Counter(job for job, _, hedge in settled if hedge == 0)
    states = Counter(state for state, _ in jobs.values())
    return {
        "requests": dict(sent.counts),
        "requests_not_acked": dict(sent.not_acked),
        "refused_database_down": len(down) + sum(STORE_DOWN in t for t in thread_notes),
        # Any other answer instead of a job: "Already on it" when the load happens to press [Reroll]
        # on one image twice within the press window (by design); a budget or quota would be a misfit.
        "refused_otherwise": len(refused - down) + sum(STORE_DOWN not in t for t in thread_notes),
        "answers": dict(
            Counter(
                t[:70] for t in [*thread_notes, *(t for texts in slack.answered.values() for t in texts)]
            ).most_common(6)
        ),
        "jobs": len(jobs),
        "jobs_by_state": dict(states),
        "jobs_lost": len(unfinished) + len(unposted) + len(silent_renders) + rerun_jobs_missing + silent_edits,
        "lost_detail": {
            "unfinished": unfinished[:20],
            "succeeded_not_posted": unposted[:20],
            "renders_without_job_or_answer": len(silent_renders),
            "reruns_without_job_or_answer": rerun_jobs_missing,
            "edits_without_job_or_answer": silent_edits,
            "edits_without_job": edits_without_job[:20],
        },
        "double_charges": sum(n > 1 for n in per_call.values()),
        "jobs_billed_on_more_than_one_attempt": sum(n > 1 for n in attempts.values()),
        "settlements": len(settled),
        "provider_calls": provider_calls,
        # A worker SIGKILLed during a call never settles it; the job runs again on a new attempt,
        # which is settled. The provider bills the lost call; the ledger has no row for it.
        "calls_not_settled": provider_calls - len(settled),
        "double_posts": sum(n > 1 for n in uploads.values()),
        "images_posted": sum(uploads.values()),
        "deletes_acted": sum(u.deleted for u in slack.uploads),
    }


async def prune_and_measure(url: str) -> dict:
    """The database's size, then the pruner's pass with every kind kept one day and a clock two
    days on (so everything finished is past its time), then the size again; then after a
    VACUUM FULL, since PostgreSQL keeps freed pages in its files until then (autovacuum makes
    them reusable, not smaller)."""
    store = PostgresStore(url)
    await store.open()
    try:
        before = await store.storage_sizes()
        days = dict.fromkeys(
            ("images_days", "inputs_days", "jobs_days", "outbox_days", "dedupe_days", "moderation_text_days"), 1
        )
        pruner = Pruner(store, RetentionSettings(**days), Metrics(), None, clock=lambda: time.time() + 2 * DAY)
        pruned = await pruner.run_once()
        after = await store.storage_sizes()
    finally:
        await store.close()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("VACUUM FULL")
    store = PostgresStore(url)
    await store.open()
    try:
        vacuumed = await store.storage_sizes()
    finally:
        await store.close()

    def mb(sizes) -> dict:
        return {"database_mb": round(sizes.database_bytes / 1e6, 2), "blob_mb": round(sizes.blob_bytes / 1e6, 2)}

    return {"before": mb(before), "after_prune": mb(after), "after_vacuum_full": mb(vacuumed), "pruned": pruned}
