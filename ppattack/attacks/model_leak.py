"""model-leak: the provider's ViT reveals the key (attacks.md, "model-leak").

A ViT that serves images encrypted by block scrambling at its patch size plus one fixed
transformation of every block vector (proposed, block-shuffle, block-np) holds the key in its
first layer: permuting the block vector permutes the columns of the patch embedding, and
scrambling blocks permutes the rows of the position embedding (Kiya et al. 2023).

- With the public parent (``view.model = {"model": m, "parent": p}``: the victim's model was
  made from, or fine-tuned from, a public plain model): match every column of the victim's
  patch embedding to the parent's (Hungarian on absolute cosine similarity; a negative cosine
  is a negative-positive flip) and every position-embedding row to the parent's.
- Without a parent (``view.model`` is the model itself, or the dict has ``"parent": None``;
  the provider trained from scratch on encrypted images, ``proposed`` only): patch-embedding
  columns of neighbouring pixels are alike (their gradient updates are driven by correlated
  inputs) and so are position-embedding rows of neighbouring blocks, so both permutations follow
  from seriation against a grid (:mod:`ppattack.seriation`). The symmetries of the grid that
  seriation leaves open are settled on the victim ciphertexts, as keyrec does: the lines between
  sub-blocks and the borders between blocks must be smooth. A briefly trained model's position
  embedding may not have learned the grid; the block permutation placed from the ciphertexts'
  edges (keyrec's second step, possible once the filters gave the in-block permutation) is the
  other candidate, and whichever restores smoother block borders wins
  (``facts["block_perm_source"]``).

The model may be a timm ``VisionTransformer`` or a :class:`ppattack.classifier.Classifier`
holding one. The recovered key decrypts the victim ciphertexts and goes to
``facts["recovered_key"]`` (scored by the harness, never written).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ppattack.attack import Attack, AttackResult
from ppattack.attacks.keyrec import block_edge_cost, recover_pixel_perm, summed_dissimilarity
from ppattack.cipher import Cipher
from ppattack.errors import ParameterError
from ppattack.keys import Key, Shape
from ppattack.pieces import OFFSETS, square_symmetries
from ppattack.placement import place
from ppattack.seriation import grid_template, match_positions
from ppattack.threat import ThreatView

SUPPORTED = ("plain", "proposed", "block-shuffle", "block-np")


def vit_of(model: Any) -> torch.nn.Module:
    """The timm VisionTransformer inside ``model`` (itself, or a Classifier's ``net``)."""
    net = getattr(model, "net", model)
    if not (hasattr(net, "patch_embed") and hasattr(net, "pos_embed")):
        raise ParameterError(f"model-leak needs a ViT (timm VisionTransformer), got {type(net).__name__}")
    return net


def embeddings(model: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Patch-embedding columns ``(L, D)`` in block-vector order and position rows ``(N, D)``."""
    vit = vit_of(model)
    weight = vit.patch_embed.proj.weight.detach().double().cpu()  # (D, C, P, P)
    columns = weight.permute(2, 3, 1, 0).reshape(-1, weight.shape[0]).numpy()
    rows = None
    if vit.pos_embed is not None:
        prefix = 0 if getattr(vit, "no_embed_class", False) else vit.num_prefix_tokens
        rows = vit.pos_embed.detach().double().cpu()[0, prefix:].numpy()
    return columns, rows


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of the rows of ``a`` and ``b`` (each row centred first)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    a = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-12)
    b = b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-12)
    return a @ b.T


def match_rows(victim: np.ndarray, parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching on |cosine|: victim row k is parent row ``perm[k]``, negated if ``flip[k]``."""
    sim = cosine(victim, parent)
    rows, cols = linear_sum_assignment(-np.abs(sim))
    perm = np.empty(len(victim), np.int64)
    perm[rows] = cols
    return perm, (sim[rows, cols] < 0)[np.argsort(rows)].astype(np.int64)


def pixel_perm_from_entries(perm: np.ndarray, block: int, channels: int) -> np.ndarray:
    """proposed's ``pixel_perm`` from a block-vector permutation, by majority over the block."""
    half = block // 2
    pixel = np.arange(block * block)
    r, c = np.divmod(pixel, block)
    src = perm[pixel * channels] // channels  # source pixel of every pixel (channel 0 entry)
    sr, sc = np.divmod(src, block)
    k = (r % half) * half + c % half
    votes = np.zeros((half * half, half * half), np.int64)
    np.add.at(votes, (k, (sr % half) * half + sc % half), 1)
    return votes.argmax(axis=1)


class ModelLeak(Attack):
    """Key recovery from the provider's ViT: match to the public parent, or seriate without one."""

    name = "model-leak"
    paper = ("Kiya et al. 2023 (image and model transformation with secret key for ViT); "
             "attacks.md 'model-leak'")
    threat_models = ("model",)

    def __init__(self, *, restarts: int = 8, max_ciphertexts: int = 200, **common):
        super().__init__(**common)
        self.restarts = int(restarts)
        self.max_ciphertexts = int(max_ciphertexts)

    @property
    def params(self) -> dict[str, Any]:
        return {**super().params, "restarts": self.restarts, "max_ciphertexts": self.max_ciphertexts}

    def reconstruct(self, view: ThreatView) -> AttackResult:
        cipher, shape = view.cipher, tuple(view.plain_shape)
        if cipher.name not in SUPPORTED:
            raise ParameterError(f"model-leak recovers keys of {', '.join(SUPPORTED)} (a key the ViT "
                                 f"absorbs); cipher '{cipher.name}' is not supported")
        if view.model is None:
            raise ParameterError("model-leak needs the provider's model (threat model 'model')")
        given = view.model if isinstance(view.model, dict) else {"model": view.model, "parent": None}
        model, parent = given.get("model"), given.get("parent")
        cts = view.ciphertexts.cpu()
        if cipher.name == "plain":
            material: dict[str, np.ndarray] = {}
            facts: dict[str, Any] = {"parent": parent is not None}
        elif parent is not None:
            material, facts = self._with_parent(cipher, shape, model, parent)
        else:
            material, facts = self._without_parent(cipher, shape, model, cts)
        images = cipher.decrypt(view.ciphertexts, Key(cipher.name, cipher.params, shape, material))
        facts["recovered_key"] = {k: np.asarray(v).tolist() for k, v in material.items()}
        return AttackResult(images, facts)

    def _with_parent(self, cipher: Cipher, shape: Shape, model, parent):
        columns, rows = embeddings(model)
        parent_columns, parent_rows = embeddings(parent)
        if columns.shape != parent_columns.shape:
            raise ParameterError(f"the parent's patch embedding {parent_columns.shape} does not match "
                                 f"the model's {columns.shape}")
        perm, flip = match_rows(columns, parent_columns)
        facts: dict[str, Any] = {"parent": True,
                                 "column_cosine": float(np.abs(cosine(columns, parent_columns)[
                                     np.arange(len(perm)), perm]).mean())}
        if cipher.name == "block-shuffle":
            return {"perm": perm}, facts
        if cipher.name == "block-np":
            return {"mask": flip}, facts
        if rows is None:
            raise ParameterError("the model has no position embedding to read the block permutation from")
        block_perm, _ = match_rows(rows, parent_rows)
        pixel_perm = pixel_perm_from_entries(perm, cipher.block_size, shape[0])
        return {"block_perm": block_perm, "pixel_perm": pixel_perm}, facts

    def _without_parent(self, cipher: Cipher, shape: Shape, model, cts: torch.Tensor):
        if cipher.name != "proposed":
            raise ParameterError("model-leak without a parent model supports 'proposed' only")
        columns, rows = embeddings(model)
        if rows is None:
            raise ParameterError("the model has no position embedding to read the block permutation from")
        channels, height, width = shape
        block, half = cipher.block_size, cipher.block_size // 2
        # In-sub-block permutation: similarity of the patch-embedding filters of two pixels,
        # averaged over the four sub-blocks (they share the permutation).
        pixels = columns.reshape(block * block, -1)  # one row per pixel: its filters, all channels
        sim = cosine(pixels, pixels).reshape(2, half, 2, half, 2, half, 2, half)
        observed = np.zeros((half * half, half * half))
        for qr in range(2):
            for qc in range(2):
                part = sim[qr, :, qc, :, qr, :, qc, :].reshape(half * half, half * half)
                observed += part / 4
        template = grid_template(half, half, 1.0)
        pixel_perm, margin = recover_pixel_perm(cipher, shape, cts, template, restarts=self.restarts,
                                                seed=self.seed, observed=observed)
        # Block permutation: seriate the position embedding on the block grid, up to its symmetries.
        grid_rows, grid_cols = height // block, width // block
        found = match_positions(grid_template(grid_rows, grid_cols, 1.0), cosine(rows, rows),
                                restarts=self.restarts, seed=self.seed)
        candidates = [found]
        if grid_rows == grid_cols:
            candidates = [s[found] for s in square_symmetries(grid_rows)]
        else:  # the turns that keep a non-square grid: identity, flips, half turn
            r, c = np.divmod(found, grid_cols)
            for t in (0, 2, 4, 6):
                dr, dc = OFFSETS[t] @ np.stack([2 * r - (grid_rows - 1), 2 * c - (grid_cols - 1)])
                candidates.append(((dr + grid_rows - 1) // 2) * grid_cols + (dc + grid_cols - 1) // 2)
        # The ciphertexts offer a second source: edge compatibility summed over all of them.
        identity = np.arange(grid_rows * grid_cols)
        unshuffled = cipher.decrypt(cts, Key(cipher.name, cipher.params, shape,
                                             {"block_perm": identity, "pixel_perm": pixel_perm}))
        sources = ["position embedding"] * len(candidates)
        if len(cts):
            table = summed_dissimilarity(unshuffled[:self.max_ciphertexts], block, "mgc", 1.0)
            candidates.append(place(table, grid_rows, grid_cols).cells)
            sources.append("ciphertext edges")
        costs = [block_edge_cost(cipher.decrypt(cts[:self.max_ciphertexts], Key(
            cipher.name, cipher.params, shape, {"block_perm": bp, "pixel_perm": pixel_perm})), block)
            for bp in candidates]
        best = int(np.argmin(costs))
        block_perm = candidates[best]
        ranked = sorted(costs[:len(sources) - (len(cts) > 0)])
        return ({"block_perm": block_perm, "pixel_perm": pixel_perm},
                {"parent": False, "symmetry_margin": margin, "block_perm_source": sources[best],
                 "grid_symmetry_margin": ranked[1] / max(ranked[0], 1e-12) if len(ranked) > 1 else None})
