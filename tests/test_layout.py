"""The package's shape: every import of the package (inside functions too) points down the
floors of docs/architecture.md, "Layers", and no import cycle joins its modules; the base
classes a plugin imports stay light (the Attack base does not pull in the dataset layer);
docs/architecture.md describes every sub-package, every link to a docs page (in README, in docs/
and in docstrings) finds its page and section, and pyproject.toml lists every package."""
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

#: The floors of docs/architecture.md, "Layers", lowest first: (title, modules and packages). A
#: module may import its own floor and the floors below. The last floor, the orchestration, is
#: every top-level module not named here.
FLOORS: list[tuple[str, set[str]]] = [
    ("Foundations", {f"ppattack.{name}" for name in (
        "errors", "version", "offline", "rng", "functional", "file_io", "params", "runtime")}),
    ("The plugin contract", {"ppattack"} | {f"ppattack.{name}" for name in (
        "keys", "unit_map", "cipher", "threat", "attack", "registry", "key_parsing")}),
    ("Images and solvers", {"ppattack.images", "ppattack.solvers"}),
    ("Learning", {"ppattack.learning", "ppattack.model_transform"}),
    ("The attacks", {"ppattack.attacks"}),
    ("The orchestration", set()),
]

#: Imports left out of the floor and cycle checks: (module, imported module, why the import is
#: inside a function and may point where it points). Keep it short.
ALLOWED: set[tuple[str, str, str]] = set()


def package_modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its ``__init__``)."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def module_imports() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its file: at module level, inside
    functions and under ``if TYPE_CHECKING`` alike (each is a dependency of the module)."""
    names = package_modules()
    graph = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for n in ast.walk(ast.parse(path.read_text())):
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


def checked_imports() -> dict[str, set[str]]:
    """:func:`module_imports` without the imports of :data:`ALLOWED`."""
    allowed = {(module, target) for module, target, _ in ALLOWED}
    return {module: {t for t in targets if (module, t) not in allowed}
            for module, targets in module_imports().items()}


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


def path_between(graph: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """A shortest path of imports from ``start`` to ``goal`` (both included), or None."""
    came_from: dict[str, str | None] = {start: None}
    queue = [start]
    for node in queue:
        if node == goal:
            path = [node]
            while (previous := came_from[path[-1]]) is not None:
                path.append(previous)
            return path[::-1]
        for nxt in sorted(graph[node]):
            if nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return None


def all_cycles(graph: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through every import that lies on a cycle of ``graph``, as
    "a -> b -> a" starting at its least module, without repeats: every import that would have to
    go is named, not only the first."""
    found = set()
    for module, targets in graph.items():
        for target in targets:
            back = path_between(graph, target, module)
            if back is not None:
                ring = [module] + back[:-1]
                first = ring.index(min(ring))
                ring = ring[first:] + ring[:first]
                found.add(" -> ".join(ring + ring[:1]))
    return sorted(found)


def floor_of(module: str) -> int | None:
    """The number (0: lowest) of ``module``'s floor in :data:`FLOORS`; None for a module of a
    sub-package that no floor names."""
    for number, (_, members) in enumerate(FLOORS):
        if module in members or any(module.startswith(m + ".") for m in members if m != "ppattack"):
            return number
    return len(FLOORS) - 1 if module.count(".") == 1 else None


def with_floor(module: str) -> str:
    """``module`` followed by its floor's title in parentheses."""
    number = floor_of(module)
    return f"{module} ({FLOORS[number][0] if number is not None else 'no floor'})"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """"module (floor) imports module (floor)" for every import that points up the floors (or
    from or to a module on no floor)."""
    wrong = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            here, there = floor_of(module), floor_of(target)
            if here is None or there is None or there > here:
                wrong.append(f"{with_floor(module)} imports {with_floor(target)}")
    return wrong


def test_the_cycle_finders_find_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert all_cycles({"a": {"b", "c"}, "b": {"a"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> a", "a -> c -> a"]


def test_the_import_reader_reads_imports_inside_functions():
    graph = module_imports()
    assert "ppattack.data" in graph["ppattack.harness"]  # at module level
    assert "ppattack.audit" in graph["ppattack.cli"]  # inside a function (cli starts fast)


def test_no_import_cycle_in_the_package():
    cycles = all_cycles(checked_imports())
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_imports_point_down_the_floors():
    assert floor_of("ppattack.cli") == 5 and floor_of("ppattack.solvers.pieces") == 2
    assert upward_imports({"ppattack.errors": {"ppattack.cli"}}) == [
        "ppattack.errors (Foundations) imports ppattack.cli (The orchestration)"]
    wrong = upward_imports(checked_imports())
    assert wrong == [], "imports up the floors:\n" + "\n".join(wrong)


def test_the_allowed_imports_are_few_and_real():
    graph = module_imports()
    assert len(ALLOWED) <= 4
    for module, target, why in ALLOWED:
        assert target in graph[module] and why, (module, target)


def test_architecture_names_the_floors_in_order():
    text = (DOCS / "architecture.md").read_text()
    layers = text[text.index("## Layers"):]
    places = [layers.find(f"**{title}**") for title, _ in FLOORS]
    assert -1 not in places and places == sorted(places), "docs/architecture.md, 'Layers' and FLOORS differ"


def test_the_attack_base_does_not_import_the_dataset_layer():
    code = "import sys, ppattack.attack, ppattack.cipher; print('ppattack.data' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


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
