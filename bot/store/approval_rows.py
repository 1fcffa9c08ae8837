"""What an answered approval keeps of its request: everything but the input pictures, which
nothing needs once it is answered (an approval runs once) and which are the bulk of the row."""

from __future__ import annotations

from bot.store.tx import Json, Row, Tx


async def drop_pictures(tx: Tx, row: Row) -> None:
    """Keep the answered approval `row`'s request without its pictures (in the answer's transaction)."""
    request = row["request"]
    if request.get("images"):
        await tx.run("approval_keep_request", token=row["token"], request=Json({**request, "images": []}))
