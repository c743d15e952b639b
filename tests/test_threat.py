"""The attacker's view: each threat model grants exactly what attacks.md says, by construction.

No view carries the victim key or a victim plaintext (targets or training images), except the
kpa pairs and the cpa oracle that those models grant on purpose.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

import ppattack
from ppattack.attack import Attack
from ppattack.data import Dataset, assign_roles
from ppattack.errors import ParameterError
from ppattack.learning.classifier import TRAIN_NUMBERS
from ppattack.harness import encrypted_training_images, threat_view
from ppattack.keys import Key
from ppattack.threat import THREAT_MODELS, ThreatView

SHAPE = (3, 16, 16)
GRANTED = {  # threat model -> the optional fields it fills
    "coa": set(),
    "coa+public": {"public_images", "public_labels"},
    "kpa": {"public_images", "public_labels", "known_pairs"},
    "cpa": {"public_images", "public_labels", "oracle"},
}


@pytest.fixture(scope="module")
def case():
    generator = torch.Generator().manual_seed(0)
    images = lambda n: torch.randint(0, 256, (n, *SHAPE), dtype=torch.uint8, generator=generator)  # noqa: E731
    dataset = Dataset.from_tensors("synthetic", ("a", "b"), images(20), torch.arange(20) % 2, images(6),
                                   torch.arange(6) % 2)
    roles = assign_roles(dataset, 4)
    cipher = ppattack.create_cipher("proposed", block_size=4)
    key = cipher.generate_key(SHAPE, seed=1)
    return roles, cipher, key, cipher.encrypt(roles.targets.tensor(), key)


def reachable_tensors(obj: Any, seen: set[int] | None = None) -> list[torch.Tensor]:
    """Every tensor reachable from ``obj`` through fields, containers and attributes."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None), torch.device)):
        return []
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return [obj] + ([obj._base] if obj._base is not None else [])
    if isinstance(obj, dict) or hasattr(obj, "items") and callable(obj.items):
        children = [v for pair in obj.items() for v in pair]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = list(obj)
    elif dataclasses.is_dataclass(obj) or hasattr(obj, "__dict__"):
        children = list(vars(obj).values())
    else:
        children = []
    return [t for child in children for t in reachable_tensors(child, seen)]


def reaches_key(obj: Any, key: Key, seen: set[int] | None = None) -> bool:
    seen = set() if seen is None else seen
    if obj is key:
        return True
    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None), torch.Tensor)):
        return False
    seen.add(id(obj))
    if hasattr(obj, "keys") and callable(obj.keys):  # mappings, weak-key dictionaries included
        children = [v for k in list(obj.keys()) for v in (k, obj[k])]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = list(obj)
    elif hasattr(obj, "__dict__"):
        children = list(vars(obj).values())
    else:
        children = []
    return any(reaches_key(child, key, seen) for child in children)


def shares_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def test_the_view_has_no_field_for_a_key_or_the_victim_plaintexts():
    names = {f.name for f in dataclasses.fields(ThreatView)}
    assert names == {"threat_model", "cipher", "plain_shape", "ciphertexts", "public_images",
                     "public_labels", "known_pairs", "oracle", "model", "training_ciphertexts",
                     "training_labels", "data_id"}
    assert not any("key" in name or "target" in name or "plain" == name for name in names)


@pytest.mark.parametrize("threat", sorted(GRANTED))
def test_each_threat_model_grants_exactly_its_fields(case, threat):
    roles, cipher, key, ciphertexts = case
    view = threat_view(threat, cipher, key, ciphertexts, roles)
    optional = {"public_images", "public_labels", "known_pairs", "oracle", "model", "training_ciphertexts",
                "training_labels"}
    filled = {name for name in optional if getattr(view, name) is not None}
    assert filled == GRANTED[threat]
    assert torch.equal(view.ciphertexts, ciphertexts) and view.plain_shape == SHAPE
    assert view.data_id and ("public=" in view.data_id) == (threat != "coa")


@pytest.mark.parametrize("threat", ["coa", "coa+public", "kpa"])
@pytest.mark.parametrize("training", [False, True])
def test_no_view_reaches_the_key_or_a_victim_plaintext(case, threat, training):
    roles, cipher, key, ciphertexts = case
    cipher.encrypt(roles.targets.tensor(), key)  # the harness's cipher has now cached the key's plan
    view = threat_view(threat, cipher, key, ciphertexts, roles, training_ciphertexts=training)
    assert (view.training_ciphertexts is not None) == training == (view.training_labels is not None)
    assert view.cipher is not cipher and not reaches_key(view, key)
    stores = [roles.targets.source.images, roles.victim_train.source.images]  # the whole splits
    targets, victim_train = roles.targets.tensor(), roles.victim_train.tensor()
    tensors = reachable_tensors(view)
    assert tensors
    for tensor in tensors:
        assert not any(shares_storage(tensor, store) for store in stores)
        if tensor.dtype == torch.uint8 and tuple(tensor.shape[1:]) == SHAPE:
            for image in tensor:  # no victim image is in the view, not even as a copy
                assert not (targets == image).flatten(1).all(1).any()
                assert not (victim_train == image).flatten(1).all(1).any()


def test_kpa_pairs_are_under_the_victim_key_and_cpa_oracle_encrypts(case):
    roles, cipher, key, ciphertexts = case
    view = threat_view("kpa", cipher, key, ciphertexts, roles, known_pairs=3)
    plain, encrypted = view.known_pairs
    assert len(plain) == 3 and torch.equal(cipher.encrypt(plain, key), encrypted)
    assert torch.equal(plain, roles.public[:3].tensor())  # the attacker's own images, not the victim's
    oracle = threat_view("cpa", cipher, key, ciphertexts, roles).oracle
    x = roles.public[:2].tensor()
    assert torch.equal(oracle(x), cipher.encrypt(x, key))


@pytest.mark.parametrize("cipher_name", ["proposed", "pe"])
def test_training_ciphertexts_are_the_training_images_as_the_cloud_receives_them(case, cipher_name):
    """Image i of the victim's training set under number TRAIN_NUMBERS + i, as the protected
    classifier's training encrypts it (per-image ciphers included), on the CPU."""
    roles, _, _, _ = case
    cipher = ppattack.create_cipher(cipher_name, **({"block_size": 4} if cipher_name == "proposed" else {}))
    key = cipher.generate_key(SHAPE, seed=3)
    targets = cipher.encrypt(roles.targets.tensor(), key)
    view = threat_view("coa", cipher, key, targets, roles, training_ciphertexts=True)
    numbers = torch.arange(len(roles.victim_train)) + TRAIN_NUMBERS
    expected = cipher.encrypt(roles.victim_train.tensor(), key, indices=numbers)
    assert view.training_ciphertexts.device.type == "cpu"
    assert torch.equal(view.training_ciphertexts, expected)
    # ... with the labels the provider sends with them, image for image, in a copy of its own
    assert view.training_labels.device.type == "cpu" and view.training_labels.dtype == torch.int64
    assert torch.equal(view.training_labels, roles.victim_train_labels)
    assert not shares_storage(view.training_labels, roles.victim_train_labels)
    chunked = encrypted_training_images(cipher, key, roles.victim_train, torch.device("cpu"), chunk=3)
    assert torch.equal(chunked, expected)  # chunks keep each image's number
    assert threat_view("coa", cipher, key, targets, roles).training_ciphertexts is None
    assert threat_view("coa", cipher, key, targets, roles).training_labels is None


class Inspector(Attack):
    """A test attack that records what its view holds."""

    name = "inspector"
    threat_models = ("coa", "coa+public", "kpa", "cpa")
    seen: dict[str, Any] = {}

    def reconstruct(self, view: ThreatView) -> torch.Tensor:
        Inspector.seen = {f.name: getattr(view, f.name) for f in dataclasses.fields(view)}
        return torch.zeros((len(view.ciphertexts), *view.plain_shape), dtype=torch.uint8)


@pytest.mark.parametrize("threat", sorted(GRANTED))
def test_an_attack_sees_only_its_view(case, threat):
    roles, cipher, key, ciphertexts = case
    view = threat_view(threat, cipher, key, ciphertexts, roles)
    Inspector(threat=threat)(view)
    assert not any(isinstance(value, Key) for value in Inspector.seen.values())
    assert (Inspector.seen["public_images"] is None) == (threat == "coa")
    with pytest.raises(ParameterError, match="was given a 'coa' view"):
        Inspector(threat="kpa")(threat_view("coa", cipher, key, ciphertexts, roles))


def test_every_threat_model_is_described():
    assert set(GRANTED) <= set(THREAT_MODELS)


def test_per_image_ciphers_give_known_pairs_and_oracle_queries_their_own_numbers(case):
    """With per-image keys (pe), targets are images 0..N-1; the kpa pairs and each cpa query
    are further images of the victim, never a re-use of a target's key."""
    roles, _, _, _ = case
    cipher = ppattack.create_cipher("pe")
    key = cipher.generate_key(SHAPE, seed=2)
    targets = cipher.encrypt(roles.targets.tensor(), key)
    n = len(targets)
    kpa = threat_view("kpa", cipher, key, targets, roles, known_pairs=3)
    known, encrypted = kpa.known_pairs
    assert torch.equal(encrypted, cipher.encrypt(known, key, indices=[n, n + 1, n + 2]))
    cpa = threat_view("cpa", cipher, key, targets, roles)
    first, second = cpa.oracle(known[:1]), cpa.oracle(known[:1])
    assert torch.equal(first, cipher.encrypt(known[:1], key, indices=[n]))
    assert torch.equal(second, cipher.encrypt(known[:1], key, indices=[n + 1]))


def test_the_attack_seed_tells_nothing_about_the_victim_key(monkeypatch):
    """The victim key and the attack get separate seeds derived from the run's seed (SHA-256),
    so an attack cannot regenerate the key from the seed it is given."""
    from ppattack.harness import RunConfig, role_seed, run
    from ppattack.registry import CIPHERS

    cls = CIPHERS.get("proposed")
    seeds = []
    real = cls.generate_key
    monkeypatch.setattr(cls, "generate_key", lambda self, shape, seed=None: seeds.append(seed) or real(self, shape, seed))
    document = run(RunConfig(cipher="proposed", attack="fr", limit=2, accuracy=False, seed=7)).document
    attack_seed = document["attack"]["params"]["seed"]
    assert seeds[0] == role_seed(7, "victim-key")  # the harness made the victim key first
    assert attack_seed == role_seed(7, "attack")
    assert len({7, seeds[0], attack_seed}) == 3
    assert role_seed(7, "attack") == role_seed(7, "attack") != role_seed(8, "attack")  # reproducible
