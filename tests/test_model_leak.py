"""model-leak: the key from the provider's ViT, with and without the public parent."""
from __future__ import annotations

import math

import pytest
import timm
import torch

import ppattack
from ppattack.keyscore import score_recovery
from ppattack.models import encrypt_model
from ppattack.threat import ThreatView
from smooth import smooth_images

SHAPE = (3, 32, 32)


def tiny_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=4, num_classes=10,
                             embed_dim=48, depth=1, num_heads=1)


def make(name: str):
    cipher = ppattack.create_cipher(name, block_size=4)
    key = cipher.generate_key(SHAPE, seed=3)
    targets = smooth_images(40, 32, seed=5, cells=12)
    return cipher, key, targets, cipher.encrypt(targets, key)


@pytest.mark.parametrize("name", ["proposed", "block-shuffle", "block-np"])
def test_model_leak_with_the_parent_is_exact(name):
    cipher, key, targets, cts = make(name)
    parent = tiny_vit()
    model = encrypt_model(parent, key)
    view = ThreatView("model", cipher, SHAPE, cts, model={"model": model, "parent": parent})
    result = ppattack.create_attack("model-leak", threat="model")(view)
    assert score_recovery(cipher, key, result.facts.pop("recovered_key"))["complete"] == 1.0
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
    scores = score_recovery(cipher, key, result.facts.pop("recovered_key"))
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
