"""Invariant 1: the core imports no channel SDK, no web framework, no scheduler; and no module
of the project imports itself back through others."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "adapters", "bots", "bench")
FORBIDDEN = {
    "telegram",
    "aiogram",
    "slack_bolt",
    "slack_sdk",
    "fastapi",
    "starlette",
    "uvicorn",
    "apscheduler",
    "httpx",
    "requests",
    "adapters",
    "bots",
}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_source_imports_nothing_forbidden() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & FORBIDDEN)
        for path in (ROOT / "core").rglob("*.py")
    }
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_importing_the_core_loads_nothing_forbidden() -> None:
    probe = (
        "import sys, core.flow, core.conversation, core.definitions, core.storage;"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(set(loaded) & FORBIDDEN) == []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _project_modules() -> dict[str, Path]:
    return {_module_name(path): path for pkg in PACKAGES for path in (ROOT / pkg).rglob("*.py")}


def _imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project's modules that `name` imports, at module level or inside a function.

    `from a import b` names the module `a.b` when there is one, else `a`; a relative import is
    resolved against the importing module's package.
    """
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                found.add(submodule if submodule in modules else module)
    return {module for module in found if module in modules and module != name}


def _a_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle (its modules, the first repeated at the end), or [] without any."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str]:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return []
        path.append(module)
        for imported in sorted(graph[module]):
            if cycle := visit(imported):
                return cycle
        path.pop()
        done.add(module)
        return []

    for module in sorted(graph):
        if cycle := visit(module):
            return cycle
    return []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _a_cycle(graph) == ["a", "b", "c", "a"]
    assert _a_cycle({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back() -> None:
    modules = _project_modules()
    graph = {name: _imported_modules(name, path, modules) for name, path in modules.items()}
    assert "bots.channels" in graph["bots.cli"]  # the walk sees the project's imports
    assert _a_cycle(graph) == []
