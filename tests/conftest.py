from __future__ import annotations

import io
import os
import uuid

import psycopg
import pytest
from PIL import Image
from psycopg import sql

from bot.store.postgres import PostgresStore
from bot.store.sqlite import SQLiteStore
from bot.types import GenerationSpec, NewJob
from tests.fakes.gemini_server import FakeGemini


class FakeClock:
    """A clock tests move by hand, so lease expiry needs no sleeping."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.size


@pytest.fixture
async def fake():
    """A loopback Gemini with small images; test modules for other services
    (Slack, Discord, a gateway) define their own `fake` instead."""
    async with FakeGemini(image_scale=0.125) as server:
        yield server


def png_bytes(width: int = 8, height: int = 8, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def spec(prompt: str = "a koi pond", **overrides) -> GenerationSpec:
    fields = dict(prompt=prompt, model_alias="pro", model_id="gemini-3-pro-image",
                  aspect_ratio="1:1", size="1K")
    return GenerationSpec(**{**fields, **overrides})


def new_job(team: str = "T1", *, prompt: str = "a koi pond", max_attempts: int = 3,
            key: str | None = None, platform: str = "cli") -> NewJob:
    return NewJob(team=team, channel="C1", user="U1", platform=platform, kind="imagine",
                  spec=spec(prompt), max_attempts=max_attempts, idempotency_key=key)


# Every Store implementation runs the same contract suite (tests/contract).
STORE_KINDS = ["sqlite", "postgres"]
POSTGRES_URL = os.environ.get("IMAGINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL, or a skip (checked once per session) saying how to start it."""
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}; start it with "
                    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start, "
                    "or point IMAGINE_TEST_POSTGRES_URL at a server")
    return POSTGRES_URL


def unique_schema() -> str:
    """A throwaway schema name, so each PostgreSQL test starts from an empty database."""
    return f"t_{uuid.uuid4().hex}"


async def drop_schema(url: str, schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(params=STORE_KINDS)
async def store_factory(request, tmp_path, clock):
    """Opens stores on one shared database, as separate workers would.

    PostgreSQL stores share a throwaway schema, dropped after the test.
    """
    opened = []
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        schema = unique_schema()

        def make():
            # Small pools: a test opens up to nine stores, and the server's
            # connection limit is shared with whoever else runs tests on it.
            return PostgresStore(url, clock=clock, schema=schema, max_size=4)
    else:
        def make():
            return SQLiteStore(str(tmp_path / "imagine.db"), clock=clock)

    async def factory():
        store = make()
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()
    if request.param == "postgres":
        await drop_schema(url, schema)


@pytest.fixture
async def store(store_factory):
    return await store_factory()
