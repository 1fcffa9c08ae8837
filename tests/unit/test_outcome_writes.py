"""Writing an outcome that is already paid for: the store's outages are waited out, a few
times, with a warning each; the first write that works is the only one made."""

from __future__ import annotations

import pytest
from tenacity import stop_after_attempt, wait_none

from bot import outcome_writes
from bot.outcome_writes import waiting_out_the_store
from bot.store.ports import StoreUnavailable


class FlakyStore:
    def __init__(self, failures: int):
        self.failures = failures
        self.calls = 0

    async def write(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreUnavailable(f"down ({self.calls})")
        return "written"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(outcome_writes, "wait_random_exponential", lambda **_: wait_none())


async def test_a_write_that_works_at_once_is_made_once_and_warns_nothing():
    store, warned = FlakyStore(0), []
    assert await waiting_out_the_store(store.write, stop_after_attempt(6), warned.append) == "written"
    assert store.calls == 1 and warned == []


async def test_each_outage_is_warned_and_retried_until_the_write_works():
    store, warned = FlakyStore(2), []
    assert await waiting_out_the_store(store.write, stop_after_attempt(6), warned.append) == "written"
    assert store.calls == 3
    assert [str(e) for e in warned] == ["down (1)", "down (2)"]


async def test_the_attempts_are_counted_with_the_first_and_the_last_error_is_raised():
    store, warned = FlakyStore(10), []
    with pytest.raises(StoreUnavailable, match=r"down \(6\)"):
        await waiting_out_the_store(store.write, stop_after_attempt(6), warned.append)
    assert store.calls == 6 and len(warned) == 5


async def test_an_error_that_is_not_an_outage_is_raised_at_once():
    calls = []

    async def broken() -> None:
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await waiting_out_the_store(broken, stop_after_attempt(6), lambda exc: None)
    assert calls == [1]
