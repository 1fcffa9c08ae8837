"""What the benchmarks share: results.json, percentiles, tables, test images, the
loopback fakes with a few extra gauges, and starting processes (the bot as a user
runs it, and the bench's own helpers) with a clean stop even on error.

Every bench script inserts the repository root into sys.path and then imports this
module, so each one runs as ``python bench/<name>.py`` from the repository root.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import os
import random
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import aiohttp
from aiohttp import web
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also when imported from elsewhere (run_all, a REPL)
    sys.path.insert(0, str(ROOT))

from tests.fakes.gemini_server import ASPECTS, SIZES, FakeGemini, _dumps  # noqa: E402
from tests.fakes.slack_server import FakeSlack, signed_headers, slash_command_body  # noqa: E402
from tests.support.bot_process import bot_env  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results.json"
SIGNING_SECRET = "bench-signing-secret"
FORM = "application/x-www-form-urlencoded"

# Policy limits high enough that no benchmark request is refused or held for confirmation:
# the benches measure the path of an accepted job. (TOML has no null, hence big numbers.)
UNLIMITED_POLICY = """\
[policy]
user_images_per_day = 1000000
user_concurrent_jobs = 1000000
team_queued_jobs = 1000000
confirm_above_usd = 1000
default_team_budget_usd = 1000000
"""


# -- results and reporting ---------------------------------------------------------------


def machine() -> str:
    """This machine's size, as results.json records it beside the figures."""
    with open("/proc/meminfo") as fh:
        kib = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal:"))
    return f"{os.cpu_count()} cores, {round(kib / 1024**2)} GiB"


def merge_results(sections: dict) -> None:
    """Merge `sections` (top-level key -> figures) into bench/results.json, keeping other keys."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update(sections)
    results["machine"] = machine()
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def ms_summary(seconds: Sequence[float]) -> dict:
    """p50 / p99 / max / mean of durations given in seconds, in milliseconds."""
    return {
        "n": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1000, 1),
        "p99_ms": round(percentile(seconds, 99) * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
        "mean_ms": round(sum(seconds) / len(seconds) * 1000, 1),
    }


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    rows = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)))


TABLE_HEADERS = ("benchmark", "figure", "target", "")


def bench_main(run, parser, rows) -> None:
    """What each bench script does when run on its own: measure, print its table, merge its figures."""
    results = asyncio.run(run(parser().parse_args()))
    print_table(TABLE_HEADERS, rows(results))
    merge_results(results)


# -- images --------------------------------------------------------------------------------


def tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(buf, "PNG")
    return buf.getvalue()


@lru_cache(maxsize=8)
def textured_png(w: int, h: int, bits: int = 4, seed: int = 0) -> bytes:
    """A w x h RGB PNG of random pixels with `bits` bits of entropy per channel.

    The fake's own images are one flat colour, which PNG squeezes to almost nothing
    (a 4096x4096 one is 0.23 MB); real model output is photographic and does not
    compress like that. With bits=4 this comes to about 2 bytes per pixel: ~2.1 MB at
    1024x1024, ~33 MB at 4096x4096, in the range of a photographic PNG.
    """
    raw = random.Random(seed).randbytes(w * h * 3)
    base = (256 - (1 << bits)) // 2  # mid-grey +- noise
    raw = raw.translate(bytes(base + (b >> (8 - bits)) for b in range(256)))
    buf = io.BytesIO()
    Image.frombytes("RGB", (w, h), raw).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


@lru_cache(maxsize=8)
def _textured_b64(w: int, h: int, bits: int) -> bytes:
    return base64.b64encode(textured_png(w, h, bits))


# -- fakes with gauges -------------------------------------------------------------------


class BenchGemini(FakeGemini):
    """FakeGemini that also keeps the gauges benches need: when each generateContent call
    arrived, how many were in flight at once, and (optionally) photographic-size images
    instead of flat-colour ones (``texture_bits``; None keeps the fake's own images)."""

    def __init__(self, *, texture_bits: int | None = None, **kw) -> None:
        super().__init__(**kw)
        self.texture_bits = texture_bits
        self.arrivals: list[float] = []  # perf_counter() at each generateContent request
        self.answered: dict[str, float] = {}  # prompt -> perf_counter() when its answer was built
        self.in_flight = self.max_in_flight = 0
        self.image_bytes: list[int] = []  # size of each (non-thought) image answered

    def image_size_for(self, aspect_ratio: str | None, image_size: str | None) -> tuple[int, int]:
        """The pixel size the fake answers a request with (the same sum as FakeGemini._answer)."""
        w, h = ASPECTS[aspect_ratio or "1:1"]
        scale = SIZES[image_size or "1K"] * self.image_scale
        return max(1, round(w * scale)), max(1, round(h * scale))

    async def _generate(self, request, model):
        self.arrivals.append(time.perf_counter())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await super()._generate(request, model)
        finally:
            self.in_flight -= 1

    def _answer(self, reply, rec) -> dict:
        self.answered[rec.prompt] = time.perf_counter()  # after the latency, before the JSON is built
        body = super()._answer(reply, rec)
        w, h = self.image_size_for(rec.aspect_ratio, rec.image_size)
        for candidate in body.get("candidates", []):
            for part in candidate.get("content", {}).get("parts", []):
                if "inlineData" in part and not part.get("thought"):
                    if self.texture_bits is not None:
                        # A placeholder the JSON encoder passes over; _json() splices the
                        # pre-encoded base64 in (see there).
                        part["inlineData"] = {
                            **part["inlineData"],
                            "data": _PLACEHOLDER.format(w, h, self.texture_bits),
                        }
                        # From the cached base64: making the PNG again costs seconds of CPU a call.
                        b64 = _textured_b64(w, h, self.texture_bits)
                        self.image_bytes.append(len(b64) * 3 // 4 - b64[-2:].count(b"="))
                    else:
                        self.image_bytes.append(len(part["inlineData"]["data"]) * 3 // 4)
        return body

    @staticmethod
    def _json(body: dict, status: int = 200, headers: dict | None = None) -> web.Response:
        """The fake's JSON answer, with any textured image spliced in as bytes. Encoding a
        30-40 MB base64 string through json.dumps(indent=2) costs the fake ~0.3 s a call,
        on the bench's one event loop: 50 answers would leave one by one over 15 s instead
        of together, as a real model's would."""
        text = _dumps(body)
        if _PLACEHOLDER_START not in text:
            return web.Response(text=text, status=status, headers=headers, content_type="application/json")
        parts = []
        for i, chunk in enumerate(text.split(_PLACEHOLDER_START)):
            if i == 0:
                parts.append(chunk.encode())
                continue
            size, _, rest = chunk.partition("@@")  # "WxHxBITS@@" + the rest of the JSON
            w, h, bits = map(int, size.split("x"))
            parts += [_textured_b64(w, h, bits), rest.encode()]
        return web.Response(
            body=b"".join(parts), status=status, headers=headers, content_type="application/json", charset="utf-8"
        )


_PLACEHOLDER = "@@IMAGE:{}x{}x{}@@"  # width, height, texture bits
_PLACEHOLDER_START = _PLACEHOLDER[:8]


class BenchSlack(FakeSlack):
    """FakeSlack that stamps each finished upload (files.completeUploadExternal) with
    time.perf_counter(), by the file's title (the bot titles an upload with its prompt)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.upload_done: dict[str, float] = {}  # title -> when its upload completed

    def _complete_upload(self, args: dict) -> dict:
        before = len(self.uploads)
        answer = super()._complete_upload(args)
        now = time.perf_counter()
        for upload in self.uploads[before:]:
            self.upload_done[upload.title or upload.filename] = now
        return answer


class CountingNotifier:
    """An in-process notifier (platform "bench") that counts final deliveries (a result or a
    failure; "started" is not final) and sets `done` once `total` have arrived."""

    platform = "bench"

    def __init__(self, total: int) -> None:
        self.total, self.finals = total, 0
        self.done = asyncio.Event()

    async def deliver(self, delivery, job) -> None:
        if delivery.kind != "started":
            self.finals += 1
            if self.finals >= self.total:
                self.done.set()


# -- processes ----------------------------------------------------------------------------


class Process:
    """A child process started for a bench (the bot, a bare bolt app, the fakes), with
    its stderr in a log file (a pipe nobody reads would fill and stall the child),
    ready once GET `health_url` answers 200, and stopped with SIGTERM (SIGKILL after
    `grace` seconds). Use as ``async with Process(...) as p``."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        cwd: Path,
        log: Path,
        health_url: str | None,
        name: str,
        base: str = "",
        grace: float = 30.0,
    ) -> None:
        self.argv, self.env, self.cwd, self.log_path = list(argv), env, cwd, log
        self.health_url, self.name, self.grace = health_url, name, grace
        self.base = base  # the root URL it serves, when it serves one
        self.proc: asyncio.subprocess.Process | None = None
        self._log = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def start(self, timeout: float = 30.0) -> Process:
        # Opening a local log file is instant; a thread would only hide the ordering.
        self._log = open(self.log_path, "wb")  # noqa: ASYNC230
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=self._log,
        )
        if self.health_url:
            await self._wait_healthy(timeout)
        return self

    async def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    async with session.get(self.health_url) as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not become healthy in {timeout} s:\n{self.log_tail()}")

    async def stop(self) -> int | None:
        """SIGTERM, wait, SIGKILL if it will not go; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), self.grace)
            except TimeoutError:
                print(f"warning: {self.name} ignored SIGTERM for {self.grace} s; killing it", file=sys.stderr)
                self.proc.kill()
                await self.proc.wait()
        self.close_log()
        if self.proc.returncode != 0 or "Traceback" in self.log_tail(10_000):
            print(
                f"warning: {self.name} exited {self.proc.returncode}; log {self.log_path}:\n{self.log_tail()}",
                file=sys.stderr,
            )
        return self.proc.returncode

    def close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    async def __aenter__(self) -> Process:
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(self, *exc) -> None:
        await self.stop()


def fakes_process(work: Path, slack_port: int, gemini_port: int, *options: str) -> Process:
    """bench/fakes_process.py (the fake Slack and Gemini) in a process of its own, with extra
    `options`; up once the fake Slack answers (it starts after the fake Gemini)."""
    return Process(
        [
            sys.executable,
            str(ROOT / "bench" / "fakes_process.py"),
            "--slack-port",
            str(slack_port),
            "--gemini-port",
            str(gemini_port),
            *options,
        ],
        env=bot_env(PYTHONPATH=str(ROOT)),
        cwd=work,
        log=work / "fakes.log",
        name="fakes",
        health_url=f"http://127.0.0.1:{slack_port}/api/auth.test",
    )


def bot_process(
    workdir: Path, *, slack_url: str, gemini_url: str, config: str = UNLIMITED_POLICY, **settings: str
) -> Process:
    """`python -m bot run` exactly as tests/e2e start it: HTTP Slack (signed requests on
    /slack/events) against the fake Slack, the fake Gemini, SQLite in `workdir`."""
    port = free_port()
    config_path = workdir / "imagine.toml"
    config_path.write_text(config)
    env = bot_env(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack_url,
        GEMINI_API_KEY="k",
        GEMINI_BASE_URL=gemini_url,
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{workdir / 'bot.db'}",
        IMAGINE_CONFIG=str(config_path),
        PYTHONPATH=str(ROOT),
        **settings,
    )
    base = f"http://127.0.0.1:{port}"
    return Process(
        [sys.executable, "-m", "bot", "run"],
        env=env,
        cwd=workdir,
        log=workdir / "bot.log",
        health_url=f"{base}/healthz",
        name="bot",
        base=base,
    )


def vm_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM / VmSize of a process from /proc, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "VmSize"):
                out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_quiet(pid: int, *, window: float = 0.5, max_share: float = 0.05, timeout: float = 300.0) -> None:
    """Until the process uses under `max_share` of a core over `window` s: its work (jobs,
    outbox deliveries, uploads) is done, whatever its health endpoint says."""
    deadline = time.monotonic() + timeout
    before = cpu_seconds(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(window)
        now = cpu_seconds(pid)
        if now - before <= max_share * window:
            return
        before = now
    raise RuntimeError(f"process {pid} still busy after {timeout} s")


# -- Slack requests -----------------------------------------------------------------------


def signed_command(text: str, *, user: str, response_url: str | None = None) -> tuple[bytes, dict]:
    """A signed /imagine slash command as Slack POSTs it: (body, headers)."""
    body = slash_command_body("/imagine", text, user_id=user, response_url=response_url)
    return body.encode(), {"Content-Type": FORM, **signed_headers(body, SIGNING_SECRET)}


async def post_timed(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict) -> tuple[float, float, int]:
    """POST and read the whole answer: (started, elapsed seconds, status), perf_counter clock."""
    started = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as r:
        await r.read()
        return started, time.perf_counter() - started, r.status
