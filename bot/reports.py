"""The ledger as people and spreadsheets read it: table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.money import from_micros, usd

COLUMNS = [
    "at",
    "job_id",
    "entry",
    "team",
    "channel",
    "user",
    "model",
    "size",
    "lane",
    "status",
    "prompt_tokens",
    "output_tokens",
    "image_tokens",
    "cost_usd",
    "price_version",
    "hedge",  # 1: the second call of a hedged attempt, settled beside the first
    "approved_by",  # the moderator who approved an overage ([Ask a moderator]); empty otherwise
]
# What an approved overage's charge shows as: its own line, apart from the budget's settlements.
OVERAGE = "overage"


def shown_entry(row: Mapping[str, Any]) -> str:
    """The ledger row's entry as people read it: an approved overage's charge is `overage`."""
    return OVERAGE if row["entry"] == "settlement" and row.get("approved_by") else row["entry"]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def ledger_records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with money as exact decimal strings and times as ISO 8601 UTC."""
    return [
        {
            **{k: r.get(k) for k in COLUMNS if k not in ("at", "cost_usd")},
            "entry": shown_entry(r),
            "at": _iso(r["created_at"]),
            "cost_usd": str(from_micros(r["cost_micros"])),
        }
        for r in rows
    ]


def render_ledger(rows: list[dict[str, Any]], fmt: str, since: float) -> str:
    records = ledger_records(rows)
    if fmt == "json":
        return json.dumps(records, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(records)
        return out.getvalue()
    return _table(rows, since)


def _table(rows: list[dict[str, Any]], since: float) -> str:
    header = f"Ledger since {_iso(since)[:10]} (UTC)"
    if not rows:
        return f"{header}\nNo entries.\n"
    lines = [header, ""]
    widths = (17, 7, 12, 12, 12, 7, 5, 9, 9, 12)
    head = ("when", "job", "entry", "team", "user", "model", "size", "lane", "status", "cost")
    lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip())
    # Settlements summed by each of these columns.
    by: dict[str, dict[str, int]] = {column: defaultdict(int) for column in ("team", "model", "lane")}
    charged = overage = 0
    for r in rows:
        cells = (
            _iso(r["created_at"])[:16].replace("T", " "),
            str(r["job_id"]),
            shown_entry(r),
            r["team"],
            r["user"],
            r["model"],
            r["size"],
            r["lane"],
            r["status"],
            f"${from_micros(r['cost_micros']):.4f}",
        )
        lines.append("  ".join(str(c)[:w].ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        if r["entry"] == "settlement":
            for column, sums in by.items():
                sums[r[column]] += r["cost_micros"]
            charged += r["cost_micros"]
            overage += r["cost_micros"] if r.get("approved_by") else 0
    lines.append("")
    for column, sums in by.items():
        lines += [f"Charged by {column}:"]
        lines += [f"  {name:<24} {usd(m):>12}" for name, m in sorted(sums.items())]
    lines += [f"Total charged: {usd(charged)} (exact: ${from_micros(charged)})"]
    if overage:
        lines += [f"Of which approved overage: {usd(overage)} (over the budget, approved by a moderator)"]
    return "\n".join(lines) + "\n"
