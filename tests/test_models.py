"""Model-side keys: a transformed plain ViT gives the plain logits on encrypted images."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

import ppattack
from ppattack.classifier import ModelConfig, build_classifier
from ppattack.errors import ParameterError
from ppattack.keys import Key
from ppattack.models import encrypt_model, patch_transform

MODEL_KEY_CIPHERS = ("proposed", "block-shuffle", "block-np")
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
TOLERANCE = 1e-4


def random_vit(img_size=(32, 32), patch=4, **kwargs) -> VisionTransformer:
    """A random ViT with every parameter drawn at unit scale per fan-in, so that position
    embedding, class token, biases and every input entry visibly matter (timm starts several
    of them at or near zero)."""
    vit = VisionTransformer(img_size=img_size, patch_size=patch, embed_dim=32, depth=2, num_heads=2,
                            num_classes=10, **kwargs).eval()
    with torch.no_grad():
        for p in vit.parameters():
            p.normal_(0, 1 / p[0].numel() ** 0.5 if p.ndim > 1 else 0.5)
    return vit


def normalise(x: torch.Tensor, norm) -> torch.Tensor:
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in norm)
    return (x.float() / 255 - mean) / std


def images(shape, n=4, seed=0) -> torch.Tensor:
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("cipher_name", MODEL_KEY_CIPHERS)
@pytest.mark.parametrize("norm", [HALF, IMAGENET], ids=["half", "imagenet"])
@pytest.mark.parametrize("variant", [
    {},
    {"class_token": False, "global_pool": "avg"},
    {"reg_tokens": 2, "img_size": (16, 32)},
], ids=["cls", "avgpool", "registers-16x32"])
def test_transformed_vit_gives_plain_logits_on_encrypted_images(cipher_name, norm, variant):
    torch.manual_seed(0)
    vit = random_vit(**variant)
    shape = (3, *vit.patch_embed.img_size)
    cipher = ppattack.create_cipher(cipher_name, block_size=4)
    key = cipher.generate_key(shape, seed=3)
    x = images(shape)
    secret = encrypt_model(vit, key, mean=norm[0], std=norm[1])
    with torch.no_grad():
        plain_logits = vit(normalise(x, norm))
        secret_logits = secret(normalise(cipher.encrypt(x, key), norm))
        untouched = vit(normalise(cipher.encrypt(x, key), norm))
    assert (secret_logits - plain_logits).abs().max() < TOLERANCE
    assert (untouched - plain_logits).abs().max() > 100 * TOLERANCE  # the key really mattered


@pytest.mark.parametrize("cipher_name", ["block-shuffle", "block-np"])
def test_per_channel_normalisation_is_folded_not_ignored(cipher_name):
    """The pitfall: these ciphers move or flip entries across channels, so a transformation that
    assumes mean = std = 0.5 is wrong under ImageNet normalisation; the folded one is exact."""
    torch.manual_seed(1)
    vit = random_vit()
    cipher = ppattack.create_cipher(cipher_name, block_size=4)
    key = cipher.generate_key((3, 32, 32), seed=4)
    x = images((3, 32, 32))
    with torch.no_grad():
        plain_logits = vit(normalise(x, IMAGENET))
        encrypted = normalise(cipher.encrypt(x, key), IMAGENET)
        naive = encrypt_model(vit, key, mean=HALF[0], std=HALF[1])(encrypted)
        folded = encrypt_model(vit, key, mean=IMAGENET[0], std=IMAGENET[1])(encrypted)
    assert (naive - plain_logits).abs().max() > 100 * TOLERANCE
    assert (folded - plain_logits).abs().max() < TOLERANCE


def test_proposed_is_exact_under_any_normalisation_because_pixels_move_whole():
    torch.manual_seed(2)
    vit = random_vit()
    cipher = ppattack.create_cipher("proposed", block_size=4)
    key = cipher.generate_key((3, 32, 32), seed=5)
    x = images((3, 32, 32))
    with torch.no_grad():
        naive = encrypt_model(vit, key, mean=HALF[0], std=HALF[1])(normalise(cipher.encrypt(x, key), IMAGENET))
        assert (naive - vit(normalise(x, IMAGENET))).abs().max() < TOLERANCE


@pytest.mark.parametrize("cipher_name", MODEL_KEY_CIPHERS)
def test_ppattack_vit_classifier_on_uint8_images(cipher_name):
    """A Classifier normalises inside (mean = std = 0.5); block size 8 = patch size 8."""
    torch.manual_seed(3)
    model = build_classifier(ModelConfig("vit", (3, 32, 32), 7, patch_size=8, width=32, depth=2)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 1 / p[0].numel() ** 0.5 if p.ndim > 1 else 0.5)
    cipher = ppattack.create_cipher(cipher_name, block_size=8)
    key = cipher.generate_key((3, 32, 32), seed=6)
    x = images((3, 32, 32))
    secret = encrypt_model(model, key)
    with torch.no_grad():
        assert (secret(cipher.encrypt(x, key)) - model(x)).abs().max() < TOLERANCE


@pytest.mark.parametrize("cipher_name", MODEL_KEY_CIPHERS)
def test_patch_transform_reproduces_the_cipher(cipher_name):
    """Reading the key material: block permutation, entry permutation and flips, applied to
    block vectors by hand, give the cipher's own ciphertext."""
    b, shape = 4, (3, 16, 24)
    cipher = ppattack.create_cipher(cipher_name, block_size=b)
    key = cipher.generate_key(shape, seed=7)
    t = patch_transform(cipher, key)
    x = images(shape, n=1)[0]
    blocks = x.permute(1, 2, 0).reshape(shape[1] // b, b, shape[2] // b, b, 3).permute(0, 2, 1, 3, 4)
    vectors = blocks.reshape(-1, b * b * 3)  # (row-major blocks, (row, col, channel) entries)
    if t.block_perm is not None:
        vectors = vectors[torch.as_tensor(t.block_perm)]
    if t.perm is not None:
        vectors = vectors[:, torch.as_tensor(t.perm)]
    if t.flip is not None:
        vectors = torch.where(torch.as_tensor(t.flip), 255 - vectors, vectors)
    rebuilt = vectors.reshape(shape[1] // b, shape[2] // b, b, b, 3).permute(4, 0, 2, 1, 3).reshape(shape)
    assert torch.equal(rebuilt, cipher.encrypt(x[None], key)[0])


def test_plain_key_is_the_identity_and_the_input_model_is_untouched():
    vit = random_vit()
    before = {k: v.clone() for k, v in vit.state_dict().items()}
    key = ppattack.create_cipher("plain").generate_key((3, 32, 32), seed=0)
    same = encrypt_model(vit, key)
    assert same is not vit
    assert all(torch.equal(same.state_dict()[k], v) for k, v in before.items())
    proposed = ppattack.create_cipher("proposed", block_size=4).generate_key((3, 32, 32), seed=0)
    encrypt_model(vit, proposed)
    assert all(torch.equal(vit.state_dict()[k], v) for k, v in before.items())


def test_block_size_must_equal_the_patch_size():
    key = ppattack.create_cipher("proposed", block_size=8).generate_key((3, 32, 32), seed=0)
    with pytest.raises(ParameterError, match="block size is 8 but the ViT's patch size is 4x4"):
        encrypt_model(random_vit(), key)


def test_image_size_must_match():
    key = ppattack.create_cipher("block-shuffle", block_size=4).generate_key((3, 64, 64), seed=0)
    with pytest.raises(ParameterError, match="64x64"):
        encrypt_model(random_vit(), key)


@pytest.mark.parametrize("cipher_name, reason", [
    ("le", "not one map of whole bytes"), ("ele", "not one map of whole bytes"),
    ("pe", "key of its own"), ("etc", "not all transformed the same way"),
    ("etc-gray", "not one map of whole bytes"), ("block-ffx", "not one map of whole bytes")])
def test_ciphers_without_a_model_key_are_refused(cipher_name, reason):
    params = {} if cipher_name == "pe" else {"block_size": 4}
    key = ppattack.create_cipher(cipher_name, **params).generate_key((3, 32, 32), seed=0)
    with pytest.raises(ParameterError, match=f"cipher '{cipher_name}' has no model-side key.*{reason}"):
        encrypt_model(random_vit(), key)


def test_only_vision_transformers_are_transformed():
    key = ppattack.create_cipher("proposed", block_size=4).generate_key((3, 32, 32), seed=0)
    resnet = build_classifier(ModelConfig("resnet18", (3, 32, 32), 10))
    with pytest.raises(ParameterError, match="needs a ViT classifier"):
        encrypt_model(resnet, key)
    with pytest.raises(ParameterError, match="needs a timm VisionTransformer"):
        encrypt_model(torch.nn.Linear(3, 3), key)


def test_patch_transform_of_proposed_moves_whole_pixels():
    cipher = ppattack.create_cipher("proposed", block_size=4)
    key = cipher.generate_key((3, 8, 8), seed=1)
    perm = patch_transform(cipher, key).perm.reshape(-1, 3)
    assert np.array_equal(perm % 3, np.tile(np.arange(3), (16, 1)))  # channels stay
    assert np.array_equal(perm[:, 1] - perm[:, 0], np.ones(16))
