"""Conformance kit for cipher packages: a parametrized pytest suite (pytest plugin ``ppattack``).

Installed with ppattack, the plugin is active in every pytest session; it collects nothing by
itself. A cipher package opts in by subclassing :class:`CipherConformance` in its tests::

    # tests/test_conformance.py
    from ppattack.testing import CipherConformance

    class TestMyCiphers(CipherConformance):
        cases = [("row-shuffle", {}, (3, 16, 16)),      # registered name, params, image shape
                 (MyCipher, {"block_size": 4}, (3, 32, 32))]  # or a class (not yet installed)

or runs the suite over installed ciphers from the command line, with a subclass that sets
``cases = None`` and ``pytest --ppattack-cipher NAME[:K=V,...]@C,H,W`` (repeatable).

The suite checks: bit-exact round trip (or within the cipher's ``max_round_trip_error``),
determinism for a seed, fresh CSPRNG keys, key save / load / validation, shape and dtype
errors, dtype and device preserved, key-space sanity, and that every registered attack runs
under the harness on the cipher's ciphertexts (or declines with a clear PPAttackError).
"""
from __future__ import annotations

import json
import math
import stat
from typing import Any

import pytest
import torch

from .cipher import Cipher
from .errors import KeyFileError, PPAttackError, ShapeError
from .key_parsing import key_from_json
from .keys import save_key

Case = tuple[Any, dict[str, Any], tuple[int, int, int]]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ppattack", "ppattack cipher conformance")
    group.addoption("--ppattack-cipher", action="append", default=[], metavar="NAME[:K=V,...]@C,H,W",
                    help="Installed cipher to run CipherConformance suites with `cases = None` on.")


def parse_case(text: str) -> Case:
    """``"proposed:block_size=4@3,32,32"`` -> ``("proposed", {"block_size": 4}, (3, 32, 32))``."""
    from .params import parse_assignments

    spec, _, shape = text.partition("@")
    name, _, params = spec.partition(":")
    dims = tuple(int(v) for v in (shape or "3,32,32").split(","))
    return name, parse_assignments([p for p in params.split(",") if p]), dims  # type: ignore[return-value]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_case" not in metafunc.fixturenames or metafunc.cls is None:
        return
    cases = metafunc.cls.cases
    if cases is None:
        cases = [parse_case(text) for text in metafunc.config.getoption("ppattack_cipher")]
    ids = [f"{c[0] if isinstance(c[0], str) else c[0].name}-{'x'.join(map(str, c[2]))}" for c in cases]
    metafunc.parametrize("conformance_case", cases, ids=ids)


def _devices() -> list[torch.device]:
    return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


class CipherConformance:
    """Subclass and set ``cases``; every test runs once per case."""

    cases: list[Case] | None = []
    batch: int = 3

    # -- helpers -------------------------------------------------------------------------------
    @pytest.fixture
    def cipher(self, conformance_case: Case) -> Cipher:
        from .registry import create_cipher

        target, params, _ = conformance_case
        return create_cipher(target, **params) if isinstance(target, str) else target(**params)

    @pytest.fixture
    def shape(self, conformance_case: Case) -> tuple[int, int, int]:
        return tuple(conformance_case[2])

    @staticmethod
    def images(shape: tuple[int, int, int], n: int = 3, seed: int = 0) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=generator)

    # -- the suite -------------------------------------------------------------------------------
    def test_round_trip(self, cipher: Cipher, shape) -> None:
        key = cipher.generate_key(shape, seed=1)
        x = self.images(shape, self.batch)
        y = cipher.encrypt(x, key)
        restored = cipher.decrypt(y, key)
        error = (restored.int() - x.int()).abs().max().item()
        assert error <= cipher.max_round_trip_error, f"round trip error {error}"

    def test_encryption_changes_images(self, cipher: Cipher, shape) -> None:
        if cipher.key_space_bits(shape) == 0:
            pytest.skip("keyless cipher")
        x = self.images(shape, self.batch)
        y = cipher.encrypt(x, cipher.generate_key(shape, seed=2))
        assert tuple(y.shape[1:]) != tuple(shape) or not torch.equal(y, x)

    def test_seed_is_deterministic(self, cipher: Cipher, shape) -> None:
        x = self.images(shape, self.batch)
        a, b = cipher.generate_key(shape, seed=3), cipher.generate_key(shape, seed=3)
        assert json.dumps(a.to_json()) == json.dumps(b.to_json())
        assert torch.equal(cipher.encrypt(x, a), cipher.encrypt(x, b))
        assert torch.equal(cipher.encrypt(x, a), cipher.encrypt(x, a))

    def test_unseeded_keys_differ(self, cipher: Cipher, shape) -> None:
        if cipher.key_space_bits(shape) < 32:
            pytest.skip("key space too small for a collision-free check")
        a, b = cipher.generate_key(shape), cipher.generate_key(shape)
        assert a.to_json()["material"] != b.to_json()["material"]

    def test_key_file_round_trip(self, cipher: Cipher, shape, tmp_path) -> None:
        key = cipher.generate_key(shape, seed=4)
        path = tmp_path / "key.json"
        save_key(key, path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        loaded = key_from_json(json.loads(path.read_text()), cipher=cipher)
        x = self.images(shape, self.batch)
        assert torch.equal(cipher.encrypt(x, loaded), cipher.encrypt(x, key))

    def test_corrupt_key_material_is_rejected(self, cipher: Cipher, shape) -> None:
        document = cipher.generate_key(shape, seed=5).to_json()
        for field in document["material"]:
            for corrupt in ("garbage", [[-1]], None):
                broken = json.loads(json.dumps(document))
                broken["material"][field] = corrupt
                with pytest.raises(KeyFileError):
                    key_from_json(broken, cipher=cipher)
            missing = json.loads(json.dumps(document))
            del missing["material"][field]
            with pytest.raises(KeyFileError, match=field):
                key_from_json(missing, cipher=cipher)
        # A key with array material is made for one image shape (a seed-only key is not); its
        # height and width both change, as a key may be sized by only one of them.
        if any(isinstance(value, list) for value in document["material"].values()):
            wrong_shape = json.loads(json.dumps(document))
            wrong_shape["shape"] = [shape[0], shape[1] + 1, shape[2] + 1]
            with pytest.raises((KeyFileError, ShapeError)):
                key_from_json(wrong_shape, cipher=cipher)

    def test_shape_and_dtype_errors(self, cipher: Cipher, shape) -> None:
        key = cipher.generate_key(shape, seed=6)
        c, h, w = shape
        with pytest.raises(ShapeError):
            cipher.encrypt(self.images((c, h, w + 1)), key)
        with pytest.raises(ShapeError):
            cipher.encrypt(self.images(shape).float(), key)
        with pytest.raises(ShapeError):
            cipher.encrypt(self.images(shape)[0], key)
        with pytest.raises(ShapeError):
            cipher.check_shape((c + 1, h, w))

    def test_dtype_and_device_are_kept(self, cipher: Cipher, shape) -> None:
        key = cipher.generate_key(shape, seed=7)
        reference = None
        for device in _devices():
            x = self.images(shape, self.batch).to(device)
            y = cipher.encrypt(x, key)
            assert y.device == x.device
            assert tuple(y.shape) == (self.batch, *cipher.encrypted_shape(shape))
            assert cipher.decrypt(y, key).dtype == x.dtype == torch.uint8 or not cipher.invertible
            reference = y.cpu() if reference is None else reference
            assert torch.equal(y.cpu(), reference), "devices disagree"

    def test_key_space_is_sane(self, cipher: Cipher, shape) -> None:
        bits, separable = cipher.key_space_bits(shape), cipher.separable_bits(shape)
        assert math.isfinite(bits) and bits >= 0
        assert 0 <= separable <= bits + 1e-9

    def test_attacks_run_under_the_harness(self, cipher: Cipher, shape) -> None:
        from .attack import Attack
        from .data import Roles
        from .harness import threat_view
        from .registry import ATTACKS, create_attack

        key = cipher.generate_key(shape, seed=8)
        plain = self.images(shape, 4, seed=1)
        public = self.images(shape, 16, seed=2)
        labels = torch.zeros(len(public), dtype=torch.long)
        roles = Roles.from_tensors(public[:8], labels[:8], plain, labels[:4], public[8:], labels[8:])
        ciphertexts = cipher.encrypt(plain, key)
        ran = []
        for name in ATTACKS.names():
            attack_cls: type[Attack] = ATTACKS.get(name)
            budget = "smoke" if "smoke" in attack_cls.budgets else "quick"
            for threat in attack_cls.threat_models:
                model = self.provider_model(cipher, shape) if threat == "model" else None
                try:
                    attack = create_attack(name, budget=budget, threat=threat, device="cpu")
                    view = threat_view(threat, cipher, key, ciphertexts, roles, model=model)
                    result = attack(view)
                except PPAttackError:
                    continue  # declining a cipher with a clear error is conforming
                assert result.images.dtype == torch.uint8
                assert tuple(result.images.shape) == (len(plain), *shape), name
                ran.append(f"{name} ({threat})")
        # every shared-key cipher of the plain shape can be attacked by something: a kit run in
        # which every attack declines says that the cipher hides from the attacks, not that it
        # resists them
        assert ran, f"every registered attack declined cipher {cipher.name}"

    @staticmethod
    def provider_model(cipher: Cipher, shape) -> dict:
        """What the ``model`` threat grants, at the kit's size: an untrained tiny ViT taking the
        cipher's ciphertexts (enough to exercise an attack's code path, not to judge it)."""
        from .learning.classifier import ModelConfig, build_classifier

        patch = int(cipher.block_size or 4)
        config = ModelConfig("vit", tuple(cipher.encrypted_shape(shape)), 2, patch, width=16, depth=1)
        return {"model": build_classifier(config).eval(), "parent": None}
