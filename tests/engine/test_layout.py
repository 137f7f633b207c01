"""The engine's layering, read from the source: no import cycle inside engine/ (imports inside
functions included), engine.api loads only the torch-free types at import, and the server and
the CLI reach the engine only through its API and never import torch."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
API = {"engine.api", "engine.types", "engine.imageio"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(package: str) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((REPO / package).rglob("*.py"))}


def _imports(path: Path, known: set[str], top_level_only: bool = False) -> set[str]:
    """Modules `path` imports (resolved to a module where `from X import m` names one)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                found.add(full if full in known else base)
    return found


def test_no_import_cycle_in_the_engine():
    modules = _modules("engine")
    graph = {m: sorted(_imports(p, set(modules)) & set(modules)) for m, p in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in graph[m]:
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m)


def test_the_api_imports_only_the_types_when_loaded():
    modules = _modules("engine")
    engine_imports = {m for m in _imports(REPO / "engine/api.py", set(modules), True)
                      if m.startswith("engine")}
    assert engine_imports == {"engine.types"}
    out = subprocess.run([sys.executable, "-c", "import sys, engine.api; "
                          "print(sorted(m for m in sys.modules if m.startswith(('engine', 'torch'))))"],
                         cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['engine', 'engine.api', 'engine.types']"


def test_server_and_cli_reach_the_engine_only_through_its_api():
    for package in ("server", "seamwise"):
        for name, path in _modules(package).items():
            used = _imports(path, set())
            assert not {m for m in used if m.split(".")[0] == "torch"}, name
            assert {m for m in used if m.split(".")[0] == "engine"} <= API, name
