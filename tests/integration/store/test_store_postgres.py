"""What only the PostgreSQL store has: wake-ups, outages, migrations, cross-process races.

The Store contract itself (including 200 concurrent submits against one
budget through 8 stores) runs on PostgreSQL in test_store_queue.py and
test_store_money.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from time import monotonic

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from bot.money.admission import Admission, Charge
from bot.money.quotas import QuotaLimits
from bot.store.migrate import MIGRATIONS, migrate
from bot.store.ports import StoreUnavailable, final_delivery_key
from bot.store.postgres import PostgresStore
from bot.types import JobState, Lane, NewDelivery, Submitted, Usage
from tests.support.images import png_bytes
from tests.support.jobs import new_job, spec
from tests.support.ports import refusing_port
from tests.support.postgres import drop_schema, unique_schema
from tests.support.store_contract import output_image

# Long enough that a wait ending early can only be a wake-up.
LONG_WAIT = 10.0


@pytest.fixture
async def open_pg(postgres_url, clock):
    """Opens PostgresStores on one throwaway schema (any conninfo, any options)."""
    schema = unique_schema()
    opened: list[PostgresStore] = []

    async def open_(url: str = postgres_url, **options) -> PostgresStore:
        store = PostgresStore(url, clock=clock, schema=schema, **options)
        opened.append(store)
        await store.open()
        return store

    yield open_
    for store in opened:
        await store.close()
    await drop_schema(postgres_url, schema)


async def until_quiet(wait: Callable[[float], Awaitable[None]]) -> None:
    """Wait until one wait runs its whole timeout: no wake-up is pending (such as the one a
    listener gives when it connects, for what it may have missed)."""
    for _ in range(20):
        start = monotonic()
        await wait(0.3)
        if monotonic() - start >= 0.25:
            return
    pytest.fail("the store's wait never settled")


async def woken_by(wait: Callable[[float], Awaitable[None]], action: Awaitable[object]) -> float:
    """Seconds from starting `action` to `wait` returning."""
    waiter = asyncio.create_task(wait(LONG_WAIT))
    # Let the waiter reach its wait (a few turns of the loop, no wall-clock time): had a
    # wake-up been pending, it would be done by now, and the timing below would prove nothing.
    for _ in range(10):
        await asyncio.sleep(0)
    assert not waiter.done()
    start = monotonic()
    await action
    await waiter
    return monotonic() - start


async def test_wait_for_jobs_returns_when_another_store_submits(open_pg):
    worker, service = await open_pg(), await open_pg()
    await until_quiet(worker.wait_for_jobs)
    assert await woken_by(worker.wait_for_jobs, service.submit(new_job(), [])) < 2


async def test_wait_for_deliveries_returns_when_a_delivery_is_queued(open_pg):
    dispatcher, worker = await open_pg(), await open_pg()
    await worker.submit(new_job(), [])
    await until_quiet(dispatcher.wait_for_deliveries)
    # A lease queues the job's "started" message.
    assert await woken_by(dispatcher.wait_for_deliveries, worker.lease("w", 60)) < 2


async def test_unreachable_server_is_reported_unavailable_at_once():
    with refusing_port() as port:
        store = PostgresStore(f"postgresql://postgres@127.0.0.1:{port}/test", timeout=1)
        start = monotonic()
        with pytest.raises(StoreUnavailable):
            await store.open()
        with pytest.raises(StoreUnavailable):
            await store.submit(new_job(), [])
        assert monotonic() - start < 5
        await store.wait_for_jobs(0.1)  # falls back to sleeping, never raises
    await store.close()


async def test_an_outage_fails_calls_cleanly_and_the_store_recovers_by_itself(open_pg, postgres_url):
    target = conninfo_to_dict(postgres_url)
    if str(target.get("host", "")).startswith("/"):
        pytest.skip("needs a TCP server to cut the connection to")
    proxy = _Proxy(str(target.get("host", "localhost")), int(target.get("port", 5432)))
    await proxy.start()
    try:
        store = await open_pg(make_conninfo(postgres_url, host="127.0.0.1", port=proxy.port), timeout=1)
        await store.submit(new_job(prompt="before"), [])
        await proxy.stop()  # the server goes away, connections and all
        start = monotonic()
        with pytest.raises(StoreUnavailable):
            await store.submit(new_job(prompt="during"), [])
        assert monotonic() - start < 5
        await store.wait_for_jobs(0.1)
        await proxy.start()
        assert isinstance(await _eventually(lambda: store.submit(new_job(prompt="after"), [])), Submitted)
        assert (await store.counts_by_state()) == {"queued": 2}
    finally:
        await proxy.stop()


async def test_the_listener_reconnects_after_its_connection_is_killed(open_pg, postgres_url):
    app = f"imagine-test-{uuid.uuid4().hex[:12]}"
    worker = await open_pg(make_conninfo(postgres_url, application_name=app))
    service = await open_pg()
    await until_quiet(worker.wait_for_jobs)
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (app,)
        )
        assert len(await cur.fetchall()) >= 2  # the pool's connection and the listener's
    assert await worker.counts_by_state() == {}  # the pool replaced its dead connection
    await until_quiet(worker.wait_for_jobs)  # the dead listener is noticed and replaced, quietly
    assert await woken_by(worker.wait_for_jobs, service.submit(new_job(), [])) < 2


async def test_stores_opening_at_once_migrate_exactly_once(open_pg):
    stores = await asyncio.gather(*(open_pg() for _ in range(6)))
    assert await stores[0].applied_migrations() == [m.name for m in MIGRATIONS]
    again = await open_pg()
    assert await again.applied_migrations() == [m.name for m in MIGRATIONS]


async def test_concurrent_submits_of_one_idempotency_key_make_one_job(open_pg):
    # Different teams take different admission locks, so only the unique key
    # stops the race: every loser must answer with the winner's job.
    stores = [await open_pg() for _ in range(4)]
    outcomes = await asyncio.gather(*(stores[i % 4].submit(new_job(f"T{i}", key="slack:Ev1"), []) for i in range(20)))
    assert len({o.job_id for o in outcomes}) == 1
    assert sorted(o.duplicate for o in outcomes) == [False] + [True] * 19
    assert await stores[0].counts_by_state() == {"queued": 1}


async def test_concurrent_batchers_never_take_the_same_job(open_pg):
    stores = [await open_pg() for _ in range(4)]
    for i in range(40):
        await stores[0].submit(replace(new_job(), spec=spec(str(i), lane=Lane.BATCH)), [])

    async def gather_batches(store) -> list[int]:
        taken = []
        while (batch := await store.open_batch(5)) is not None:
            taken += [job.id for job in batch.jobs]
            await asyncio.sleep(0)
        return taken

    results = await asyncio.gather(*(gather_batches(s) for s in stores))
    taken = [job_id for r in results for job_id in r]
    assert len(taken) == len(set(taken)) == 40
    assert await stores[0].lease("w", 60) is None  # the interactive lane never sees them


async def test_an_alert_raised_by_several_processes_at_once_is_queued_once(open_pg):
    stores = [await open_pg() for _ in range(3)]
    raised = await asyncio.gather(*(s.raise_alert("errors:1", ["slack"], "failing") for s in stores))
    assert sorted(raised) == [False, False, True]
    [alert] = await stores[0].claim_deliveries(["slack"], 10, 60)
    assert (alert.kind, alert.job_id, alert.payload) == ("alert", None, {"text": "failing"})


async def _eventually(call: Callable[[], Awaitable[object]], within: float = 10.0) -> object:
    """`call`'s result once the store is back, retrying while it is unavailable."""
    deadline = monotonic() + within
    while True:
        try:
            return await call()
        except StoreUnavailable:
            if monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


class _Proxy:
    """A TCP proxy to the server that can be cut and restored, like a network outage."""

    def __init__(self, host: str, port: int):
        self._target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        # The same port again after a stop, so the store's conninfo stays valid.
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self._target)
        self._writers |= {client_w, server_w}
        await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w), return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.transport.abort()


async def test_old_rows_are_carried_over_by_the_new_migrations(postgres_url, clock):
    """Images keep their bytes (one copy each), never-attached announced jobs are cancelled."""
    schema = unique_schema()
    same, other = png_bytes(8, 8, "blue"), png_bytes(8, 8, "green")
    try:
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            await migrate(conn, schema, [m for m in MIGRATIONS if m.name < "0009"])
            now = clock()
            ids = {}
            for prompt, available in (("never attached", now - 10 + 120), ("attached", now - 5)):
                ids[prompt] = await _value(
                    conn,
                    """
                    INSERT INTO jobs (team, channel, "user", platform, kind, request, delivery, state, round,
                        max_attempts, available_at, created_at, updated_at)
                    VALUES ('T1', 'C1', 'U1', 'cli', 'imagine', %s, '{}', 'queued', 0, 3, %s, %s, %s)
                    RETURNING id""",
                    (Jsonb(spec(prompt).to_json()), available, now - 10, now - 10),
                )
            images = [
                await _value(
                    conn,
                    """
                INSERT INTO images (job_id, role, mime, width, height, size_bytes, sha256, data, created_at)
                VALUES (%s, 'input', 'image/png', 8, 8, %s, %s, %s, 1.0) RETURNING id""",
                    (ids["attached"], len(data), digest, data),
                )
                for data, digest in ((same, sha(same)), (same, sha(same)), (other, "0" * 64))
            ]
            await conn.commit()
        store = PostgresStore(postgres_url, clock=clock, schema=schema)
        await store.open()
        try:
            assert [(await store.get_image(i)).data for i in images] == [same, same, other]
            assert [i.sha256 for i in await store.job_inputs(ids["attached"])] == [sha(same), sha(same), sha(other)]
            assert (await store.lease("w", 600)).id == ids["attached"]
            clock.advance(111)
            assert await store.lease("w", 60) is None
            never = await store.get_job(ids["never attached"])
            assert (never.state, never.error_class) == (JobState.CANCELLED, "not_announced")
        finally:
            await store.close()
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            assert await _value(conn, "SELECT COUNT(*) FROM blobs") == 2
            assert (
                await _value(
                    conn,
                    """SELECT COUNT(*) FROM information_schema.columns
                                         WHERE table_schema = %s AND table_name = 'images'
                                         AND column_name = 'data'""",
                    (schema,),
                )
                == 0
            )
    finally:
        await drop_schema(postgres_url, schema)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _value(conn, query: str, params=None):
    return (await (await conn.execute(query, params)).fetchone())[0]


async def test_a_completion_survives_a_pool_whose_idle_connections_all_died(open_pg, postgres_url):
    """A server restart kills every idle pooled connection; the pool checks none on checkout.
    The one-statement completion must reach a live connection, as a transaction does, and be
    settled once: a paid call left out of the ledger would run, and be paid for, again."""
    app = f"imagine-test-{uuid.uuid4().hex[:12]}"
    store = await open_pg(make_conninfo(postgres_url, application_name=app), max_size=6)
    job = await _held_and_leased(store)

    async def held_open(tx):
        await tx.script("SELECT pg_sleep(0.2)")

    await asyncio.gather(*(store._pg.transact(held_open, write=False) for _ in range(6)))  # six idle now
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND query NOT ILIKE 'LISTEN%%'",
            (app,),
        )
        assert len(await cur.fetchall()) >= 6
    image_id = await _complete(store, job)
    assert image_id is not None
    entries = [r["entry"] for r in await store.ledger(team=None)]
    assert sorted(entries) == ["release", "reservation", "settlement"]


async def test_a_completion_whose_first_answer_was_lost_is_still_its_workers(open_pg, monkeypatch):
    """The connection broke after the server committed the completion: the statement is sent
    again, finds the job succeeded already, and the worker hears its image, not "lease lost"."""
    store = await open_pg()
    job = await _held_and_leased(store)
    real = store._pg.statement

    async def answer_lost_then_sent_again(query, params):
        await real(query, params)  # committed; its answer never came back
        row, _ = await real(query, params)
        return row, True

    monkeypatch.setattr(store._pg, "statement", answer_lost_then_sent_again)
    image_id = await _complete(store, job)
    done = await store.get_job(job.id)
    assert image_id is not None and image_id == done.result_image_id
    assert sorted(r["entry"] for r in await store.ledger(team=None)) == ["release", "reservation", "settlement"]


async def _held_and_leased(store: PostgresStore):
    await store.submit(new_job(), [], Admission(134_000, "p", QuotaLimits(None, None, None)))
    return await store.lease("w", 60)


async def _complete(store: PostgresStore, job) -> int | None:
    delivery = NewDelivery(final_delivery_key(job.id), "result", {})
    charge = Charge(100_000, Usage(prompt_tokens=1, image_tokens=1), "succeeded")
    return await store.complete(job.id, job.worker_id, job.attempt, output_image(), {}, delivery, charge)
