from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.store.sqlite import SQLiteStore
from bot.types import GenerationSpec, NewJob


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
STORE_KINDS = ["sqlite"]


@pytest.fixture(params=STORE_KINDS)
async def store_factory(request, tmp_path, clock):
    """Opens stores on one shared database, as separate workers would."""
    opened = []

    async def factory():
        store = SQLiteStore(str(tmp_path / "imagine.db"), clock=clock)
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


@pytest.fixture
async def store(store_factory):
    return await store_factory()
