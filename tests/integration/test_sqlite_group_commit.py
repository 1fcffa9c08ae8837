"""SQLite's group commit (bot/store/group_commit.py): operations that wait for the database
thread together share one transaction, yet each stands or falls alone."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.store.group_commit import GroupCommit
from bot.store.ports import StoreUnavailable
from bot.store.sqlite import SQLiteStore
from tests.support.probe import eventually


async def test_writes_queued_together_commit_together_but_one_failing_undoes_only_itself(tmp_path):
    store = SQLiteStore(str(tmp_path / "g.db"))
    await store.open()
    try:

        def write(reason: str, *, fails: bool = False):
            async def op(tx):
                await tx.run("insert_moderation", team="T", channel="C", user="U", reason=reason, prompt=None, now=1.0)
                if fails:
                    raise ValueError(reason)
                return reason

            return store._sqlite.transact(op, write=True)

        outcomes = await asyncio.gather(
            write("a"), write("b", fails=True), write("c"), write("d", fails=True), return_exceptions=True
        )
        assert outcomes[0] == "a" and outcomes[2] == "c"
        assert [str(o) for o in outcomes[1::2]] == ["b", "d"]
        assert all(isinstance(o, ValueError) for o in outcomes[1::2])
        assert [r["reason"] for r in await store.moderation_log("T")] == ["a", "c"]
    finally:
        await store.close()


async def test_a_read_queued_behind_writes_sees_them(tmp_path):
    store = SQLiteStore(str(tmp_path / "g.db"))
    await store.open()
    try:
        writes = [store.record_moderation("T", "C", "U", str(n), None) for n in range(5)]
        *_, log = await asyncio.gather(*writes, store.moderation_log("T"))
        assert len(log) == 5
    finally:
        await store.close()


async def test_operations_queued_as_the_store_closes_are_told_it_closed_not_left_waiting():
    # Review: the turn that ran while close() shut the thread pool down could not queue the next
    # turn (RuntimeError), and whatever had queued meanwhile waited forever.
    executor = ThreadPoolExecutor(max_workers=1)
    conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    running, go_on = threading.Event(), threading.Event()

    def run(op, conn, write):
        return op(conn)

    group = GroupCommit(executor, lambda: conn, run, lambda c: c.execute("BEGIN IMMEDIATE"))

    def blocking(conn):
        running.set()
        go_on.wait(10)
        return "first"

    first = asyncio.ensure_future(group.submit(blocking, False))
    await asyncio.get_running_loop().run_in_executor(None, running.wait, 10)
    second = asyncio.ensure_future(group.submit(lambda conn: "second", False))
    await eventually(lambda: len(group._queue) == 1, what="the second operation queued behind the running turn")
    executor.shutdown(wait=False)  # what close() does, with the turn still running
    go_on.set()
    assert await asyncio.wait_for(first, 10) == "first"
    with pytest.raises(StoreUnavailable, match="closed"):
        await asyncio.wait_for(second, 10)
    conn.close()
