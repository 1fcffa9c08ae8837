"""The test PostgreSQL server, and a throwaway schema per test on it."""

from __future__ import annotations

import os
import uuid

import psycopg
from psycopg import sql

POSTGRES_URL = os.environ.get("IMAGINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def unique_schema() -> str:
    """A throwaway schema name, so each PostgreSQL test starts from an empty database."""
    return f"t_{uuid.uuid4().hex}"


async def drop_schema(url: str, schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
