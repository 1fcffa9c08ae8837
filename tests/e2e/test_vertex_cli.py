"""`python -m bot ...` on Vertex AI, configured by a `.env` file as an operator writes it,
against the loopback fake Vertex (real google-genai, real google-auth)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from bot.cli import EXIT_CONFIG, EXIT_INVALID, EXIT_OK
from tests.e2e.test_cli import assert_one_error_line, run_cli
from tests.fakes.vertex_server import PROJECT, TOKEN, FakeVertex, write_credentials_file
from tests.support.bot_process import bot_env


@pytest.fixture
async def fake():
    async with FakeVertex(image_scale=0.125) as server:
        yield server


def write_dotenv(tmp_path: Path, fake: FakeVertex, **extra: str) -> None:
    """Vertex settings in the working directory's `.env` only: nothing is exported."""
    values = {
        "GOOGLE_GENAI_USE_VERTEXAI": "true",
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "GOOGLE_APPLICATION_CREDENTIALS": str(write_credentials_file(tmp_path / "adc.json")),
        "GEMINI_BASE_URL": fake.url,
        **extra,
    }
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def env(tmp_path: Path, **settings: str) -> dict[str, str]:
    return bot_env(DATABASE_URL=f"sqlite:///{tmp_path / 'imagine.db'}", **settings)


async def test_imagine_through_vertex_from_a_dotenv_is_rendered_and_settled(fake, tmp_path):
    write_dotenv(tmp_path, fake)
    run = await run_cli(env(tmp_path), tmp_path, "imagine", "a koi pond", "--out", "o.png")
    assert run.code == EXIT_OK, run.stderr
    assert (tmp_path / "o.png").stat().st_size > 0
    [req] = fake.requests
    assert req.path == (
        f"/v1beta1/projects/{PROJECT}/locations/global/publishers/google/models/gemini-3-pro-image:generateContent"
    )
    assert req.headers["authorization"] == f"Bearer {TOKEN}" and "x-goog-api-key" not in req.headers
    printed_cost = run.stdout.split("cost $")[1].split()[0]
    report = await run_cli(env(tmp_path), tmp_path, "usage", "--format", "json", "--all-entries")
    assert report.code == EXIT_OK, report.stderr
    rows = json.loads(report.stdout)
    assert [r["entry"] for r in rows] == ["reservation", "settlement", "release"]
    [settled] = [r for r in rows if r["entry"] == "settlement"]
    assert settled["status"] == "succeeded" and settled["cost_usd"] == printed_cost


async def test_run_with_an_api_key_and_vertex_on_exits_4_naming_the_conflict(fake, tmp_path):
    write_dotenv(tmp_path, fake)
    run = await run_cli(
        env(
            tmp_path,
            GEMINI_API_KEY="a-leftover-key",
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_SIGNING_SECRET="secret",
            PORT="0",
        ),
        tmp_path,
        "run",
        timeout=15,
    )
    assert run.code == EXIT_CONFIG, run.stderr
    line = run.stderr.strip().splitlines()[-1]
    assert "GEMINI_API_KEY" in line and "GOOGLE_GENAI_USE_VERTEXAI" in line, run.stderr
    assert "Traceback" not in run.stderr and "a-leftover-key" not in run.stderr
    assert fake.calls == []


async def test_doctor_on_vertex_lists_the_models_as_available_and_checks_the_location(fake, tmp_path):
    write_dotenv(tmp_path, fake)
    good = await run_cli(env(tmp_path), tmp_path, "doctor")
    assert good.code == EXIT_OK, good.stdout + good.stderr
    assert f"Vertex AI project {PROJECT}, location global" in good.stdout
    assert "credentials work, 4 models listed" in good.stdout
    assert "pro     -> gemini-3-pro-image (available)" in good.stdout
    assert "not listed" not in good.stdout
    regional = await run_cli(env(tmp_path, GOOGLE_CLOUD_LOCATION="us-central1"), tmp_path, "doctor")
    assert regional.code == EXIT_CONFIG
    assert "location: us-central1 does NOT serve gemini-3-pro-image" in regional.stdout
    assert "Set GOOGLE_CLOUD_LOCATION=global" in regional.stdout


async def test_imagine_on_vertex_with_a_big_input_image_is_one_clear_line(fake, tmp_path):
    write_dotenv(tmp_path, fake)
    big = tmp_path / "big.png"
    # A real PNG over 7 MB: random pixels do not compress.
    Image.frombytes("RGB", (1600, 1600), os.urandom(1600 * 1600 * 3)).save(big, "PNG", compress_level=0)
    assert big.stat().st_size > 7 * 1024 * 1024
    run = await run_cli(
        env(tmp_path), tmp_path, "imagine", "make it blue", "--image", str(big), "--out", "o.png", "--yes"
    )
    assert run.code == EXIT_INVALID, run.stderr
    line = assert_one_error_line(run)
    assert "over the image service's 7 MB limit" in line, line
    assert fake.calls == []
