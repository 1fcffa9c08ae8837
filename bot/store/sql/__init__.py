"""The store's SQL, loaded by name (the way procrastinate keeps its queries).

queries.sql holds every statement once; sqlite.sql and postgres.sql hold only
what differs between the two databases: fragments (row locks, JSON access,
list parameters) and the few whole statements that have no common form.
Placeholders are written `:name` in every file, and converted here: for
psycopg to `%(name)s`; for sqlite3 to numbered `?N` (see `numbered`).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent
DIALECTS = ("sqlite", "postgres")

_SECTION = re.compile(r"^-- (name|fragment): (\w+)[ \t]*$", re.MULTILINE)
# {name} or {name:arg1.arg2...}; JSON literals like '{}' have no name and are left alone.
_USE = re.compile(r"\{(\w+)(?::([\w.]+))?\}")
# :name, but not the second half of a PostgreSQL cast (value::type).
_PLACEHOLDER = re.compile(r"(?<![:\w]):(\w+)")


def _sections(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """(statements, fragments) by name. A section runs to the next; comment lines are dropped."""
    found: dict[str, dict[str, str]] = {"name": {}, "fragment": {}}
    marks = list(_SECTION.finditer(text))
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        body = text[mark.end() : following.start() if following else len(text)]
        lines = [line for line in body.splitlines() if line.strip() and not line.lstrip().startswith("--")]
        if mark.group(1) == "name":
            # A statement's lines without their indentation (no literal spans lines): psycopg caches
            # its parse of statements up to 4 KB only, and complete_job is near that. A fragment's
            # leading space may be what separates it from the text before it.
            lines = [line.strip() for line in lines]
        found[mark.group(1)][mark.group(2)] = "\n".join(lines)
    return found["name"], found["fragment"]


def _expand(text: str, fragments: dict[str, str]) -> str:
    def use(match: re.Match[str]) -> str:
        body = _expand(fragments[match.group(1)], fragments)
        for i, arg in enumerate((match.group(2) or "").split("."), start=1):
            body = body.replace(f"${i}", arg)
        return body

    return _USE.sub(use, text)


@cache
def _dialect(dialect: str) -> tuple[dict[str, str], dict[str, str]]:
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}")
    statements, fragments = _sections((HERE / "queries.sql").read_text())
    own_statements, own_fragments = _sections((HERE / f"{dialect}.sql").read_text())
    return statements | own_statements, fragments | own_fragments


def expand(text: str, dialect: str) -> str:
    """`text` with the dialect's fragments filled in (placeholders left as written)."""
    return _expand(text, _dialect(dialect)[1])


@cache
def queries(dialect: str) -> dict[str, str]:
    """Every statement for `dialect`, fragments filled in, in its driver's placeholder style."""
    statements, fragments = _dialect(dialect)
    expanded = {name: _expand(text, fragments) for name, text in statements.items()}
    if dialect == "postgres":  # psycopg: %(name)s, and a literal % doubled
        expanded = {name: _PLACEHOLDER.sub(r"%(\1)s", text.replace("%", "%%")) for name, text in expanded.items()}
    return expanded


def numbered(text: str) -> tuple[str, tuple[str, ...]]:
    """`text` with each :name as ?N (one N per name), and the names in N order: sqlite3
    binds a sequence much faster than it looks names up in a mapping."""
    names: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"?{names.setdefault(match.group(1), len(names) + 1)}"

    return _PLACEHOLDER.sub(number, text), tuple(names)
