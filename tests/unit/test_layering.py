"""The layers import only downwards. Read from the source with ast, so this runs
nothing and needs no database:

    adapters/  ->  bot/ (service, worker, store, providers)  ->  bot/money/  ->  policies/

- the core (bot/, policies/) never imports a platform SDK at module level; only the
  bootstrap's wiring loads one, inside the function that starts that platform;
- no module in bot/ imports adapters/, except that same wiring (lazily, only when
  the platform is configured);
- bot.money is pure rules: it imports no store, no provider, nothing of the
  service or worker, only amounts of its own, the catalog and the domain types;
- policies/ imports nothing from bot/ or adapters/ (bot depends on policies, never back);
- adapters/ never touch the store: they speak to the core (the service, the outbox's
  deliveries), so a platform can't bypass admission or the ledger.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_SDKS = ("slack_bolt", "slack_sdk", "discord")
# The one module that starts the chat platforms: it imports their adapters (and Slack's
# socket-mode handler) inside start_adapters, so a bot without them never loads them.
WIRING = "bot/bootstrap.py"
# What bot.money may import from the project: itself, the catalog's prices, the domain
# types and team policy (a quota's limits come from it).
MONEY_MAY_IMPORT = ("bot.money", "bot.catalog", "bot.types", "policies")


@dataclass(frozen=True)
class Import:
    file: str  # relative to the repository, e.g. "bot/money/charges.py"
    line: int
    module: str  # the absolute name imported (a module, or a name in one)
    lazy: bool  # inside a function, so only loaded when that function runs

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.module}" + (" (inside a function)" if self.lazy else "")


def _package_of(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts if path.name == "__init__.py" else parts[:-1]).removesuffix(".__init__")


def imports_of(path: Path, root: Path = ROOT) -> list[Import]:
    """Every import statement in a file, relative imports resolved, with whether it is lazy."""
    found: list[Import] = []
    rel = path.relative_to(root).as_posix()

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                found.extend(Import(rel, child.lineno, alias.name, lazy) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                module = child.module or ""
                if child.level:
                    base = _package_of(path, root).split(".")
                    base = base[: len(base) - (child.level - 1)]
                    module = ".".join([*base, module] if module else base)
                # Each name too: `from bot import store` imports bot.store.
                found.extend(
                    Import(rel, child.lineno, ".".join(filter(None, (module, alias.name))), lazy)
                    for alias in child.names
                )
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=rel), False)
    return found


def imports_under(*folders: str) -> list[Import]:
    return [imp for folder in folders for path in sorted((ROOT / folder).rglob("*.py")) for imp in imports_of(path)]


def of(imp: Import, *packages: str) -> bool:
    return any(imp.module == p or imp.module.startswith(p + ".") for p in packages)


def sdk_in_core(imports: list[Import]) -> list[str]:
    return [
        str(imp)
        for imp in imports
        if imp.file.startswith(("bot/", "policies/"))
        and of(imp, *PLATFORM_SDKS)
        and not (imp.file == WIRING and imp.lazy)
    ]


def adapters_in_core(imports: list[Import]) -> list[str]:
    return [
        str(imp)
        for imp in imports
        if imp.file.startswith(("bot/", "policies/")) and of(imp, "adapters") and not (imp.file == WIRING and imp.lazy)
    ]


def money_above_its_layer(imports: list[Import]) -> list[str]:
    money = [imp for imp in imports if imp.file.startswith("bot/money/")]
    return [
        str(imp)
        for imp in money
        if of(imp, "bot.store", "bot.providers", "adapters", *PLATFORM_SDKS)
        or (of(imp, "bot", "policies", "adapters") and not of(imp, *MONEY_MAY_IMPORT))
    ]


def policies_on_bot(imports: list[Import]) -> list[str]:
    return [str(imp) for imp in imports if imp.file.startswith("policies/") and of(imp, "bot", "adapters")]


def store_in_adapters(imports: list[Import]) -> list[str]:
    return [str(imp) for imp in imports if imp.file.startswith("adapters/") and of(imp, "bot.store")]


@pytest.fixture(scope="module")
def tree() -> list[Import]:
    return imports_under("bot", "policies", "adapters")


def test_the_core_never_imports_a_platform_sdk_but_in_the_wiring_when_it_starts_one(tree):
    assert sdk_in_core(tree) == []


def test_only_the_wiring_imports_adapters_and_only_when_it_starts_them(tree):
    assert adapters_in_core(tree) == []
    # The exception is real: the wiring does import them lazily (else it is stale).
    assert any(of(imp, "adapters") and imp.lazy for imp in tree if imp.file == WIRING)


def test_money_imports_no_store_no_provider_and_nothing_above_it(tree):
    assert money_above_its_layer(tree) == []
    assert any(imp.file.startswith("bot/money/") for imp in tree)


def test_policies_import_nothing_from_bot_or_adapters(tree):
    assert policies_on_bot(tree) == []


def test_adapters_never_import_the_store(tree):
    assert store_in_adapters(tree) == []
    assert any(imp.file.startswith("adapters/") and of(imp, "bot") for imp in tree)


@pytest.mark.parametrize(
    ("file", "source", "rule"),
    [
        ("bot/money/probe.py", "from bot.store.base import Store\n", money_above_its_layer),
        ("bot/money/probe.py", "def f():\n    from bot.providers import errors\n", money_above_its_layer),
        ("bot/money/probe.py", "from bot.worker import Worker\n", money_above_its_layer),
        ("bot/money/probe.py", "from ..store import base\n", money_above_its_layer),
        ("bot/money/probe.py", "from bot import store\n", money_above_its_layer),
        ("policies/probe.py", "from bot.types import Lane\n", policies_on_bot),
        ("bot/service.py", "import slack_sdk\n", sdk_in_core),
        ("policies/probe.py", "from discord import Client\n", sdk_in_core),
        (WIRING, "import slack_bolt\n", sdk_in_core),
        ("bot/cli.py", "def f():\n    from adapters.slack.app import SlackAdapter\n", adapters_in_core),
        (WIRING, "from adapters.discord.client import DiscordAdapter\n", adapters_in_core),
        ("adapters/slack/probe.py", "from bot.store.ports import Store\n", store_in_adapters),
        ("adapters/discord/probe.py", "def f():\n    from bot.store import sqlite\n", store_in_adapters),
    ],
)
def test_each_rule_catches_an_import_that_breaks_it(tmp_path, tree, file, source, rule):
    """The checks are not vacuous: the tree passes, and fails with one bad import added."""
    probe = tmp_path / file
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text(source, encoding="utf-8")
    added = imports_of(probe, root=tmp_path)
    assert added and rule(tree) == []
    assert rule(tree + added) != []
