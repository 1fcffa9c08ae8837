"""The soak bench's processes: one `python -m bot web` and several `python -m bot worker` on a
throwaway PostgreSQL cluster (tests/support/pg_cluster.py), each logging to a file (a pipe nobody
reads would fill during a 10-minute run and stall the process), with their memory sampled.

Workers are SIGKILLed and replaced while the load runs; the postmaster is SIGKILLed and started
again once.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from pathlib import Path

from bench.common import Process, vm_status
from tests.support.pg_cluster import Cluster
from tests.support.ports import free_port
from tests.support.probe import eventually

_WORKER_UP = re.compile(r"worker: \d+ worker slots on")


class Fleet:
    """The bot's processes: `web` (Slack, /healthz, the outbox dispatcher) and the workers."""

    def __init__(self, env: dict[str, str], workdir: Path, *, workers: int, slots: int) -> None:
        self.env, self.workdir = env, workdir
        self.size, self.slots = workers, slots
        self.web: Process | None = None
        self.workers: list[Process] = []
        self.started = self.killed = self.failed_starts = 0
        self.peak_sum_kib = self.peak_one_kib = 0  # RSS sampled once a second
        self._logs: list[Path] = []

    async def start(self) -> None:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        self.web = await self._process("web", {"PORT": str(port)}, health=f"{base}/healthz", base=base).start(60)
        for _ in range(self.size):
            await self.add_worker()

    def _process(self, role: str, more: dict[str, str], *, health: str | None = None, base: str = "") -> Process:
        log = self.workdir / f"{role}-{len(self._logs)}.log"
        self._logs.append(log)
        return Process(
            [sys.executable, "-m", "bot", role],
            env={**self.env, **more},
            cwd=self.workdir,
            log=log,
            health_url=health,
            name=f"{role} ({log.name})",
            base=base,
        )

    async def add_worker(self) -> None:
        """Start a worker and wait until it has opened the store. One that cannot reach the
        database at start-up exits 5 ("try later"): then try again, as a supervisor would."""
        while True:
            worker = self._process("worker", {"IMAGINE_WORKERS": str(self.slots)})
            await worker.start()
            self.started += 1

            def up(worker: Process = worker) -> bool:
                return worker.proc.returncode is not None or bool(_WORKER_UP.search(worker.log_tail(200)))

            await eventually(up, 90, interval=0.2, what="a worker opening the store")
            if worker.proc.returncode is None:
                self.workers.append(worker)
                return
            self.failed_starts += 1
            await worker.stop()
            await asyncio.sleep(1)

    async def kill_a_worker(self) -> None:
        """SIGKILL the oldest worker mid-whatever-it-does, and start its replacement."""
        victim = self.workers.pop(0)
        victim.proc.send_signal(signal.SIGKILL)
        await victim.proc.wait()
        victim.close_log()  # not stop(): that would warn of the -9, which is the point here
        self.killed += 1
        await self.add_worker()

    async def sample_memory(self, stop: asyncio.Event) -> None:
        """RSS of every live bot process once a second: the peak of their sum, and of one."""
        while not stop.is_set():
            total = 0
            for p in [self.web, *self.workers]:
                if p is None or p.proc is None or p.proc.returncode is not None:
                    continue
                try:
                    rss = vm_status(p.pid)["VmRSS"]
                except (OSError, KeyError):
                    continue  # it just exited
                total += rss
                self.peak_one_kib = max(self.peak_one_kib, rss)
            self.peak_sum_kib = max(self.peak_sum_kib, total)
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        for p in [*self.workers, self.web]:
            if p is not None:
                await p.stop()

    def tracebacks(self) -> int:
        """Tracebacks logged by any bot process (a killed worker's own death logs none)."""
        return sum(log.read_text(errors="replace").count("Traceback") for log in self._logs if log.exists())


async def restart_database(cluster: Cluster, down_for: float) -> float:
    """SIGKILL the postmaster, keep it down `down_for` s, start it again: seconds it was down."""
    killed = time.monotonic()
    cluster.kill()
    await asyncio.sleep(down_for)
    await cluster.start_again(60, interval=0.5)
    return time.monotonic() - killed
