"""Model-side keys (Kiya et al. 2023, image and model transformation for ViT).

A cipher that scrambles ``P x P`` blocks (P = the ViT's patch size) and applies one fixed
transformation to every block vector (a permutation of its ``P*P*C`` entries, a
negative-positive flip of some of them) is, for a ViT, only a change of coordinates. The
model transformation applies the same key to a plain-trained ViT so that it gives the same
logits on encrypted images as the plain model on plain images, with no training:

- patch embedding ``W`` (timm conv weight ``(D, C, P, P)``, flattened to ``(D, P*P*C)`` in
  block-vector order): column k of the new weight = column ``perm[k]`` of the old one,
  negated where the cipher flips entry k;
- position embedding: new row i (after the class / register tokens) = old row ``block_perm[i]``.

Normalisation. Models normalise ``x / 255`` per channel, ``(x - mean[c]) / std[c]``, after
encryption. With mean = std = 0.5 (what :mod:`ppattack.learning.classifier` uses, and timm's
ImageNet-21k ViTs) a flip is an exact sign change and moving entries across channels commutes
with the normalisation. With any other per-channel normalisation both break; this module folds
the difference into the patch embedding instead (column k is scaled by ``std[c_k] /
std[c_perm[k]]`` and the bias absorbs the mean shifts), so the result stays exact.

Which keys have a model-side key is derived from the cipher's own encryption, never from its
name or key format: :func:`patch_transform` reads the key's byte map off ``cipher.encrypt``
with chosen images (:func:`ppattack.solvers.component_map.from_oracle`) and splits it at the cipher's
``block_size``. Among the built-in ciphers, plain (the identity), proposed, block-shuffle and
block-np qualify with block size = patch size, and so does any plugin cipher of that form;
ciphers whose transformation differs per block (etc, ele) or is not a byte map (le, block-ffx,
per-image pe) are refused with the reason.

    vit = timm.create_model("vit_base_patch16_224", num_classes=10)   # trained on plain images
    secret_vit = encrypt_model(vit, key)                               # same logits on Enc(x, key)
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .cipher import Cipher
from .errors import ParameterError
from .functional import block_components
from .keys import Key, Shape
from .learning.classifier import Classifier, Normalize
from .registry import create_cipher
from .solvers.component_map import from_oracle
from .unit_map import ComponentMap


@dataclass(frozen=True)
class PatchTransform:
    """A cipher seen from a ViT: block scrambling plus one transformation of every block vector.

    ``block_perm[i]``: plain block shown at encrypted block i (None: blocks stay).
    ``perm[k]``: plain block-vector entry shown at entry k ((row, col, channel) order; None: none).
    ``flip[k]``: entry k is inverted, ``255 - x`` (None: no entry is).
    ``block_size`` None: the cipher is the identity.
    """

    block_size: int | None
    block_perm: np.ndarray | None = None
    perm: np.ndarray | None = None
    flip: np.ndarray | None = None

    def component_map(self, shape: Shape) -> ComponentMap:
        """The byte map of the whole image (component q of the ciphertext = plain component
        ``index[q]``, inverted where ``flip[q]``), e.g. to decrypt with
        :meth:`~ppattack.solvers.component_map.ComponentMap.decrypt`."""
        n = int(np.prod(shape))
        if self.block_size is None:
            return ComponentMap.signed(np.arange(n), np.zeros(n, np.int64))
        comps = block_components(*shape, self.block_size)  # (N_b, L)
        blocks, length = comps.shape
        block_perm = np.arange(blocks) if self.block_perm is None else np.asarray(self.block_perm)
        perm = np.arange(length) if self.perm is None else np.asarray(self.perm)
        flip = np.zeros(length, np.int64) if self.flip is None else np.asarray(self.flip)
        index, flips = np.empty(n, np.int64), np.empty(n, np.int64)
        index[comps] = comps[block_perm][:, perm]
        flips[comps] = np.broadcast_to(flip, comps.shape)
        return ComponentMap.signed(index, flips)


def patch_transform(cipher: Cipher, key: Key) -> PatchTransform:
    """The :class:`PatchTransform` of ``key``, derived from the cipher's own encryption.

    The key's byte map is read with chosen images (:func:`ppattack.solvers.component_map.from_oracle`)
    and split at ``cipher.block_size``: every output block must take all its bytes from one
    input block (-> ``block_perm``), with the same in-block map and flips in every block
    (-> ``perm``, ``flip``); parts that are the identity are None. A cipher without a block
    size qualifies only as the identity.

    Raises:
        ParameterError: the key is not of that form (the message says why).
    """
    shape = tuple(key.shape)

    def refuse(reason: str) -> ParameterError:
        return ParameterError(f"cipher '{cipher.name}' has no model-side key: the model transformation "
                              "needs block scrambling at the patch size plus one fixed transformation "
                              f"of every block vector, but {reason}")

    if cipher.key_reuse != "shared":
        raise refuse("it encrypts every image with a key of its own")
    try:
        found = from_oracle(lambda x: cipher.encrypt(x, key), shape)
    except ParameterError as error:
        raise refuse(f"its encryption is not one map of whole bytes ({error})") from None
    if not np.isin(found.mask, (0, 255)).all():
        raise refuse("it XORs bytes with values other than 255 (not a negative-positive flip)")
    flips = found.flip
    if cipher.block_size is None:
        if (found.index != np.arange(found.index.size)).any() or flips.any():
            raise refuse("it has no block size and is not the identity")
        return PatchTransform(None)
    block = int(cipher.block_size)
    if shape[1] % block or shape[2] % block:
        raise refuse(f"the {shape[1]}x{shape[2]} image is not made of whole {block}x{block} blocks")
    comps = block_components(*shape, block)  # (N_b, L): block i, entry k -> component
    owner_block = np.empty(found.index.size, np.int64)
    owner_entry = np.empty(found.index.size, np.int64)
    owner_block[comps] = np.arange(comps.shape[0])[:, None]
    owner_entry[comps] = np.arange(comps.shape[1])[None, :]
    source = found.index[comps]
    src_block, src_entry, flip = owner_block[source], owner_entry[source], flips[comps]
    if (src_block != src_block[:, :1]).any():
        raise refuse(f"some {block}x{block} block takes its components from several blocks")
    if (src_entry != src_entry[:1]).any() or (flip != flip[:1]).any():
        raise refuse(f"its {block}x{block} blocks are not all transformed the same way")
    block_perm, perm, flip = src_block[:, 0], src_entry[0], flip[0]
    return PatchTransform(block,
                          None if (block_perm == np.arange(block_perm.size)).all() else block_perm,
                          None if (perm == np.arange(perm.size)).all() else perm,
                          flip.astype(bool) if flip.any() else None)


def encrypt_model(model: nn.Module, key: Key, *, cipher: Cipher | None = None,
                  mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> nn.Module:
    """A copy of ``model`` that gives, on images encrypted with ``key``, the logits ``model``
    gives on the plain images (Kiya et al. 2023). No training; ``model`` is left unchanged.

    Args:
        model: a timm ``VisionTransformer`` (inputs normalised by the caller) or a
            :class:`ppattack.learning.classifier.Classifier` with a ViT (normalises inside).
        key: a key whose cipher is block scrambling plus one fixed transformation of every
            block vector (:func:`patch_transform`), with block size = the ViT's patch size and
            image shape = the ViT's input shape.
        cipher: the cipher the key is for (default: the registered cipher ``key.cipher`` with
            the key's parameters); an unregistered plugin instance works the same.
        mean, std: per-channel normalisation of ``x / 255`` that the caller applies to plain and
            encrypted images alike (bare timm ViTs only). Default: the model's ``pretrained_cfg``
            values, else 0.5. Any values give exact results (see the module docstring).

    Returns:
        The transformed model (a deep copy, same class).

    Raises:
        ParameterError: a cipher without a model-side key, unsupported model, block size !=
            patch size, shape mismatch.

    >>> import timm, ppattack
    >>> vit = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=4, num_classes=10)
    >>> key = ppattack.create_cipher("proposed", block_size=4).generate_key((3, 32, 32), seed=0)
    >>> type(encrypt_model(vit, key)).__name__
    'VisionTransformer'
    """
    from timm.models.vision_transformer import VisionTransformer

    if cipher is None:
        cipher = create_cipher(key.cipher, **key.params)
    transform = patch_transform(cipher, key)
    new = copy.deepcopy(model)
    if isinstance(new, Classifier):
        if not isinstance(new.stem, Normalize) or not isinstance(new.net, VisionTransformer):
            raise ParameterError(f"encrypt_model needs a ViT classifier, got a {new.config.architecture} one")
        if mean is not None or std is not None:
            raise ParameterError("a Classifier normalises its inputs itself: do not pass mean or std")
        vit = new.net
        mean, std = new.stem.mean.flatten().tolist(), new.stem.std.flatten().tolist()
    elif isinstance(new, VisionTransformer):
        vit = new
        cfg = getattr(vit, "pretrained_cfg", None) or {}
        mean = cfg.get("mean", (0.5,) * 3) if mean is None else mean
        std = cfg.get("std", (0.5,) * 3) if std is None else std
    else:
        raise ParameterError(f"encrypt_model needs a timm VisionTransformer (or a ppattack ViT "
                             f"Classifier), got {type(model).__name__}")
    if transform.block_size is None:
        return new
    _check_geometry(vit, key, transform.block_size, len(mean), len(std))
    with torch.no_grad():
        _transform_patch_embedding(vit.patch_embed.proj, transform, mean, std)
        if transform.block_perm is not None and vit.pos_embed is not None:
            prefix = 0 if vit.no_embed_class else vit.num_prefix_tokens
            rows = torch.as_tensor(transform.block_perm, device=vit.pos_embed.device) + prefix
            vit.pos_embed[:, prefix:] = vit.pos_embed[:, rows].clone()
    return new


def _check_geometry(vit: nn.Module, key: Key, block: int, n_mean: int, n_std: int) -> None:
    channels, height, width = key.shape
    proj = vit.patch_embed.proj
    patch = tuple(vit.patch_embed.patch_size)
    if not isinstance(proj, nn.Conv2d) or tuple(proj.stride) != patch:
        raise ParameterError("encrypt_model needs a ViT whose patch embedding is one conv with "
                             "stride = patch size (timm's PatchEmbed)")
    if patch != (block, block):
        raise ParameterError(f"the key's block size is {block} but the ViT's patch size is "
                             f"{'x'.join(map(str, patch))}: the model transformation needs block size = "
                             "patch size (make the key with block_size equal to the patch size)")
    if proj.in_channels != channels or n_mean != channels or n_std != channels:
        raise ParameterError(f"the key is for {channels}-channel images but the ViT takes "
                             f"{proj.in_channels} channels (mean/std give {n_mean}/{n_std})")
    grid = tuple(vit.patch_embed.grid_size)
    if grid != (height // block, width // block):
        raise ParameterError(f"the key is for {height}x{width} images but the ViT's input is "
                             f"{grid[0] * block}x{grid[1] * block}: make the key for the model's input size")


def _transform_patch_embedding(proj: nn.Conv2d, transform: PatchTransform, mean: Sequence[float],
                               std: Sequence[float]) -> None:
    """Permute, negate and rescale the columns of the patch embedding; fold mean shifts into its bias."""
    d, c, p, _ = proj.weight.shape
    length = c * p * p
    device = proj.weight.device  # every operand on the weight's device (a CUDA model stays there)
    weight = proj.weight.double().permute(0, 2, 3, 1).reshape(d, length)  # (row, col, channel) columns
    source = torch.as_tensor(transform.perm if transform.perm is not None else np.arange(length), device=device)
    flip = torch.as_tensor(transform.flip if transform.flip is not None else np.zeros(length, bool), device=device)
    channel = torch.arange(length, device=device) % c
    mean_t = torch.tensor(mean, dtype=torch.float64, device=device)
    std_t = torch.tensor(std, dtype=torch.float64, device=device)
    m_out, s_out = mean_t[channel], std_t[channel]  # normalisation of the encrypted entry k
    m_in, s_in = m_out[source], s_out[source]  # normalisation of the plain entry it came from
    sign = 1 - 2 * flip.double()
    columns = weight[:, source] / s_in  # the plain model's weight per unit of raw value
    shift = torch.where(flip, m_in + m_out - 1, m_in - m_out)  # raw-value offset per entry
    new_weight = columns * (sign * s_out)
    correction = columns @ shift
    proj.weight.copy_(new_weight.reshape(d, p, p, c).permute(0, 3, 1, 2).to(proj.weight.dtype))
    if proj.bias is not None:
        proj.bias.copy_((proj.bias.double() - correction).to(proj.bias.dtype))
    elif correction.abs().max() > 0:
        proj.bias = nn.Parameter((-correction).to(proj.weight.dtype))
