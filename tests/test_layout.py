"""The package's shape: no import cycle among its modules, the base classes a plugin imports
stay light (the Attack base does not pull in the dataset layer), the sub-packages never import
the orchestration, README's Layout lists every module and pyproject.toml every package."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from ppattack.check import _load_toml

PACKAGE = Path(__file__).resolve().parents[1] / "ppattack"
README = PACKAGE.parent / "README.md"

#: The top-level modules that run things; no module of a sub-package may import them.
ORCHESTRATION = {f"ppattack.{name}" for name in (
    "cli", "harness", "case", "views", "bench", "audit", "audit_check", "check", "report", "restore", "data")}


def package_modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its ``__init__``)."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def module_imports(everywhere: bool = False) -> dict[str, set[str]]:
    """Module -> the package modules it imports at module level (imports inside functions and
    under ``if TYPE_CHECKING`` are lazy and cannot form a cycle at import time), or, with
    ``everywhere``, anywhere in its file (what the module depends on)."""
    names = package_modules()
    graph = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        if everywhere:
            nodes = list(ast.walk(tree))
        else:
            nodes = []
            for node in tree.body:
                if isinstance(node, ast.If):
                    if "TYPE_CHECKING" in ast.unparse(node.test):
                        continue
                    nodes.extend(node.body)
                else:
                    nodes.append(node)
        found = set()
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


def orchestration_imports(graph: dict[str, set[str]]) -> list[str]:
    """"module imports module" for every import of the orchestration by a sub-package's module."""
    files = package_modules()
    in_sub_packages = [name for name in graph if files[name].parent != PACKAGE]
    return sorted(f"{name} imports {target}" for name in in_sub_packages
                  for target in graph[name] & ORCHESTRATION)


def test_sub_packages_do_not_import_the_orchestration():
    graph = module_imports(everywhere=True)
    # it reads imports inside functions too: image_set's digest is imported where it is used
    assert "ppattack.learning.cache" in graph["ppattack.images.image_set"]
    assert orchestration_imports({"ppattack.solvers.pieces": {"ppattack.harness"}}) == [
        "ppattack.solvers.pieces imports ppattack.harness"]
    assert orchestration_imports(graph) == []


def layout_entries(readme: str) -> set[str]:
    """The ``ppattack/...`` paths that the list items of README's "## Layout" section begin with."""
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^ *- `(ppattack/[\w/.]*)`", section, flags=re.MULTILINE))


def package_tree() -> set[str]:
    """Every package (``ppattack/x/``) and module (``ppattack/x/y.py``) of the package."""
    tree = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent)
        tree.add(f"{relative.parent}/" if path.name == "__init__.py" else str(relative))
    return tree


def test_readme_layout_lists_every_module_and_sub_package():
    listed = layout_entries(README.read_text())
    assert {"ppattack/", "ppattack/cipher.py", "ppattack/solvers/"} <= listed  # it reads the section
    tree = package_tree()
    assert sorted(tree - listed) == [], "missing from README's Layout"
    assert sorted(listed - tree) == [], "in README's Layout but not in the package"


def test_the_wheel_lists_every_sub_package():
    # pyproject.toml names the packages one by one (ciphers/ is installed under another name),
    # so a sub-package it does not name would be missing from a non-editable install
    config = _load_toml(PACKAGE.parent / "pyproject.toml")["tool"]["setuptools"]
    listed = {name for name in config["packages"] if name.startswith("ppattack.") or name == "ppattack"}
    packages = {".".join(path.parent.relative_to(PACKAGE.parent).parts) for path in PACKAGE.rglob("__init__.py")}
    assert listed == packages
