"""The shape of the package, checked: no import cycle between modules, the dispatcher knows
connectors only through their boundary, and the client and its commands stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).parents[1] / "src"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in (SOURCE / "smsgw").rglob("*.py")}


def imported(module: str, *, module_level_only: bool) -> set[str]:
    """The smsgw modules `module` imports (at its top level only, or anywhere in it; imports
    under `if TYPE_CHECKING:` are never run and do not count)."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = [n for n in tree.body if not isinstance(n, ast.If)] if module_level_only else list(ast.walk(tree))
    if not module_level_only:
        checking = [n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING"]
        skipped = {id(inner) for block in checking for inner in ast.walk(block)}
        nodes = [n for n in nodes if id(n) not in skipped]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] if node.level else [])
            name = ".".join(part for part in (base, node.module or "") if part)
            found.update(n for n in [name, *(f"{name}.{alias.name}" for alias in node.names)] if n in MODULES)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
    found.discard(module)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
    ids=["chain", "pair", "triangle-and-a-tail"],
)
def test_the_cycle_finder_finds_cycles(graph, expected):
    assert cycles(graph) == expected


def test_no_module_imports_itself_round_a_cycle():
    graph = {module: imported(module, module_level_only=True) for module in MODULES}
    assert cycles(graph) == []


def test_only_the_runtime_wiring_knows_the_smpp_connector():
    """The dispatcher drives connectors through connectors/base.py; which kind it drives is
    decided in one place."""
    knowing = sorted(
        module
        for module in MODULES
        if module.startswith("smsgw.dispatch.")
        and any(name.startswith("smsgw.connectors.smpp") for name in imported(module, module_level_only=False))
    )
    assert knowing == ["smsgw.dispatch.runtime"]


def test_the_client_package_uses_only_itself_and_the_pure_rules():
    outside = {
        name
        for module in MODULES
        if module.startswith("smsgw.client")
        for name in imported(module, module_level_only=False)
        if not name.startswith(("smsgw.client", "smsgw.domain")) and name != "smsgw"
    }
    assert outside == set()


def test_client_commands_load_neither_the_server_nor_the_store():
    """`smsgw balance` makes one HTTP call: it must not pay for FastAPI, uvicorn, SQLAlchemy
    and asyncpg at every start."""
    code = (
        "import sys\n"
        "from smsgw.cli.main import main\n"
        "for command in ('send', 'balance', 'dlr'):\n"
        "    main.get_command(None, command)\n"
        "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'sqlalchemy', 'asyncpg') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
