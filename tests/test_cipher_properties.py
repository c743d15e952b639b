"""Properties of every registered cipher: round trips over shapes and block sizes, dtype and
device kept, shape errors, key files, corrupt keys, per-image keys, per-unit transform sets."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ppattack
from ppattack.errors import KeyFileError, ParameterError, ShapeError
from ppattack.key_parsing import key_from_json

NAMES = ppattack.list_ciphers()
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def needs_aes(name: str) -> None:
    if name == "block-ffx":
        pytest.importorskip("Crypto.Cipher.AES")  # pycryptodome: the optional extra "ffx"


def make(name: str, block: int | None = None) -> ppattack.Cipher:
    cipher = ppattack.create_cipher(name)
    return ppattack.create_cipher(name, block_size=block) if block and cipher.block_size else cipher


@st.composite
def cases(draw, name: str):
    """A cipher with a valid block size, an image shape it takes, and a batch."""
    cipher = ppattack.create_cipher(name)
    block = None
    if cipher.block_size:
        block = draw(st.sampled_from([2, 4] if name == "proposed" else [1, 2, 3, 4]))
        cipher = ppattack.create_cipher(name, block_size=block)
    unit = block or 1
    h, w = unit * draw(st.integers(1, 3)), unit * draw(st.integers(1, 3))
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    x = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 3, h, w), dtype=np.uint8))
    return cipher, x, seed


@pytest.mark.parametrize("name", NAMES)
def test_round_trip(name):
    needs_aes(name)

    @SETTINGS
    @given(cases(name))
    def run(case):
        cipher, x, seed = case
        key = cipher.generate_key(tuple(x.shape[1:]), seed=seed)
        y = cipher.encrypt(x, key)
        assert y.dtype == cipher.ciphertext_dtype and y.device == x.device
        assert tuple(y.shape) == (len(x), *cipher.encrypted_shape(tuple(x.shape[1:])))
        restored = cipher.decrypt(y, key)
        assert restored.dtype == torch.uint8 and restored.shape == x.shape
        assert (restored.int() - x.int()).abs().max().item() <= cipher.max_round_trip_error
        if cipher.component_permutation:  # only moves components: each image keeps its values
            assert torch.equal(y.reshape(len(x), -1).sort(1).values, x.reshape(len(x), -1).sort(1).values)

    run()


@pytest.mark.parametrize("name", NAMES)
def test_batch_is_encrypted_image_by_image(name):
    needs_aes(name)
    cipher = make(name, 2)
    x = torch.randint(0, 256, (3, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    key = cipher.generate_key((3, 4, 4), seed=1)
    y = cipher.encrypt(x, key)
    if cipher.key_reuse == "shared":
        assert all(torch.equal(y[i:i + 1], cipher.encrypt(x[i:i + 1], key)) for i in range(3))
    else:
        assert all(torch.equal(y[i:i + 1], cipher.encrypt(x[i:i + 1], key, indices=[i])) for i in range(3))


@pytest.mark.parametrize("name", NAMES)
def test_dtype_device_and_contiguity(name):
    needs_aes(name)
    cipher = make(name, 2)
    key = cipher.generate_key((3, 4, 6), seed=0)
    x = torch.randint(0, 256, (2, 3, 4, 6), dtype=torch.uint8)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    outputs = []
    for device in devices:
        y = cipher.encrypt(x.to(device), key)
        assert y.device.type == device and y.dtype == cipher.ciphertext_dtype and y.is_contiguous()
        assert cipher.decrypt(y, key).device.type == device
        outputs.append(y.cpu())
    assert all(torch.equal(o, outputs[0]) for o in outputs)
    # A non-contiguous batch (a channels-last view) encrypts like its contiguous copy.
    strided = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(cipher.encrypt(strided, key), outputs[0])


@pytest.mark.parametrize("name", NAMES)
def test_shape_and_dtype_errors(name):
    needs_aes(name)
    cipher = make(name, 4)
    key = cipher.generate_key((3, 8, 8), seed=0)
    if cipher.block_size:
        with pytest.raises(ShapeError, match="block_size"):
            cipher.check_shape((3, 8, 6))
        with pytest.raises(ShapeError, match="block_size"):
            cipher.generate_key((3, 10, 8))
    with pytest.raises(ShapeError, match="3-channel"):
        cipher.generate_key((1, 8, 8))
    with pytest.raises(ShapeError, match="key was made for"):
        cipher.encrypt(torch.zeros((1, 3, 8, 4), dtype=torch.uint8), key)
    with pytest.raises(ShapeError, match="uint8"):
        cipher.encrypt(torch.zeros((1, 3, 8, 8)), key)
    y = cipher.encrypt(torch.zeros((1, 3, 8, 8), dtype=torch.uint8), key)
    with pytest.raises(ShapeError):
        cipher.decrypt(y.to(torch.int64), key)
    with pytest.raises(ShapeError):
        cipher.decrypt(y[:, :, :4], key)


@pytest.mark.parametrize("name", NAMES)
def test_key_file_round_trip(name, tmp_path):
    needs_aes(name)
    cipher = make(name, 2)
    key = cipher.generate_key((3, 4, 4))  # CSPRNG
    ppattack.save_key(key, tmp_path / "key.json")
    loaded = ppattack.load_key(tmp_path / "key.json")
    assert loaded.cipher == name and dict(loaded.params) == cipher.params
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    assert torch.equal(cipher.encrypt(x, loaded), cipher.encrypt(x, key))
    restored = ppattack.create_cipher(name, **loaded.params).decrypt(cipher.encrypt(x, key), loaded)
    assert (restored.int() - x.int()).abs().max().item() <= cipher.max_round_trip_error


def corruptions(document: dict) -> list[tuple[str, dict]]:
    """(field name the error must give, corrupted document) pairs."""
    out = []
    for name, value in document["material"].items():
        for bad in ("garbage", [[-1]], None, -1):
            broken = json.loads(json.dumps(document))
            broken["material"][name] = bad
            out.append((name, broken))
        if isinstance(value, list) and value and isinstance(value[0], int) and len(value) > 1:
            broken = json.loads(json.dumps(document))
            broken["material"][name] = value[:-1]  # wrong length
            out.append((name, broken))
            broken = json.loads(json.dumps(document))
            broken["material"][name][0] = max(value) + 300  # out of range / not a permutation
            out.append((name, broken))
        missing = json.loads(json.dumps(document))
        del missing["material"][name]
        out.append((name, missing))
    extra = json.loads(json.dumps(document))
    extra["material"]["bogus"] = [1]
    out.append(("bogus", extra))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_corrupt_key_fields_are_rejected_naming_the_field(name):
    cipher = make(name, 2)
    document = cipher.generate_key((3, 4, 4), seed=0).to_json()
    for field, broken in corruptions(document):
        with pytest.raises(KeyFileError, match=field.replace("[", r"\[").replace("]", r"\]")):
            key_from_json(broken)


def test_ele_nested_fields_are_named():
    document = ppattack.create_cipher("ele", block_size=1).generate_key((3, 2, 2), seed=0).to_json()
    cases = {"blocks[1].perm": lambda m: m["blocks"][1].__setitem__("perm", [0, 0, 1, 2, 3, 4]),
             "blocks[2].flip": lambda m: m["blocks"][2].__setitem__("flip", [2] * 6),
             "blocks[0]": lambda m: m["blocks"][0].pop("flip"),
             "blocks": lambda m: m["blocks"].pop()}
    for field, corrupt in cases.items():
        broken = json.loads(json.dumps(document))
        corrupt(broken["material"])
        with pytest.raises(KeyFileError, match=field.replace("[", r"\[").replace("]", r"\]")):
            key_from_json(broken)


def test_pe_per_image_keys():
    cipher = ppattack.create_cipher("pe")
    key = cipher.generate_key((3, 6, 5))
    assert set(key.material) == {"seed"} and key.material["seed"] >= 0
    x = torch.randint(0, 256, (1, 3, 6, 5), dtype=torch.uint8).expand(4, 3, 6, 5).contiguous()
    y = cipher.encrypt(x, key)  # indices 0..3: four different keys
    assert len({bytes(image.flatten().tolist()) for image in y}) == 4
    assert torch.equal(cipher.encrypt(x, key, indices=torch.arange(4)), y)
    shifted = cipher.encrypt(x, key, indices=[10, 11, 12, 13])
    assert not torch.equal(shifted, y)
    assert torch.equal(cipher.decrypt(shifted, key, indices=np.arange(10, 14)), x)
    assert not torch.equal(cipher.decrypt(shifted, key), x)  # wrong indices do not decrypt
    for bad in ([0, 1], [0, 1, 2, -3], [0.5, 1, 2, 3]):
        with pytest.raises(ParameterError, match="indices"):
            cipher.encrypt(x, key, indices=bad)
    shared = ppattack.create_cipher("pe", key_mode="shared")
    shared_key = shared.generate_key((3, 6, 5), seed=0)
    assert torch.equal(shared.encrypt(x, shared_key, indices=[5, 6, 7, 8]), shared.encrypt(x, shared_key))
    with pytest.raises(KeyFileError, match="seed"):
        key_from_json({**key.to_json(), "material": {"seed": 2**256}})


def unit_cases():
    """(cipher, key, plain units in output order, encrypted units, true candidate numbers)."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (1, 3, 8, 12), dtype=np.uint8))
    out = []
    pe = ppattack.create_cipher("pe", key_mode="shared")
    key = pe.generate_key((3, 8, 12), seed=1)
    m = key.material
    t = 6 * (m["np"][0] + 2 * m["np"][1] + 4 * m["np"][2]) + m["color"]
    out.append((pe, x.permute(0, 2, 3, 1).reshape(-1, 3, 1, 1), pe.encrypt(x, key).permute(0, 2, 3, 1).reshape(-1, 3, 1, 1),
                t.ravel()))
    for name in ("etc", "etc-gray"):
        cipher = ppattack.create_cipher(name, block_size=4)
        key = cipher.generate_key((3, 8, 12), seed=2)
        m = key.material
        if name == "etc":
            t, plane = 12 * m["transform"] + 6 * m["np"] + m["color"], x
        else:
            from ppattack.functional import rgb_to_ycbcr

            t, plane = 2 * m["transform"] + m["np"], rgb_to_ycbcr(x).permute(0, 2, 1, 3).reshape(1, 1, 8, 36)
        y = cipher.encrypt(x, key)

        def blocks(z):
            c = z.shape[1]
            return z.unfold(2, 4, 4).unfold(3, 4, 4).permute(0, 2, 3, 1, 4, 5).reshape(-1, c, 4, 4)

        out.append((cipher, blocks(plane)[m["block_perm"].tolist()], blocks(y), t))
    return out


@pytest.mark.parametrize("case", unit_cases(), ids=lambda c: c[0].name)
def test_unit_transforms_undo_the_true_candidate(case):
    cipher, plain, encrypted, truth = case
    units = cipher.unit_transforms((3, 8, 12))
    assert encrypted.shape[-1] == units.unit_size
    for i, t in enumerate(truth.tolist()):
        assert torch.equal(units.undo(encrypted[i:i + 1], t), plain[i:i + 1])
    # The candidates of one unit are distinct transforms (on a unit with distinct values).
    probe = torch.arange(encrypted[0].numel(), dtype=torch.uint8).view(1, *encrypted.shape[1:]) * 3 + 1
    undone = {bytes(units.undo(probe, t).flatten().tolist()) for t in range(units.count)}
    assert len(undone) == units.count
