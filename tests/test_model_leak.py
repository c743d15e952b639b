"""model-leak: the key from the provider's ViT, with and without the public parent."""
from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch

import ppattack
from ppattack.cipher import KeyField
from ppattack.solvers.keyscore import score_map, score_recovery
from ppattack.model_transform import encrypt_model
from ppattack.threat import ThreatView
from smooth import smooth_images

SHAPE = (3, 32, 32)


def component(shape, b, block, k):
    """Flat (C, H, W) index of entry k ((row, col, channel) order) of b x b block ``block``."""
    c, h, w = shape
    per_row = w // b
    return (k % c) * h * w + ((block // per_row) * b + k // (b * c)) * w + (block % per_row) * b + (k // c) % b


class MapCipher(ppattack.Cipher):
    """A plugin-like cipher that is never registered: ciphertext component q = plain component
    ``index(key)[q]``, inverted where ``flips(key)[q]``; no key_from_map."""

    paper = "test"

    def __init__(self, block_size: int = 4) -> None:
        super().__init__(block_size=block_size)
        self.block_size = block_size

    def key_space_bits(self, shape):
        return 1.0

    def compile(self, key, device):
        mask = torch.as_tensor(self.flips(key).astype(np.uint8) * 255, device=device)
        return torch.as_tensor(self.index(key), device=device), mask

    def apply(self, x, plan, inverse):
        index, mask = plan
        flat = x.reshape(len(x), -1)
        if not inverse:
            return (flat[:, index] ^ mask).view(x.shape)
        out = torch.empty_like(flat)
        out[:, index] = flat ^ mask
        return out.view(x.shape)


class TileMix(MapCipher):
    """Blocks scrambled, then one permutation and one inversion mask of every block vector."""

    name = "test-tile-mix"

    def key_fields(self, shape):
        c, h, w = shape
        b = self.block_size
        return {"tiles": KeyField(((h // b) * (w // b),), permutation=True),
                "entries": KeyField((c * b * b,), permutation=True), "mask": KeyField((c * b * b,))}

    def _where(self, key):
        c, h, w = key.shape
        return (np.arange((h // self.block_size) * (w // self.block_size))[:, None],
                np.arange(c * self.block_size ** 2)[None])

    def index(self, key):
        block, k = self._where(key)
        index = np.empty(int(np.prod(key.shape)), np.int64)
        index[component(key.shape, self.block_size, block, k)] = component(
            key.shape, self.block_size, key.material["tiles"][block], key.material["entries"][k])
        return index

    def flips(self, key):
        block, k = self._where(key)
        flips = np.empty(int(np.prod(key.shape)), np.int64)
        flips[component(key.shape, self.block_size, block, k)] = key.material["mask"][k]
        return flips


class Quarters(MapCipher):
    """Blocks scrambled, then each quarter of every block gets a pixel shuffle of its own
    (the same in every block); a pixel's channels move together."""

    name = "test-quarters"

    def key_fields(self, shape):
        _, h, w = shape
        b = self.block_size
        return {"tiles": KeyField(((h // b) * (w // b),), permutation=True),
                "quarters": KeyField((4, (b // 2) ** 2), permutation=True)}

    def index(self, key):
        c, h, w = key.shape
        b, half, per_row = self.block_size, self.block_size // 2, w // self.block_size
        r, col = np.divmod(np.arange(h * w), w)
        src_block = key.material["tiles"][(r // b) * per_row + col // b]
        y, x = r % b, col % b
        quarter = (y // half) * 2 + x // half
        src = key.material["quarters"][quarter, (y % half) * half + x % half]
        src_y, src_x = (quarter // 2) * half + src // half, (quarter % 2) * half + src % half
        pixel = ((src_block // per_row) * b + src_y) * w + (src_block % per_row) * b + src_x
        return (np.arange(c)[:, None] * h * w + pixel[None]).reshape(-1)

    def flips(self, key):
        return np.zeros(int(np.prod(key.shape)), np.int64)


def tiny_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=4, num_classes=10,
                             embed_dim=48, depth=1, num_heads=1)


def make(name: str | ppattack.Cipher):
    cipher = ppattack.create_cipher(name, block_size=4) if isinstance(name, str) else name
    key = cipher.generate_key(SHAPE, seed=3)
    targets = smooth_images(40, 32, seed=5, cells=12)
    return cipher, key, targets, cipher.encrypt(targets, key)


@pytest.mark.parametrize("name", ["proposed", "block-shuffle", "block-np"])
def test_model_leak_with_the_parent_is_exact(name):
    cipher, key, targets, cts = make(name)
    parent = tiny_vit()
    model = encrypt_model(parent, key, cipher=cipher)
    view = ThreatView("model", cipher, SHAPE, cts, model={"model": model, "parent": parent})
    result = ppattack.create_attack("model-leak", threat="model")(view)
    assert score_recovery(cipher, key, result.recovered_key)["complete"] == 1.0
    assert torch.equal(result.images, targets)


def smooth_model() -> torch.nn.Module:
    """A model as if trained from scratch: smooth filters, a 2-D smooth position embedding."""
    vit = tiny_vit()
    with torch.no_grad():
        d = vit.pos_embed.shape[-1]
        rows, cols = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
        freq = torch.linspace(0.05, 0.35, d // 4)
        parts = [torch.sin(rows[..., None] * freq), torch.cos(rows[..., None] * freq),
                 torch.sin(cols[..., None] * freq), torch.cos(cols[..., None] * freq)]
        vit.pos_embed[0, 1:] = torch.cat(parts, -1).reshape(64, d)
        y, x = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
        weight = vit.patch_embed.proj.weight  # (D, C, 4, 4)
        g = torch.Generator().manual_seed(1)
        a, b, phase = (torch.rand(3, weight.shape[0], 1, 1, 1, generator=g) * math.pi / 3)
        weight[:] = torch.cos(a * y + b * x + phase * 3).expand_as(weight) * (1 + torch.arange(3.0).view(1, 3, 1, 1) / 10)
    return vit


def test_model_leak_without_a_parent_seriates_the_embeddings():
    cipher, key, targets, cts = make("proposed")
    model = encrypt_model(smooth_model(), key)
    view = ThreatView("model", cipher, SHAPE, cts[:2], model=model)
    result = ppattack.create_attack("model-leak", threat="model")(view)
    scores = score_recovery(cipher, key, result.recovered_key)
    assert scores["complete"] == 1.0, (scores, result.facts)
    assert result.facts["block_perm_source"] == "position embedding"


def test_model_leak_needs_a_model_and_a_supported_cipher():
    cipher, key, _, cts = make("proposed")
    with pytest.raises(ppattack.ParameterError, match="model"):
        ppattack.create_attack("model-leak", threat="model")(ThreatView("model", cipher, SHAPE, cts))
    etc = ppattack.create_cipher("etc", block_size=4)
    view = ThreatView("model", etc, SHAPE, etc.encrypt(smooth_images(1, 32), etc.generate_key(SHAPE, seed=0)),
                      model=tiny_vit())
    with pytest.raises(ppattack.ParameterError, match="not supported"):
        ppattack.create_attack("model-leak", threat="model")(view)


def test_model_leak_with_the_parent_on_an_unregistered_plugin():
    """Nothing comes from the cipher's name or key format: the recovered map decrypts exactly
    and is what the harness scores (the plugin has no key material to offer)."""
    cipher, key, targets, cts = make(TileMix())
    parent = tiny_vit()
    model = encrypt_model(parent, key, cipher=cipher)
    view = ThreatView("model", cipher, SHAPE, cts, model={"model": model, "parent": parent})
    result = ppattack.create_attack("model-leak", threat="model")(view)
    assert result.recovered_key is None
    assert score_map(cipher, key, result.recovered_map)["complete"] == 1.0
    assert torch.equal(result.images, targets)


def test_model_leak_without_a_parent_on_a_plugin_with_quarters_of_their_own():
    """Four classes of pixel moves (the quarters), each with a map of its own: each is seriated
    alone and turned until the lines between quarters are smooth."""
    cipher, key, targets, cts = make(Quarters())
    model = encrypt_model(smooth_model(), key, cipher=cipher)
    view = ThreatView("model", cipher, SHAPE, cts[:2], model=model)
    result = ppattack.create_attack("model-leak", threat="model")(view)
    assert result.facts["in_block_classes"] == 4
    assert score_map(cipher, key, result.recovered_map)["complete"] == 1.0, result.facts
    assert torch.equal(result.images, targets[:2])


def test_model_leak_without_a_parent_needs_whole_pixels_and_the_plain_cipher_is_the_identity():
    cipher, key, _, cts = make("block-shuffle")
    view = ThreatView("model", cipher, SHAPE, cts[:2], model=encrypt_model(smooth_model(), key))
    with pytest.raises(ppattack.ParameterError, match="move whole pixels"):
        ppattack.create_attack("model-leak", threat="model")(view)
    plain = ppattack.create_cipher("plain")
    targets = smooth_images(2, 32, seed=5)
    view = ThreatView("model", plain, SHAPE, targets, model=tiny_vit())
    result = ppattack.create_attack("model-leak", threat="model")(view)
    assert torch.equal(result.images, targets)
    assert score_map(plain, plain.generate_key(SHAPE, seed=0), result.recovered_map)["complete"] == 1.0
