"""The package's shape: no import cycle among its modules, and the base classes a plugin
imports stay light (the Attack base does not pull in the dataset layer)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ppattack"


def module_imports() -> dict[str, set[str]]:
    """Module -> the package modules it imports at module level (imports inside functions and
    under ``if TYPE_CHECKING`` are lazy and cannot form a cycle at import time)."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.If):
                if "TYPE_CHECKING" in ast.unparse(node.test):
                    continue
                nodes = node.body
            else:
                nodes = [node]
            for n in nodes:
                if isinstance(n, ast.ImportFrom):
                    base = package.split(".")[:len(package.split(".")) - n.level + 1] if n.level else []
                    target = ".".join(base + ([n.module] if n.module else []))
                    for alias in n.names:
                        full = f"{target}.{alias.name}"
                        found.add(full if full in names else target)
                elif isinstance(n, ast.Import):
                    found.update(alias.name for alias in n.names)
        graph[name] = {m for m in found if m in names and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package():
    graph = module_imports()
    assert "ppattack.harness" in graph and "ppattack.data" in graph["ppattack.harness"]  # it reads imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_attack_base_does_not_import_the_dataset_layer():
    code = "import sys, ppattack.attack, ppattack.cipher; print('ppattack.data' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
