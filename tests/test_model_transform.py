"""Model-side keys: a transformed plain ViT gives the plain logits on encrypted images."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

import ppattack
from ppattack.learning.classifier import ModelConfig, build_classifier
from ppattack.errors import ParameterError
from ppattack.cipher import KeyField
from ppattack.model_transform import PatchTransform, encrypt_model, patch_transform

MODEL_KEY_CIPHERS = ("proposed", "block-shuffle", "block-np")
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
TOLERANCE = 1e-4


class Tiles(ppattack.Cipher):
    """A plugin-like cipher, never registered: B x B tiles are scrambled, then every tile vector
    ((row, col, channel) order) gets one permutation of its entries and one inversion mask
    (``shared=0``: every tile gets a permutation of its own, which no ViT can absorb)."""

    name = "test-tiles"
    paper = "test"

    def __init__(self, block_size: int = 4, shared: int = 1) -> None:
        super().__init__(block_size=block_size, shared=shared)
        self.block_size = self.tile = block_size  # block_size: what it declares; tile: what it does
        self.shared = shared

    def key_fields(self, shape):
        c, h, w = shape
        b = self.tile
        tiles, length = (h // b) * (w // b), c * b * b
        return {"tiles": KeyField((tiles,), permutation=True),
                "entries": KeyField((1 if self.shared else tiles, length), permutation=True),
                "mask": KeyField((length,), high=2)}

    def key_space_bits(self, shape):
        return 1.0

    def compile(self, key, device):
        return {name: torch.as_tensor(np.array(value), device=device) for name, value in key.material.items()}

    def apply(self, x, plan, inverse):
        n, c, h, w = x.shape
        b = self.tile
        vectors = x.view(n, c, h // b, b, w // b, b).permute(0, 2, 4, 3, 5, 1).reshape(n, -1, b * b * c)
        entries = plan["entries"].expand(vectors.shape[1], -1).expand(n, -1, -1)
        mask = plan["mask"].to(torch.uint8) * 255
        if inverse:  # undo the mask, the entry permutation, then the tile scrambling
            moved = torch.empty_like(vectors).scatter_(2, entries, vectors ^ mask)
            vectors = torch.empty_like(moved)
            vectors[:, plan["tiles"]] = moved
        else:
            vectors = torch.gather(vectors[:, plan["tiles"]], 2, entries) ^ mask
        return vectors.view(n, h // b, w // b, b, b, c).permute(0, 5, 1, 3, 2, 4).reshape(n, c, h, w)


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


def test_a_plugin_cipher_gets_an_exact_model_key_without_registration():
    """Nothing is read from the cipher's name or key format: the transformation comes from the
    cipher's own encryption, so an unregistered plugin is as capable as a built-in."""
    torch.manual_seed(4)
    vit = random_vit()
    cipher = Tiles(block_size=4)
    key = cipher.generate_key((3, 32, 32), seed=8)
    t = patch_transform(cipher, key)
    assert np.array_equal(t.block_perm, key.material["tiles"])
    assert np.array_equal(t.perm, key.material["entries"][0])
    assert np.array_equal(t.flip, key.material["mask"].astype(bool))
    x = images((3, 32, 32))
    secret = encrypt_model(vit, key, cipher=cipher, mean=IMAGENET[0], std=IMAGENET[1])
    with torch.no_grad():
        plain_logits = vit(normalise(x, IMAGENET))
        encrypted = normalise(cipher.encrypt(x, key), IMAGENET)
        assert (secret(encrypted) - plain_logits).abs().max() < TOLERANCE
        assert (vit(encrypted) - plain_logits).abs().max() > 100 * TOLERANCE


@pytest.mark.parametrize("cipher_name", ("plain",) + MODEL_KEY_CIPHERS)
def test_the_transform_as_a_component_map_is_the_cipher(cipher_name):
    shape = (3, 16, 24)
    cipher = ppattack.create_cipher(cipher_name, **({} if cipher_name == "plain" else {"block_size": 4}))
    key = cipher.generate_key(shape, seed=9)
    found = patch_transform(cipher, key).component_map(shape)
    x = images(shape, n=2)
    assert torch.equal(found.encrypt(x), cipher.encrypt(x, key))
    assert torch.equal(found.decrypt(cipher.encrypt(x, key)), x)


def test_identity_parts_are_none():
    shape = (3, 16, 16)
    shuffle = ppattack.create_cipher("block-shuffle", block_size=4)
    t = patch_transform(shuffle, shuffle.generate_key(shape, seed=1))
    assert t.block_perm is None and t.flip is None and t.perm is not None
    assert patch_transform(ppattack.create_cipher("plain"), ppattack.create_cipher("plain").generate_key(
        shape, seed=0)) == PatchTransform(None)


def test_plugin_ciphers_of_another_form_are_refused_with_the_reason():
    shape = (3, 32, 32)
    per_tile = Tiles(block_size=4, shared=0)
    with pytest.raises(ParameterError, match="has no model-side key.*not all transformed the same way"):
        encrypt_model(random_vit(), per_tile.generate_key(shape, seed=0), cipher=per_tile)
    shared_pe = ppattack.create_cipher("pe", key_mode="shared")  # pixel-wise, no block size
    with pytest.raises(ParameterError, match="has no block size and is not the identity"):
        patch_transform(shared_pe, shared_pe.generate_key(shape, seed=0))
    coarse = Tiles(block_size=4)
    key = coarse.generate_key(shape, seed=0)
    coarse.block_size = 2  # declares smaller blocks than its entry permutation keeps whole
    with pytest.raises(ParameterError, match="takes its components from several blocks"):
        patch_transform(coarse, key)


@pytest.mark.parametrize("cipher_name", ["proposed", "block-np"])
def test_the_transform_keeps_the_model_on_its_device(cipher_name):
    """Every operand is built on the weight's device: a model on the `meta` device (standing in
    for a GPU here) is transformed there, with no tensor of another device mixed in."""
    vit = VisionTransformer(img_size=32, patch_size=4, embed_dim=48, depth=1, num_heads=2,
                            num_classes=10).to("meta")
    key = ppattack.create_cipher(cipher_name, block_size=4).generate_key((3, 32, 32), seed=0)
    new = encrypt_model(vit, key)
    assert {p.device.type for p in new.parameters()} == {"meta"}
