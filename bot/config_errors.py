"""Pydantic's errors about a TOML file, said the way an operator reads the file:
`[routes.gemini] requests_per_minute: expected a whole number, found "abc"`."""

from __future__ import annotations

import json
import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

# At most this many problems are named; the rest are counted.
SHOWN = 5

# Tags of the unions in the config models: a step of pydantic's path, not a key of the file.
UNION_TAGS = frozenset({"<per model>", "<flat>"})

_EXPECTED = {
    "a whole number": ("int_type", "int_parsing", "int_from_float"),
    "a number": ("decimal_type", "decimal_parsing", "float_type", "float_parsing", "finite_number"),
    "a table": ("dict_type", "model_type", "model_attributes_type"),
    "a list": ("list_type",),
    "a string": ("string_type",),
    "true or false": ("bool_type", "bool_parsing"),
    "a date like 2026-10-02": ("date_type", "date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact"),
}
_EXPECTED_BY_TYPE = {kind: expected for expected, kinds in _EXPECTED.items() for kind in kinds}
_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
    "too_short": ("min_length", "a list of at least"),
}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def describe(exc: ValidationError, root: type[BaseModel]) -> str:
    """Every problem in `exc`, one clause each, joined on one line."""
    listed: set[tuple[Any, ...]] = set()  # tables whose keys were listed already
    problems = [_problem(error, root, listed) for error in exc.errors()]
    shown = "; ".join(problems[:SHOWN])
    return shown + (f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else "")


def _problem(error: ErrorDetails, root: type[BaseModel], listed: set[tuple[Any, ...]]) -> str:
    path = [step for step in error["loc"] if step not in UNION_TAGS and step != "[key]"]
    where = _where(path)
    kind, ctx, found = error["type"], error.get("ctx") or {}, _found(error["input"])
    if kind == "extra_forbidden":
        table = tuple(path[:-1])
        keys = [] if table in listed else _keys_at(root, path[:-1])
        listed.add(table)
        what = "unknown table" if len(path) == 1 else "unknown key"
        return f"{where}: {what}" + (f"; expected one of {', '.join(keys)}" if keys else "")
    if kind == "missing":
        return f"{where}: missing; it is required"
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        expected = f"{words} {ctx[name]}" + (" item" if kind == "too_short" else "")
    elif kind == "literal_error":
        expected = f"one of {ctx['expected']}"
    elif kind == "expected":  # our own checks (config_file): the message is what was expected
        expected = error["msg"]
    else:
        expected = _EXPECTED_BY_TYPE.get(kind) or error["msg"][:1].lower() + error["msg"][1:]
    return f"{where}: expected {expected}, found {found}"


def _where(path: list[Any]) -> str:
    """A key path as the file writes it: `[routes.gemini] requests_per_minute`, `[teams] T1`,
    `policy`, and `sizes item 2` for a list's second item."""
    names = [step for step in path if isinstance(step, str)]
    if not names:
        return "the file"
    last = max(i for i, step in enumerate(path) if isinstance(step, str))
    key = _key(path[last]) + "".join(f" item {step + 1}" for step in path[last + 1 :] if isinstance(step, int))
    tables = [_key(step) for step in path[:last] if isinstance(step, str)]
    return f"[{'.'.join(tables)}] {key}" if tables else key


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else json.dumps(name)


def _found(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 40 else value[:40] + "…", ensure_ascii=False)
    return str(value)


def _keys_at(root: type[BaseModel], path: list[Any]) -> list[str]:
    """The keys the table at `path` may hold, when it is a model (for "expected one of")."""
    annotation: Any = root
    for step in path:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(step) if isinstance(step, str) else None
            if field is None:
                return []
            annotation = field.annotation
        elif typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
        else:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return sorted(annotation.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """`X | None` and `Annotated[X, ...]` as X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation
