"""The ledger exports (`python -m bot usage`): an approved overage's charge is its own `overage`
line naming the approver, in the table, the CSV and the JSON alike."""

from __future__ import annotations

import csv
import io
import json

from bot.reports import render_ledger


def row(n: int, cost: int, approved_by: str | None = None) -> dict:
    return {
        "created_at": 1_800_000_000.0 + n,
        "job_id": n,
        "entry": "settlement",
        "team": "T1",
        "channel": "C1",
        "user": "U1",
        "model": "pro",
        "size": "2K",
        "lane": "standard",
        "status": "succeeded",
        "prompt_tokens": 1,
        "output_tokens": 1,
        "image_tokens": 1,
        "cost_micros": cost,
        "price_version": "v",
        "hedge": 0,
        "approved_by": approved_by,
    }


ROWS = [row(1, 134_000), row(2, 240_000, approved_by="UMOD")]


def test_the_csv_shows_the_overage_as_its_own_line_with_its_approver():
    records = list(csv.DictReader(io.StringIO(render_ledger(ROWS, "csv", 0))))
    assert [(r["entry"], r["approved_by"], r["cost_usd"]) for r in records] == [
        ("settlement", "", "0.134000"),
        ("overage", "UMOD", "0.240000"),
    ]


def test_the_json_and_the_table_say_overage_too():
    assert [r["entry"] for r in json.loads(render_ledger(ROWS, "json", 0))] == ["settlement", "overage"]
    table = render_ledger(ROWS, "table", 0)
    assert "overage" in table.splitlines()[4]
    assert "Total charged: $0.37" in table
    assert "Of which approved overage: $0.24" in table


def test_no_overage_no_line():
    assert "overage" not in render_ledger(ROWS[:1], "table", 0)
