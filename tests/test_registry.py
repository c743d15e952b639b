"""Registries: entry points, broken plugins, duplicates, wildcards and suggestions."""
from __future__ import annotations

import importlib
import textwrap
from pathlib import Path

import pytest

import ppattack
from ppattack.errors import ParameterError, PluginError, UnknownComponentError
from ppattack.registry import ATTACKS, CIPHERS


def make_distribution(root: Path, name: str, entry_points: dict[str, str], module: str | None = None,
                      source: str = "") -> None:
    """Write a minimal installed distribution (a dist-info folder) into ``root``."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = ["[ppattack.ciphers]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    if module:
        (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    CIPHERS.reload()
    yield tmp_path
    monkeypatch.undo()
    importlib.invalidate_caches()
    CIPHERS.reload()


def test_builtin_ciphers_come_from_entry_points():
    from importlib import metadata

    names = {ep.name for ep in metadata.entry_points(group="ppattack.ciphers")}
    assert {"plain", "proposed"} <= names
    assert {"plain", "proposed"} <= set(ppattack.list_ciphers())
    assert "fr" in ppattack.list_attacks()


def test_wildcards_and_suggestions():
    assert ppattack.list_ciphers("pro*") == ["proposed"]
    assert ppattack.list_ciphers("zzz*") == []
    with pytest.raises(UnknownComponentError, match="did you mean proposed"):
        ppattack.create_cipher("propsed")


def test_unknown_parameter_lists_the_accepted_ones():
    with pytest.raises(ParameterError, match="has no parameter 'blocksize'.*block_size"):
        ppattack.create_cipher("proposed", blocksize=4)


def test_attack_parameters_include_the_base_class_ones():
    attack = ppattack.create_attack("fr", budget="quick", seed=3, grayscale=True)
    assert attack.params == {"budget": "quick", "threat": "coa", "seed": 3, "grayscale": True,
                             "solver": "auto", "icm_iterations": 10}
    with pytest.raises(ParameterError, match="supports threat models coa"):
        ppattack.create_attack("fr", threat="kpa")


def test_broken_plugin_is_skipped_with_a_warning(plugin_path, caplog):
    make_distribution(plugin_path, "broken-plugin", {"broken": "broken_cipher_mod:Broken"},
                      "broken_cipher_mod", "raise ImportError('missing dependency foo')\n")
    with caplog.at_level("WARNING"):
        names = ppattack.list_ciphers()
    assert "broken" not in names and "proposed" in names
    assert "skipping cipher plugin 'broken' from broken-plugin 1.0: failed to import" in caplog.text
    with pytest.raises(UnknownComponentError, match="missing dependency foo"):
        ppattack.create_cipher("broken")


def test_plugin_that_is_not_a_cipher_is_skipped(plugin_path):
    make_distribution(plugin_path, "odd-plugin", {"odd": "odd_mod:Thing"}, "odd_mod", "class Thing: pass\n")
    assert "odd" not in ppattack.list_ciphers()
    assert "not a subclass of ppattack.Cipher" in CIPHERS.failures["odd"]


def test_duplicate_names_name_both_distributions(plugin_path):
    make_distribution(plugin_path, "other-ciphers", {"proposed": "other_mod:Proposed"})
    with pytest.raises(PluginError, match=r"registered twice: by .*(ppattack|other-ciphers).* and by .*(other-ciphers|ppattack)"):
        ppattack.list_ciphers()


def test_list_command_survives_a_broken_plugin(plugin_path, cli_runner):
    from ppattack.cli import cli

    make_distribution(plugin_path, "broken-plugin", {"broken": "broken_cipher_mod2:Broken"},
                      "broken_cipher_mod2", "import does_not_exist_anywhere\n")
    result = cli_runner.invoke(cli, ["list", "ciphers", "--json"])
    assert result.exit_code == 0, result.output
    assert '"proposed"' in result.stdout and '"broken"' not in result.stdout


def test_attack_registry_is_separate():
    assert "fr" not in ppattack.list_ciphers()
    assert ATTACKS.get("fr").threat_models == ("coa", "coa+public")


def test_a_parameter_value_a_component_cannot_take_is_a_parameter_error():
    with pytest.raises(ppattack.ParameterError, match="cannot take .*icm_iterations='x'"):
        ppattack.create_attack("fr", icm_iterations="x")
