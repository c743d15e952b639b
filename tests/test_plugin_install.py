"""A real third-party plugin distribution (tests/plugins/) installed with pip and used by the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).parent / "plugins" / "ppattack-row-shuffle"


def install(package: Path, target: Path) -> dict[str, str]:
    """pip-install ``package`` into ``target``; the environment that imports from it."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(target), str(package)],
                   check=True, capture_output=True, text=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(target), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    return install(PLUGIN, tmp_path_factory.mktemp("site"))


def ppattack(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ppattack.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_installed_plugin_is_listed(plugin_env):
    out = ppattack(plugin_env, "list", "ciphers", "--json")
    assert out.returncode == 0, out.stderr
    names = [row["name"] for row in json.loads(out.stdout)["ciphers"]]
    assert "row-shuffle" in names and "proposed" in names


def test_installed_plugin_encrypts_and_decrypts_files(plugin_env, tmp_path):
    import numpy as np
    from PIL import Image

    image = (np.arange(8 * 8 * 3) % 256).astype(np.uint8).reshape(8, 8, 3)
    Image.fromarray(image).save(tmp_path / "a.png")
    key = tmp_path / "k.json"
    assert ppattack(plugin_env, "keygen", "--cipher", "row-shuffle", "--shape", "3,8,8",
                    "--seed", "1", "-o", str(key)).returncode == 0
    enc = ppattack(plugin_env, "encrypt", "--key", str(key), str(tmp_path / "a.png"), "-o", str(tmp_path / "enc"))
    assert enc.returncode == 0, enc.stderr
    encrypted = np.asarray(Image.open(tmp_path / "enc" / "a.png"))
    perm = json.loads(key.read_text())["material"]["row_perm"]
    assert np.array_equal(encrypted, image[perm])
    dec = ppattack(plugin_env, "decrypt", "--key", str(key), str(tmp_path / "enc"), "-o", str(tmp_path / "dec"))
    assert dec.returncode == 0, dec.stderr
    assert np.array_equal(np.asarray(Image.open(tmp_path / "dec" / "a.png")), image)


def test_installed_plugin_runs_under_the_harness(plugin_env, tmp_path):
    out = ppattack(plugin_env, "run", "--cipher", "row-shuffle", "--attack", "fr", "--no-accuracy",
                   "--limit", "4", "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["cipher"]["name"] == "row-shuffle"
    assert result["cipher"]["key_space_bits"] == pytest.approx(117.66, abs=0.01)  # log2(32!)


SHARED_MAPS = Path(__file__).parent / "plugins" / "ppattack-shared-maps"


@pytest.fixture(scope="module")
def shared_maps_env(tmp_path_factory) -> dict[str, str]:
    return install(SHARED_MAPS, tmp_path_factory.mktemp("site-shared-maps"))


@pytest.mark.parametrize("attack", ["cpa", "keyrec"])
def test_key_recovery_breaks_an_installed_plugin_that_no_attack_names(shared_maps_env, tmp_path, attack):
    """tile-mix (tile scrambling, a shared permutation and inversion mask of the tile vector)
    exists only in its own package: cpa and keyrec learn it from keys of their own. keyrec on
    the photographs of `samples` also settles the picture's turn (measured: exact)."""
    out = ppattack(shared_maps_env, "run", "--cipher", "tile-mix", "--attack", attack, "--no-accuracy",
                   "--limit", "100", "--out", str(tmp_path / attack))
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / attack / "result.json").read_text())
    assert result["attack"]["key_recovery"]["decrypts_exactly"] == 1.0
    assert result["metrics"]["ssim"]["mean"] == pytest.approx(1.0)
