"""SQLite's group commit (bot/store/group_commit.py): operations that wait for the database
thread together share one transaction, yet each stands or falls alone."""

from __future__ import annotations

import asyncio

from bot.store.sqlite import SQLiteStore


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
