"""Generic code never names a built-in cipher: what it needs comes through Cipher attributes and
hooks, so a plugin is exactly as capable as a built-in (DEVELOPERS rule; issue "cipher hooks")."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ppattack"
# "plain" is not listed: the protocol names it as the positive control and the accuracy baseline.
BUILT_IN = {"proposed", "le", "ele", "pe", "etc", "etc-gray", "block-shuffle", "block-np",
            "block-ffx", "etc_gray", "block_shuffle", "block_np", "block_ffx"}


def names_in_code(source: str) -> list[tuple[int, str]]:
    """(line, what) for every string constant that is a built-in cipher's name (docstrings
    excluded) and every import of the built-in cipher package."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if node.value in BUILT_IN or node.value.startswith("_recover_"):
                found.append((node.lineno, repr(node.value)))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            found += [(node.lineno, f"import {m}") for m in modules if m.startswith("ppattack_ciphers")]
    return found


def test_the_check_finds_names():
    """The check itself works: it catches a name in code, an import and dispatch by name."""
    assert names_in_code('"""proposed in a docstring is fine"""\nx = "etc-gray"\n') == [(2, "'etc-gray'")]
    assert names_in_code('if cipher.name == "block-np":\n    pass\n') == [(1, "'block-np'")]
    assert names_in_code("from ppattack_ciphers.proposed import f\n")[0][1] == "import ppattack_ciphers.proposed"
    assert names_in_code('getattr(self, "_recover_" + name)\n') == [(1, "'_recover_'")]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_generic_modules_name_no_built_in_cipher(path):
    found = names_in_code(path.read_text())
    assert not found, f"{path.name} names built-in ciphers: {found}"
