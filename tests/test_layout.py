"""The package's shape: no import cycle among its modules, the base classes a plugin imports
stay light (the Attack base does not pull in the dataset layer), the sub-packages never import
the orchestration, docs/architecture.md describes every sub-package, every link to a docs page
(in README, in docs/ and in docstrings) finds its page and section, and pyproject.toml lists
every package."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from ppattack.check import _load_toml

PACKAGE = Path(__file__).resolve().parents[1] / "ppattack"
ROOT = PACKAGE.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"

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


def architecture_entries(text: str) -> set[str]:
    """The ``ppattack/.../`` packages that the list items of docs/architecture.md begin with."""
    return set(re.findall(r"^ *- `(ppattack/[\w/]*/)`", text, flags=re.MULTILINE))


def sub_packages() -> set[str]:
    """Every sub-package of the package, as ``ppattack/x/`` (the package itself excluded)."""
    return {f"{path.parent.relative_to(ROOT)}/" for path in PACKAGE.rglob("__init__.py")} - {"ppattack/"}


def test_architecture_describes_every_sub_package():
    listed = architecture_entries((DOCS / "architecture.md").read_text())
    assert {"ppattack/solvers/", "ppattack/learning/nets/"} <= listed  # it reads the list
    assert sorted(sub_packages() - listed) == [], "missing from docs/architecture.md"
    assert sorted(listed - sub_packages()) == [], "in docs/architecture.md but not in the package"


def without_code_blocks(markdown: str) -> str:
    """``markdown`` without its fenced code blocks (a ``# comment`` there is no heading)."""
    return re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)


def headings(markdown: str) -> tuple[set[str], set[str]]:
    """The titles of a markdown page's headings, and their anchors as GitHub writes them
    (lower case, punctuation dropped, spaces as hyphens, ``-1``, ``-2`` ... on repeats)."""
    titles = re.findall(r"^#+ +(.+?) *$", without_code_blocks(markdown), flags=re.MULTILINE)
    anchors: set[str] = set()
    for title in titles:
        anchor = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        repeat, unique = 0, anchor
        while unique in anchors:
            repeat += 1
            unique = f"{anchor}-{repeat}"
        anchors.add(unique)
    return {title.replace("`", "") for title in titles}, anchors


def broken_references(text: str, base: Path, pattern: str) -> list[str]:
    """The references to docs pages in ``text`` that do not resolve: ``pattern`` finds a page
    (relative to ``base``) with an optional ``#anchor`` or a quoted section title after it
    (``docs/attacks.md, "Positive controls"``)."""
    broken = []
    for match in re.finditer(pattern + r"""(?:#([\w-]+)|,? ["']([^"'\n]+)["'])?""", text):
        page, anchor, title = base / match.group(1), match.group(2), match.group(3)
        if not page.is_file():
            broken.append(f"{match.group(0)}: no such file")
            continue
        titles, anchors = headings(page.read_text())
        if anchor is not None and anchor not in anchors:
            broken.append(f"{match.group(0)}: no such anchor")
        if title is not None and title not in titles:
            broken.append(f"{match.group(0)}: no such section")
    return broken


#: A docs page named from the repository's root (README, docstrings), and a link between pages.
FROM_ROOT = r"(docs/[\w./-]+?\.md)"
BETWEEN_PAGES = r"\]\(([\w-]+\.md)"
IN_PAGE = r"\]\((#[\w-]+)\)"


def source_files() -> list[Path]:
    """The Python files of the checkout that may name docs pages (no build output)."""
    return sorted(path for folder in ("ppattack", "ciphers", "benchmarks", "tests")
                  for path in (ROOT / folder).rglob("*.py") if "build" not in path.parts)


def test_the_reference_checker_finds_broken_references(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Key files\n\n```toml\n# not a title\n```\n")
    page = "docs/" + "page.md"
    good = f'see {page}, "Key files", [it]({page}#key-files) and ({page})'
    assert broken_references(good, tmp_path, FROM_ROOT) == []
    bad = f'{"docs/" + "gone.md"}; {page}, "Keys"; [it]({page}#keys); {page} "not a title"'
    assert len(broken_references(bad, tmp_path, FROM_ROOT)) == 4
    assert broken_references("[a](page.md#page) [b](gone.md)", tmp_path / "docs", BETWEEN_PAGES) == [
        "](gone.md: no such file"]


def test_every_docs_reference_resolves():
    readme = README.read_text()
    assert "](docs/cli.md)" in readme and "docs/attacks.md" in (PACKAGE / "threat.py").read_text() + readme
    broken = [f"README.md: {b}" for b in broken_references(readme, ROOT, FROM_ROOT)]
    for path in source_files():
        broken += [f"{path.relative_to(ROOT)}: {b}" for b in broken_references(path.read_text(), ROOT, FROM_ROOT)]
    for page in sorted(DOCS.glob("*.md")):
        text = without_code_blocks(page.read_text())
        broken += [f"{page.relative_to(ROOT)}: {b}" for b in broken_references(text, DOCS, BETWEEN_PAGES)]
        anchors = headings(page.read_text())[1]
        broken += [f"{page.relative_to(ROOT)}: {a}" for a in re.findall(IN_PAGE, text) if a[1:] not in anchors]
    assert broken == []


def test_the_wheel_lists_every_sub_package():
    # pyproject.toml names the packages one by one (ciphers/ is installed under another name),
    # so a sub-package it does not name would be missing from a non-editable install
    config = _load_toml(PACKAGE.parent / "pyproject.toml")["tool"]["setuptools"]
    listed = {name for name in config["packages"] if name.startswith("ppattack.") or name == "ppattack"}
    packages = {".".join(path.parent.relative_to(PACKAGE.parent).parts) for path in PACKAGE.rglob("__init__.py")}
    assert listed == packages
