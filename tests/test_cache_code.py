"""The trained-network cache names the code that trains: an edited ppattack or plugin never reads
a network that other code trained."""
from __future__ import annotations

import importlib.util
import sys

import pytest

import ppattack
from ppattack.harness import RunConfig, run
from ppattack.learning import cache
from ppattack.runtime.digest import class_source_digest, source_digest


def test_source_digest_follows_every_python_file_and_its_name(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    (tmp_path / "notes.txt").write_text("not code\n")
    first = source_digest(tmp_path)
    assert source_digest(tmp_path) == first
    (tmp_path / "notes.txt").write_text("other notes\n")
    assert source_digest(tmp_path) == first  # only Python source counts
    (tmp_path / "sub" / "b.py").write_text("y = 3\n")
    edited = source_digest(tmp_path)
    assert edited != first
    (tmp_path / "sub" / "b.py").rename(tmp_path / "sub" / "c.py")
    assert source_digest(tmp_path) not in (first, edited)
    assert source_digest(tmp_path / "a.py") != source_digest(tmp_path / "sub" / "c.py")


def test_a_plugin_class_is_named_by_its_source_file(tmp_path, monkeypatch):
    module_file = tmp_path / "plugin_under_test.py"

    def load() -> type:
        spec = importlib.util.spec_from_file_location("plugin_under_test", module_file)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, "plugin_under_test", module)
        spec.loader.exec_module(module)
        return module.Thing

    module_file.write_text("class Thing:\n    scale = 1\n")
    first = class_source_digest(load())
    module_file.write_text("class Thing:\n    scale = 2\n")
    assert class_source_digest(load()) != first
    # a class whose module has no file (built at run time, or a C extension's): "-", no error
    assert class_source_digest(type("Built", (), {"__module__": "module_without_a_file"})) == "-"


def edited_source(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    """As if ppattack's source read ``text``: the cache's code version is computed afresh."""
    monkeypatch.setattr(cache, "source_digest", lambda path: text)
    cache.code_version.cache_clear()


def test_a_network_trained_by_other_code_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setenv("PPATTACK_CACHE", str(tmp_path))

    def trained_network() -> str:
        config = RunConfig(cipher="proposed", attack="itn", limit=8, accuracy=False,
                           params={"attack.steps": 3, "attack.eval_every": 3})
        return run(config).document["attack"]["facts"]["trained_network"]

    try:
        edited_source(monkeypatch, "the code that trained first")
        assert trained_network() == "trained"
        assert trained_network() == "cache hit"
        edited_source(monkeypatch, "an edited training loop")
        assert trained_network() == "trained"
    finally:
        cache.code_version.cache_clear()


def test_the_identity_of_a_trained_network_names_the_attack_and_cipher_classes():
    import torch

    from ppattack.threat import ThreatView

    cipher = ppattack.create_cipher("proposed", block_size=4)
    attack = ppattack.create_attack("itn", steps=1)
    view = ThreatView("coa", cipher, (3, 32, 32), torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    identity = attack.cache_identity(view)
    assert identity["attack_code"] == class_source_digest(type(attack)) != "-"
    assert identity["cipher_code"] == class_source_digest(type(cipher)) != "-"
