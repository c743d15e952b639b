"""The plugin guide's code works as printed: docs/plugins.md's example package registers its
ciphers, they pass the conformance kit, and key recovery treats them as the guide says.

The guide's code blocks whose first line names a file (``# ppattack_block_turn.py``) are
written out and used as they are, so that an edit that breaks them fails here. The kit's last
check (every attack under the harness) takes 15-30 s on a CPU core for the two ciphers, so it is
left out; the cpa checks below cover the hooks that key recovery reads.
"""
from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
import torch

pytest_plugins = ["pytester"]

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"
FILES = ("pyproject.toml", "ppattack_block_turn.py", "ppattack_row_scramble.py", "tests/test_conformance.py")


def guide_files(text: str) -> dict[str, str]:
    """``{file name: content}`` of the fenced code blocks whose first line is ``# <file name>``."""
    files = {}
    for body in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M):
        first = body.splitlines()[0] if body else ""
        if re.fullmatch(r"# [\w./-]+\.(py|toml)", first):
            files[first[2:]] = body
    return files


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    found = guide_files(GUIDE.read_text(encoding="utf-8"))
    assert set(FILES) <= set(found), f"the guide lacks {sorted(set(FILES) - set(found))}"
    return found


@pytest.fixture(scope="module")
def modules(files, tmp_path_factory) -> dict[str, object]:
    """The guide's two cipher modules, imported from a scratch folder."""
    folder = tmp_path_factory.mktemp("guide")
    loaded = {}
    for name in ("ppattack_block_turn", "ppattack_row_scramble"):
        path = folder / f"{name}.py"
        path.write_text(files[f"{name}.py"], encoding="utf-8")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        loaded[name] = module
    return loaded


def test_the_pyproject_registers_each_example_under_its_name(files, modules):
    project = tomllib.loads(files["pyproject.toml"])
    entry_points = project["project"]["entry-points"]["ppattack.ciphers"]
    assert sorted(project["tool"]["setuptools"]["py-modules"]) == sorted(modules)
    assert len(entry_points) == 2
    for name, target in entry_points.items():
        module, _, attribute = target.partition(":")
        assert getattr(modules[module], attribute).name == name


def test_the_examples_pass_the_conformance_kit(files, pytester):
    # the guide's tests/test_conformance.py under a name of its own: a module named
    # test_conformance is already imported from this suite's own tests/
    targets = {"ppattack_block_turn.py": "ppattack_block_turn.py",
               "ppattack_row_scramble.py": "ppattack_row_scramble.py",
               "tests/test_conformance.py": "test_guide_examples_conform.py"}
    for name, target in targets.items():
        (pytester.path / target).write_text(files[name], encoding="utf-8")
    pytester.syspathinsert()
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "-k", "not attacks_run")
    result.assert_outcomes(passed=18)  # 9 checks x 2 ciphers


def _cpa(cipher, shape=(3, 16, 16)):
    """cpa under the harness against ``cipher``: (attack result, victim key, plain images)."""
    from ppattack.data import Roles
    from ppattack.harness import threat_view
    from ppattack.registry import create_attack
    from ppattack.testing import CipherConformance

    key = cipher.generate_key(shape, seed=8)
    plain, public = CipherConformance.images(shape, 4, seed=1), CipherConformance.images(shape, 16, seed=2)
    labels = torch.zeros(len(public), dtype=torch.long)
    roles = Roles.from_tensors(public[:8], labels[:8], plain, labels[:4], public[8:], labels[8:])
    view = threat_view("cpa", cipher, key, cipher.encrypt(plain, key), roles)
    return create_attack("cpa", budget="quick", threat="cpa", device="cpu")(view), key, plain


def test_block_turn_hooks_give_back_the_key(modules):
    """key_from_map turns cpa's exact map into the victim key; every candidate of
    unit_transforms undoes the turn of the same number."""
    from ppattack.harness import key_recovery_scores

    module = modules["ppattack_block_turn"]
    cipher = module.BlockTurn(block_size=4)
    result, key, plain = _cpa(cipher)
    assert torch.equal(result.images, plain)
    assert {k: list(v) for k, v in result.recovered_key.items()} == \
        {k: v.tolist() for k, v in key.material.items()}
    scores = key_recovery_scores(cipher, key, result.recovered_key, result.recovered_map)
    assert scores["complete"] == scores["direct"] == scores["turn"] == 1.0
    blocks = torch.randint(0, 256, (5, 3, 4, 4), dtype=torch.uint8)
    transforms = cipher.unit_transforms((3, 16, 16))
    assert transforms.count == 8 and transforms.key_parts(torch.arange(8).numpy())["turn"].tolist() == list(range(8))
    for t in range(8):
        assert torch.equal(transforms.undo(module.turn(blocks, t), t), blocks)


def test_row_scramble_is_recovered_as_a_map(modules):
    """Without key_from_map, cpa decrypts with the map and the map alone is scored."""
    from ppattack.harness import key_recovery_scores

    cipher = modules["ppattack_row_scramble"].RowScramble()
    result, key, plain = _cpa(cipher)
    assert torch.equal(result.images, plain) and result.recovered_key is None
    scores = key_recovery_scores(cipher, key, result.recovered_key, result.recovered_map)
    assert scores == {"map_bits": 1.0, "decrypts_exactly": 1.0, "complete": 1.0}


def test_guide_files_reads_only_named_blocks():
    text = "```python\n# a.py\nx = 1\n```\n\n```python\nimport b\n```\n\n```toml\n# c.toml\n[x]\n```\n"
    assert guide_files(text) == {"a.py": "# a.py\nx = 1\n", "c.toml": "# c.toml\n[x]\n"}
