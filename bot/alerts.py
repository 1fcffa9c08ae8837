"""Operator alerts: image generation is failing or slow, said once per episode.

Workers feed every interactive provider call in. Over the last `window`
calls, an episode starts when the share of failed calls passes `error_rate`
or the p99 latency passes `p99_seconds`, and ends when the figure is back
well under its line. The alert goes out when an episode starts, and one
"recovered" note when it ends: never once per request.

Alerts travel through the outbox (`Store.raise_alert`), so a worker process
with no chat adapter can raise one that the adapter's process posts, and the
key (rule, the ten minutes the episode started in, and its number within
them) makes several processes that see the same trouble usually post it
once (two that open it either side of a ten-minute mark post it twice).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable

from bot.store.ports import Store, StoreUnavailable

log = logging.getLogger(__name__)
EPISODE_BUCKET = 600.0
RECOVERY = 0.5
# A model declining a prompt is the user's content, not the service failing.
NOT_FAILURES = frozenset({"blocked"})


class CallWatch:
    def __init__(
        self,
        store: Store,
        platforms: list[str],
        *,
        window: int = 50,
        min_calls: int = 20,
        error_rate: float = 0.05,
        p99_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
        on_alert: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._platforms = platforms
        self._calls: deque[tuple[str | None, float]] = deque(maxlen=window)
        self._min_calls = min_calls  # a few early failures are not yet a rate
        self._error_rate = error_rate
        self._p99_seconds = p99_seconds
        self._clock = clock
        self._on_alert = on_alert or (lambda: None)
        self._episodes: dict[str, str] = {}  # rule -> the key of its open episode
        self._opened: Counter[str] = Counter()  # episodes opened per (rule, ten minutes)
        self._sending: set[asyncio.Task] = set()

    def observe(self, *, error_kind: str | None, seconds: float) -> None:
        """One finished provider call: None for success, else its error class."""
        self._calls.append((None if error_kind in NOT_FAILURES else error_kind, seconds))
        if len(self._calls) < self._min_calls:
            return
        for rule, value, line, text in (
            ("error_rate", self.error_share(), self._error_rate, self._error_text),
            ("latency", self.p99(), self._p99_seconds, self._latency_text),
        ):
            key = self._episodes.get(rule)
            if value > line and key is None:
                # Processes count their episodes per ten minutes alike, so the same trouble
                # seen by several gets one key (posted once), and a second episode a new one.
                bucket = f"{rule}:{int(self._clock() // EPISODE_BUCKET)}"
                self._opened[bucket] += 1
                key = self._episodes[rule] = f"alert:{bucket}:{self._opened[bucket]}"
                self._raise(key, text())
            # Over when well under the line: a figure hovering at the line is one episode, not many.
            elif value <= line * RECOVERY and key is not None:
                del self._episodes[rule]
                self._raise(f"{key}:recovered", f"Recovered: {text(recovered=True)}")

    def error_share(self) -> float:
        return sum(kind is not None for kind, _ in self._calls) / len(self._calls)

    def p99(self) -> float:
        latencies = sorted(seconds for _, seconds in self._calls)
        return latencies[math.ceil(0.99 * len(latencies)) - 1]

    def _error_text(self, recovered: bool = False) -> str:
        n = len(self._calls)
        failed = [kind for kind, _ in self._calls if kind is not None]
        share = f"{len(failed)} of the last {n} image calls failed ({100 * len(failed) / n:.0f}%"
        if recovered:
            return f"{share}, well under the {100 * self._error_rate:.0f}% alert line)."
        common = ", ".join(f"{kind} x{count}" for kind, count in Counter(failed).most_common(3))
        return (
            f"Image generation is failing: {share}, alert line {100 * self._error_rate:.0f}%). "
            f"Errors: {common}. `python -m bot doctor` shows what each one needs."
        )

    def _latency_text(self, recovered: bool = False) -> str:
        figure = f"p99 latency over the last {len(self._calls)} image calls is {self.p99():.0f} s"
        if recovered:
            return f"{figure}, well under the {self._p99_seconds:.0f} s alert line."
        return f"Image generation is slow: {figure} (alert line {self._p99_seconds:.0f} s)."

    async def alert(self, key: str, text: str) -> None:
        """A one-off alert (not an episode), sent before returning: once per `key`."""
        log.warning("alert: %s", text)
        if self._platforms:
            try:
                await self._send(key, text)
            except Exception:  # an alert is never worth failing the work that raised it
                log.exception("alert %s not queued", key)

    def _raise(self, key: str, text: str) -> None:
        log.warning("alert: %s", text)
        if self._platforms:
            task = asyncio.get_running_loop().create_task(self._send(key, text))
            self._sending.add(task)  # keep a reference until it is done
            task.add_done_callback(self._sending.discard)

    async def _send(self, key: str, text: str) -> None:
        try:
            if await self._store.raise_alert(key, self._platforms, text):
                self._on_alert()
        except StoreUnavailable as exc:
            log.warning("alert not queued (store unavailable): %s", exc)
