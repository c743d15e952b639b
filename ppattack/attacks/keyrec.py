"""keyrec: ciphertext-only recovery of a key that every image shares (attacks.md, "keyrec").

Ciphers that apply ONE key to every image leak it through the statistics of many ciphertexts.
The attacker (threat model ``coa+public``) pools the victim ciphertexts, compares their
second-order statistics with a template from its own public images, recovers the key and
decrypts with the cipher itself. Supported ciphers and what is recovered:

- ``proposed`` (Qi et al. 2022): the in-sub-block pixel permutation ``pixel_perm`` by quadratic
  assignment of the position correlations of all sub-blocks (:mod:`ppattack.seriation`); this
  fixes it up to the 8 symmetries of the square sub-block, and the edges between the four
  sub-blocks of a block, which the key does not move, decide among them. Then the block
  permutation ``block_perm``: edge compatibility of every ordered pair of blocks summed over all
  ciphertexts (:mod:`ppattack.compat`), then tree-based placement (:mod:`ppattack.placement`).
- ``block-shuffle`` (MaungMaung and Kiya 2021): ``perm`` of the 3M^2 block-vector components by
  quadratic assignment; the symmetries left (turns of the block, exchange of colour channels)
  are decided by the edges between neighbouring blocks and by the public images' channel means.
- ``block-np``: ``mask`` from the signs of the component correlations (negation flips them),
  the global flip from the public images' component means.
- ``plain``: nothing to recover (positive control).

Other ciphers raise :class:`~ppattack.errors.ParameterError`. The recovered key material goes
into ``facts["recovered_key"]``; the harness scores it against the true key
(:mod:`ppattack.keyscore`) and does not write it to the result.
"""
from __future__ import annotations

import logging
import time
from itertools import permutations
from typing import Any, Callable

import numpy as np
import torch

from ppattack.attack import Attack, AttackResult
from ppattack.cipher import Cipher
from ppattack.compat import dissimilarity
from ppattack.errors import ParameterError, ShapeError
from ppattack.keys import Key, Shape
from ppattack.pieces import split, square_symmetries
from ppattack.placement import place
from ppattack.seriation import match_positions
from ppattack.threat import ThreatView

log = logging.getLogger(__name__)
CHUNK = 64  # images per step when pooling statistics (bounds memory at 224x224)


def _pooled_correlation(images: torch.Tensor, units: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    """Correlation of unit positions pooled over all units of all images (chunked)."""
    total = None
    count = 0
    for start in range(0, len(images), CHUNK):
        v = units(images[start:start + CHUNK]).double()
        v = v - v.mean(dim=1, keepdim=True)
        part = torch.einsum("mkc,mlc->kl", v, v)
        total = part if total is None else total + part
        count += v.shape[0] * v.shape[2]
    cov = total / max(1, count)
    scale = cov.diagonal().clamp_min(1e-12).sqrt()
    return (cov / scale[:, None] / scale[None, :]).numpy()


def subblock_units(images: torch.Tensor, half: int) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(M, half*half, C)``: every half x half sub-block's pixels."""
    pieces = split(images, half)  # (N, U, C, h, h)
    n, u, c, _, _ = pieces.shape
    return pieces.reshape(n * u, c, half * half).transpose(1, 2)


def block_vector_units(images: torch.Tensor, block: int) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(M, 3B^2, 1)``: block vectors in (row, col, channel) order."""
    pieces = split(images, block)  # (N, U, C, B, B)
    n, u, c, _, _ = pieces.shape
    return pieces.permute(0, 1, 3, 4, 2).reshape(n * u, block * block * c, 1)


def midline_cost(images: torch.Tensor, block: int) -> float:
    """Mean squared step across the lines between the four sub-blocks of every block."""
    half = block // 2
    x = images.float()
    vertical = x[..., half::block] - x[..., half - 1::block]
    horizontal = x[..., half::block, :] - x[..., half - 1::block, :]
    return float((vertical ** 2).mean() + (horizontal ** 2).mean())


def block_edge_cost(images: torch.Tensor, block: int) -> float:
    """Mean squared step across the borders between neighbouring blocks."""
    x = images.float()
    vertical = x[..., block::block] - x[..., block - 1:-1:block]
    horizontal = x[..., block::block, :] - x[..., block - 1:-1:block, :]
    return float((vertical ** 2).mean() + (horizontal ** 2).mean())


def summed_dissimilarity(images: torch.Tensor, block: int, kind: str, reg: float) -> np.ndarray:
    """Edge dissimilarity of every ordered pair of block positions, summed over images.

    Each image's table is divided by its median entry first, so that no single high-contrast
    image dominates. Returns float64 ``(2, K, K)`` (see :func:`ppattack.compat.dissimilarity`).
    """
    total = None
    for start in range(0, len(images), CHUNK):
        table = dissimilarity(split(images[start:start + CHUNK], block), kind, reg)  # (n, 2, K, K)
        finite = torch.where(torch.isfinite(table), table, torch.nan).flatten(1)
        table = table / (finite.nanmedian(dim=1).values[:, None, None, None] + 1e-9)
        part = table.sum(dim=0)
        total = part if total is None else total + part
    return total.numpy()


def recover_pixel_perm(cipher: Cipher, shape: Shape, cts: torch.Tensor, template: np.ndarray, *,
                       restarts: int = 8, seed: int = 0,
                       observed: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """``proposed``'s in-sub-block permutation from ciphertexts (one or many).

    Quadratic assignment of the pooled sub-block position correlations (or another similarity
    of the shuffled positions, ``observed``) to ``template`` (from public images, or
    :func:`ppattack.seriation.grid_template`) fixes it up to the 8 symmetries of the square; the
    one whose restored blocks are smoothest across the lines between their four sub-blocks
    (which the key does not move) wins. Returns the permutation and the margin (second-lowest
    over lowest line cost; near 1 means undecided).
    """
    block, half = cipher.block_size, cipher.block_size // 2
    identity = np.arange((shape[1] // block) * (shape[2] // block))
    if observed is None:
        observed = _pooled_correlation(cts, lambda x: subblock_units(x, half))
    found = match_positions(template, observed, restarts=restarts, seed=seed)
    sample = cts[:4 * CHUNK]
    symmetries = square_symmetries(half)
    costs = []
    for symmetry in symmetries:
        candidate = Key(cipher.name, cipher.params, shape,
                        {"block_perm": identity, "pixel_perm": symmetry[found]})
        costs.append(midline_cost(cipher.decrypt(sample, candidate), block))
    ranked = sorted(costs)
    return symmetries[int(np.argmin(costs))][found], ranked[1] / max(ranked[0], 1e-12)


class KeyRec(Attack):
    """Shared-key recovery from many ciphertexts and public images (QAP + jigsaw placement)."""

    name = "keyrec"
    paper = ("attacks.md 'keyrec'; placement after Gallagher (CVPR 2012); the jigsaw attacks of "
             "Chuman and Kiya (2022-2023) on the block-wise ViT scheme")
    threat_models = ("coa+public",)
    presets = {"quick": {"max_ciphertexts": 200, "max_public": 1000},
               "cifar": {"max_ciphertexts": 200, "max_public": 2000},
               "paper": {"max_ciphertexts": 20, "max_public": 200}}
    SUPPORTED = ("plain", "proposed", "block-shuffle", "block-np")

    def __init__(self, *, max_ciphertexts: int | None = None, max_public: int | None = None,
                 compat: str = "mgc", reg: float = 1.0, restarts: int = 8, **common):
        super().__init__(**common)
        self.max_ciphertexts = int(self.preset_value("max_ciphertexts", max_ciphertexts))
        self.max_public = int(self.preset_value("max_public", max_public))
        self.compat = str(compat)
        self.reg = float(reg)
        self.restarts = int(restarts)
        if self.max_ciphertexts < 1 or self.max_public < 1:
            raise ParameterError("max_ciphertexts and max_public must be at least 1")

    @property
    def params(self) -> dict[str, Any]:
        return {**super().params, "max_ciphertexts": self.max_ciphertexts,
                "max_public": self.max_public, "compat": self.compat, "reg": self.reg,
                "restarts": self.restarts}

    def reconstruct(self, view: ThreatView) -> AttackResult:
        cipher = view.cipher
        if cipher.name not in self.SUPPORTED or cipher.key_reuse != "shared":
            raise ParameterError(f"keyrec recovers shared keys of {', '.join(self.SUPPORTED)}; "
                                 f"cipher '{cipher.name}' is not supported")
        if view.public_images is None or not len(view.public_images):
            raise ParameterError("keyrec needs public images (threat model coa+public)")
        shape = tuple(view.plain_shape)
        cipher.check_shape(shape)
        if tuple(view.ciphertexts.shape[1:]) != shape:
            raise ShapeError(f"keyrec needs ciphertexts of the plain shape {shape}")
        cts = view.ciphertexts[:self.max_ciphertexts].cpu()
        public = view.public_images[:self.max_public].cpu()
        facts: dict[str, Any] = {"ciphertexts_used": len(cts), "public_used": len(public)}
        recover = getattr(self, "_recover_" + cipher.name.replace("-", "_"))
        material = recover(cipher, shape, cts, public, facts)
        log.info("keyrec: %s key from %d ciphertexts and %d public images", cipher.name, len(cts), len(public))
        key = Key(cipher.name, cipher.params, shape, material)
        images = cipher.decrypt(view.ciphertexts, key)
        facts["recovered_key"] = {k: np.asarray(v).tolist() for k, v in material.items()}
        return AttackResult(images, facts)

    # -- per cipher ------------------------------------------------------------------------------
    def _recover_plain(self, cipher: Cipher, shape: Shape, cts, public, facts) -> dict[str, Any]:
        return {}

    def _recover_proposed(self, cipher: Cipher, shape: Shape, cts: torch.Tensor,
                          public: torch.Tensor, facts: dict[str, Any]) -> dict[str, np.ndarray]:
        block = cipher.block_size
        _, h, w = shape
        n_blocks = (h // block) * (w // block)
        identity = np.arange(n_blocks)
        seconds = {}
        start = time.perf_counter()
        template = _pooled_correlation(public, lambda x: subblock_units(x, block // 2))
        pixel_perm, margin = recover_pixel_perm(cipher, shape, cts, template,
                                                restarts=self.restarts, seed=self.seed)
        seconds["pixel_perm"] = time.perf_counter() - start
        facts["symmetry_margin"] = margin

        start = time.perf_counter()
        unshuffled = cipher.decrypt(cts, Key(cipher.name, cipher.params, shape,
                                             {"block_perm": identity, "pixel_perm": pixel_perm}))
        table = summed_dissimilarity(unshuffled, block, self.compat, self.reg)
        solved = place(table, h // block, w // block)
        seconds["block_perm"] = time.perf_counter() - start
        facts["largest_cluster"] = solved.largest_cluster / n_blocks
        facts["seconds"] = seconds
        # Cipher block i holds plain block block_perm[i]: the cell the solver put it in.
        return {"block_perm": solved.cells, "pixel_perm": pixel_perm}

    def _recover_block_shuffle(self, cipher: Cipher, shape: Shape, cts: torch.Tensor,
                               public: torch.Tensor, facts: dict[str, Any]) -> dict[str, np.ndarray]:
        block = cipher.block_size
        channels = shape[0]
        start = time.perf_counter()
        template = _pooled_correlation(public, lambda x: block_vector_units(x, block))
        observed = _pooled_correlation(cts, lambda x: block_vector_units(x, block))
        found = match_positions(template, observed, restarts=self.restarts, seed=self.seed)
        # Candidates: turn the block (8) and exchange channels (6) on the plain side.
        k = np.arange(block * block * channels)
        pixel, channel = np.divmod(k, channels)
        turns = square_symmetries(block)
        candidates = [(turns[t][pixel] * channels + np.asarray(c)[channel])[found]
                      for t in range(len(turns)) for c in permutations(range(channels))]
        sample = cts[:CHUNK]
        edge = [block_edge_cost(cipher.decrypt(sample, Key(cipher.name, cipher.params, shape, {"perm": p})), block)
                for p in candidates]
        public_means = public.double().mean(dim=(0, 2, 3))

        def channel_error(perm: np.ndarray) -> float:
            restored = cipher.decrypt(cts, Key(cipher.name, cipher.params, shape, {"perm": perm}))
            return float(((restored.double().mean(dim=(0, 2, 3)) - public_means) ** 2).sum())

        best_edge = min(edge)
        spatial = [i for i, e in enumerate(edge) if e <= best_edge * (1 + 1e-6)]
        best = min(spatial, key=lambda i: channel_error(candidates[i]))
        facts["seconds"] = {"perm": time.perf_counter() - start}
        return {"perm": candidates[best]}

    def _recover_block_np(self, cipher: Cipher, shape: Shape, cts: torch.Tensor,
                          public: torch.Tensor, facts: dict[str, Any]) -> dict[str, np.ndarray]:
        block = cipher.block_size
        start = time.perf_counter()
        units = lambda x: block_vector_units(x, block)  # noqa: E731
        observed = _pooled_correlation(cts, units)
        # Plain components correlate positively; negating one flips the sign of its row.
        _, vectors = np.linalg.eigh(observed)
        signs = np.sign(vectors[:, -1])
        signs[signs == 0] = 1
        mask = (signs < 0).astype(np.int64)
        # Global flip: compare per-component means with the public images'.
        cipher_mean = units(cts).double().mean(dim=(0, 2)).numpy()
        public_mean = units(public).double().mean(dim=(0, 2)).numpy()
        plain_guess = np.where(mask == 1, 255 - cipher_mean, cipher_mean)
        flipped_guess = np.where(mask == 0, 255 - cipher_mean, cipher_mean)
        if ((flipped_guess - public_mean) ** 2).sum() < ((plain_guess - public_mean) ** 2).sum():
            mask = 1 - mask
        facts["seconds"] = {"mask": time.perf_counter() - start}
        return {"mask": mask}
