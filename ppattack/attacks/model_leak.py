"""model-leak: the provider's ViT reveals the key (docs/attacks.md, "model-leak").

A ViT that serves images encrypted by block scrambling at its patch size plus one fixed
transformation of every block vector holds the key in its first layer: permuting the block
vector permutes the columns of the patch embedding, and scrambling blocks permutes the rows of
the position embedding (Kiya et al. 2023). The attack never reads the cipher's name or key
format. It learns the cipher's form from keys of its own (the algorithm is public): each own
key must have a model-side key (:func:`ppattack.model_transform.patch_transform`: proposed, block-shuffle,
block-np, plain trivially, and any plugin of the kind), and the own keys say which parts a key
has (block scrambling, an entry permutation, flips) and how pixels may move inside a block.

- With the public parent (``view.model = {"model": m, "parent": p}``: the victim's model was
  made from, or fine-tuned from, a public plain model): match every column of the victim's
  patch embedding to the parent's (Hungarian on absolute cosine similarity; a negative cosine
  is a negative-positive flip) and every position-embedding row to the parent's; only the parts
  that the cipher's keys have are kept.
- Without a parent (``view.model`` is the model itself, or the dict has ``"parent": None``;
  the provider trained from scratch on encrypted images). This needs a cipher whose keys move
  whole pixels inside a block (the channels of a pixel stay together and in order) and flip
  nothing (proposed, or a plugin of the kind), and whose pixels move within rectangles: the
  own keys join every pixel position to the positions it is sent to, and each group so joined
  (a class, ``facts["in_block_classes"]``; proposed: the four sub-blocks) must be a rectangle
  of the block. Patch-embedding
  filters of neighbouring pixels are alike (their gradient updates are driven by correlated
  inputs) and so are position-embedding rows of neighbouring blocks, so both permutations
  follow from seriation against a grid (:mod:`ppattack.solvers.seriation`). Classes that every own key
  maps alike (proposed: one shuffle shared by the sub-blocks) pool their evidence and are
  solved once. Seriation leaves each class's turns and mirrors open: the lines between classes
  must be smooth on the victim ciphertexts, and the turns of the whole block that keep every
  class in place are settled with the borders between blocks. A briefly trained model's
  position embedding may not have learned the grid; the block permutation placed from the
  ciphertexts' edges is the other candidate, and whichever restores smoother block borders wins
  (``facts["block_perm_source"]``). Where the classes allow a turn of the whole block (a
  class that is the whole block), the picture turned as a whole is an equally valid answer
  that no edge can rule out; the first found is kept.

The model may be a timm ``VisionTransformer`` or a :class:`ppattack.learning.classifier.Classifier`
holding one. The recovered transformation is a byte map of the whole image
(:meth:`ppattack.model_transform.PatchTransform.component_map`) that decrypts the victim ciphertexts by
itself; it goes to ``AttackResult.recovered_map`` and, when the cipher turns maps into its key
material (:func:`ppattack.solvers.component_map.key_material`), that material to
``AttackResult.recovered_key`` (both scored by the harness, never written).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ppattack.attack import Attack, AttackResult
from ppattack.solvers.edge_compatibility import block_edge_cost, summed_dissimilarity
from ppattack.cipher import Cipher
from ppattack.solvers.component_map import key_material
from ppattack.errors import ParameterError
from ppattack.keys import Shape
from ppattack.model_transform import PatchTransform, patch_transform
from ppattack.solvers.pieces import OFFSETS
from ppattack.solvers.placement import place
from ppattack.solvers.seriation import grid_template, match_positions
from ppattack.threat import ThreatView

OWN_KEYS = 8  # keys of the attacker's own: the cipher's form and the classes of in-block moves
OWN_SEED = 40_009


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


def own_transforms(cipher: Cipher, shape: Shape, keys: int = OWN_KEYS) -> list[PatchTransform]:
    """The :class:`~ppattack.model_transform.PatchTransform` of keys of the attacker's own.

    Raises:
        ParameterError: the cipher's keys have no model-side key (the message says why).
    """
    try:
        return [patch_transform(cipher, cipher.generate_key(shape, seed=OWN_SEED + i)) for i in range(keys)]
    except ParameterError as error:
        raise ParameterError(f"model-leak recovers keys that a ViT absorbs; cipher '{cipher.name}' is "
                             f"not supported: {error}") from None


def grid_symmetries(rows: int, cols: int) -> np.ndarray:
    """Position maps of the turns and mirrors that keep a ``rows x cols`` grid, identity first:
    row t sends row-major position k to ``maps[t, k]`` (8 for a square, fewer otherwise)."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    centred = np.stack([2 * r - (rows - 1), 2 * c - (cols - 1)])
    maps: list[np.ndarray] = []
    for matrix in OFFSETS:
        if rows != cols and matrix[0, 0] == 0:  # a quarter turn changes the grid's shape
            continue
        dr, dc = matrix @ centred
        moved = ((dr + rows - 1) // 2) * cols + (dc + cols - 1) // 2
        if not any(np.array_equal(moved, m) for m in maps):
            maps.append(moved)
    return np.stack(maps)


def pixel_moves(transform: PatchTransform, channels: int) -> np.ndarray | None:
    """The in-block pixel map ``sigma`` (encrypted pixel p shows plain pixel ``sigma[p]``,
    row-major in the block) when ``transform`` moves whole pixels and flips nothing, else None."""
    pixels = transform.block_size ** 2
    if transform.flip is not None:
        return None
    if transform.perm is None:
        return np.arange(pixels)
    perm = np.asarray(transform.perm).reshape(pixels, channels)
    sigma = perm[:, 0] // channels
    return sigma if (perm == sigma[:, None] * channels + np.arange(channels)).all() else None


def entries_of(sigma: np.ndarray, channels: int) -> np.ndarray:
    """Block-vector permutation of the pixel map ``sigma`` (channels move with their pixel)."""
    return (sigma[:, None] * channels + np.arange(channels)).reshape(-1)


def pixel_labels(sigmas: list[np.ndarray], block: int) -> np.ndarray:
    """A class label per in-block pixel: pixels that keys only move among themselves (connected
    components of "pixel p shows pixel sigma[p]" over the own keys; proposed: the sub-blocks)."""
    n = block * block
    source = np.concatenate([np.arange(n)] * len(sigmas))
    graph = coo_matrix((np.ones(source.size), (source, np.concatenate(sigmas))), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def pixel_classes(label: np.ndarray, block: int) -> list[tuple[np.ndarray, int, int]]:
    """``(positions, rows, cols)`` per class of more than one pixel, positions row-major in
    their rectangle.

    Raises:
        ParameterError: some class is not a rectangle of the block.
    """
    classes = []
    for c in np.unique(label):
        positions = np.flatnonzero(label == c)
        if positions.size == 1:
            continue
        r, col = np.divmod(positions, block)
        rows, cols = int(r.max() - r.min() + 1), int(col.max() - col.min() + 1)
        if rows * cols != positions.size:
            raise ParameterError("model-leak without a parent needs the pixels a key moves inside a block "
                                 "to stay within rectangles; this cipher's do not (give the parent model)")
        classes.append((positions, rows, cols))
    return classes


def shared_groups(classes: list[tuple[np.ndarray, int, int]],
                  sigmas: list[np.ndarray]) -> list[list[tuple[np.ndarray, int, int]]]:
    """Classes grouped by their local maps: classes of one shape that every own key maps alike
    share one map (pooled evidence, one solution)."""
    groups: dict[tuple, list[tuple[np.ndarray, int, int]]] = {}
    for positions, rows, cols in classes:
        local = np.full(max(len(s) for s in sigmas), -1)
        local[positions] = np.arange(positions.size)
        signature = (rows, cols, tuple(local[s[positions]].tobytes() for s in sigmas))
        groups.setdefault(signature, []).append((positions, rows, cols))
    return list(groups.values())


def class_border_cost(images: torch.Tensor, label: np.ndarray, block: int) -> float | None:
    """Mean squared step between neighbouring pixels of one block that lie in different classes
    (proposed: across the lines between sub-blocks); None when no such pixels exist."""
    x = images.float()
    height, width = x.shape[-2:]
    grid = torch.as_tensor(label.reshape(block, block)).repeat(height // block, width // block)
    vertical = (grid[1:] != grid[:-1]) & (torch.arange(1, height) % block != 0)[:, None]
    horizontal = (grid[:, 1:] != grid[:, :-1]) & (torch.arange(1, width) % block != 0)[None, :]
    if not (vertical.any() or horizontal.any()):
        return None
    steps = [(x[..., 1:, :] - x[..., :-1, :])[..., vertical], (x[..., 1:] - x[..., :-1])[..., horizontal]]
    return float(sum(step.pow(2).mean() for step in steps if step.numel()))


class ModelLeak(Attack):
    """Key recovery from the provider's ViT: match to the public parent, or seriate without one."""

    name = "model-leak"
    paper = ("Kiya et al. 2023 (image and model transformation with secret key for ViT); "
             "docs/attacks.md 'model-leak'")
    threat_models = ("model",)

    def __init__(self, *, restarts: int = 8, max_ciphertexts: int = 200, **common):
        super().__init__(**common)
        self.store_params(locals())
        if min(self.restarts, self.max_ciphertexts) < 1:
            raise ParameterError(f"model-leak restarts and max_ciphertexts must be at least 1 (got {self.restarts}, "
                                 f"{self.max_ciphertexts})")

    def reconstruct(self, view: ThreatView) -> AttackResult:
        cipher, shape = view.cipher, tuple(view.plain_shape)
        own = own_transforms(cipher, shape)
        if view.model is None:
            raise ParameterError("model-leak needs the provider's model (threat model 'model')")
        given = view.model if isinstance(view.model, dict) else {"model": view.model, "parent": None}
        model, parent = given.get("model"), given.get("parent")
        facts: dict[str, Any] = {"parent": parent is not None}
        if own[0].block_size is None:  # the cipher is the identity
            transform = PatchTransform(None)
        elif parent is not None:
            transform = self._with_parent(own, shape, model, parent, facts)
        else:
            transform = self._without_parent(own, shape, model, view.ciphertexts.cpu(), facts)
        found = transform.component_map(shape)
        images = found.decrypt(view.ciphertexts, shape)
        result = AttackResult(images, facts)
        if _keyed_part_is_everything(cipher, shape):  # the map is that of the cipher's keyed part
            material = key_material(cipher, shape, found)
            result.recovered_map = found
            result.recovered_key = None if material is None else {k: np.asarray(v).tolist()
                                                                  for k, v in material.items()}
        return result

    def _with_parent(self, own: list[PatchTransform], shape: Shape, model, parent,
                     facts: dict[str, Any]) -> PatchTransform:
        columns, rows = embeddings(model)
        parent_columns, parent_rows = embeddings(parent)
        _check_geometry(columns, rows, shape, own[0].block_size)
        if columns.shape != parent_columns.shape:
            raise ParameterError(f"the parent's patch embedding {parent_columns.shape} does not match "
                                 f"the model's {columns.shape}")
        perm, flip = match_rows(columns, parent_columns)
        facts["column_cosine"] = float(np.abs(cosine(columns, parent_columns)[np.arange(len(perm)), perm]).mean())
        block_perm = None
        if any(t.block_perm is not None for t in own):
            if rows is None or parent_rows is None:
                raise ParameterError("the model has no position embedding to read the block permutation from")
            block_perm, _ = match_rows(rows, parent_rows)
        return PatchTransform(own[0].block_size, block_perm,
                              perm if any(t.perm is not None for t in own) else None,
                              flip if any(t.flip is not None for t in own) else None)

    def _without_parent(self, own: list[PatchTransform], shape: Shape, model, cts: torch.Tensor,
                        facts: dict[str, Any]) -> PatchTransform:
        channels = shape[0]
        sigmas = [pixel_moves(t, channels) for t in own]
        if any(s is None for s in sigmas):
            raise ParameterError("model-leak without a parent needs a cipher whose keys move whole pixels "
                                 "inside a block and flip nothing; give the parent model")
        columns, rows = embeddings(model)
        _check_geometry(columns, rows, shape, own[0].block_size)
        sample = cts[:self.max_ciphertexts]
        label = pixel_labels(sigmas, own[0].block_size)
        sigma = self._in_block(own[0].block_size, shape, columns, sigmas, label, sample, facts)
        moves = any(t.block_perm is not None for t in own)
        return self._placement(own[0].block_size, shape, rows if moves else None, moves, label, sigma,
                               sample, facts)

    def _in_block(self, block: int, shape: Shape, columns: np.ndarray, sigmas: list[np.ndarray],
                  label: np.ndarray, sample: torch.Tensor, facts: dict[str, Any]) -> np.ndarray:
        """The in-block pixel map, up to the turns of the whole block that keep every class."""
        classes = pixel_classes(label, block)
        groups = shared_groups(classes, sigmas)
        # Similarity of the patch-embedding filters of two pixels (all channels), pooled over the
        # classes of a group, seriated against the class's grid.
        pixels = columns.reshape(block * block, -1)
        sim = cosine(pixels, pixels)
        options = []
        for group in groups:
            _, h, w = group[0]
            observed = np.mean([sim[np.ix_(p, p)] for p, _, _ in group], axis=0)
            found = match_positions(grid_template(h, w, 1.0), observed, restarts=self.restarts, seed=self.seed)
            options.append([s[found] for s in grid_symmetries(h, w)])

        def sigma_of(choice: list[int]) -> np.ndarray:
            sigma = np.arange(block * block)
            for group, local, c in zip(groups, options, choice):
                for positions, _, _ in group:
                    sigma[positions] = positions[local[c]]
            return sigma

        # Each group's turn: the lines between classes must be smooth (groups in turn, until stable).
        choice, margins = [0] * len(groups), []
        decide = len(sample) > 0 and len(np.unique(label)) > 1
        for _ in range(4 if decide else 0):
            before, margins = list(choice), []
            for g in range(len(groups)):
                costs = [class_border_cost(_decrypt(sample, shape, block, None, sigma_of(
                    choice[:g] + [c] + choice[g + 1:])), label, block) for c in range(len(options[g]))]
                choice[g] = int(np.argmin(costs))
                ranked = sorted(costs)
                margins.append(ranked[1] / max(ranked[0], 1e-12))
            if choice == before or len(groups) == 1:
                break
        facts["in_block_classes"] = len(classes)
        facts["symmetry_margin"] = min(margins) if margins else None
        return sigma_of(choice)

    def _placement(self, block: int, shape: Shape, rows: np.ndarray | None, moves: bool,
                   label: np.ndarray, base: np.ndarray, sample: torch.Tensor,
                   facts: dict[str, Any]) -> PatchTransform:
        """The block permutation (when blocks move) and the turn of the whole block that keeps
        every class in place, whichever restore the smoothest borders between blocks."""
        _, height, width = shape
        grid_rows, grid_cols = height // block, width // block
        embedded = []
        if rows is not None:  # seriate the position embedding on the block grid, up to its symmetries
            found = match_positions(grid_template(grid_rows, grid_cols, 1.0), cosine(rows, rows),
                                    restarts=self.restarts, seed=self.seed)
            embedded = [s[found] for s in grid_symmetries(grid_rows, grid_cols)]
        if moves and not embedded and not len(sample):
            raise ParameterError("model-leak without a parent needs a position embedding or ciphertexts "
                                 "to place the blocks")
        best = None
        for turn in (s for s in grid_symmetries(block, block) if (label[s] == label).all()):
            sigma = turn[base]
            candidates = list(embedded) if moves else [None]
            sources = ["position embedding"] * len(embedded) if moves else ["blocks stay"]
            if moves and len(sample):  # the ciphertexts' edges, summed over all of them
                table = summed_dissimilarity(_decrypt(sample, shape, block, None, sigma), block, "mgc", 1.0)
                candidates.append(place(table, grid_rows, grid_cols).cells)
                sources.append("ciphertext edges")
            costs = [block_edge_cost(_decrypt(sample, shape, block, bp, sigma), block) if len(sample) else 0.0
                     for bp in candidates]
            i = int(np.argmin(costs))
            if best is None or costs[i] < best[0]:
                ranked = sorted(costs[:len(embedded)])
                best = (costs[i], candidates[i], sigma, sources[i],
                        ranked[1] / max(ranked[0], 1e-12) if len(ranked) > 1 else None)
        _, block_perm, sigma, source, grid_margin = best
        facts.update({"block_perm_source": source, "grid_symmetry_margin": grid_margin})
        return PatchTransform(block, block_perm, entries_of(sigma, shape[0]))


def _decrypt(images: torch.Tensor, shape: Shape, block: int, block_perm: np.ndarray | None,
             sigma: np.ndarray) -> torch.Tensor:
    """Undo block scrambling ``block_perm`` and the in-block pixel map ``sigma``."""
    transform = PatchTransform(block, block_perm, entries_of(sigma, shape[0]))
    return transform.component_map(shape).decrypt(images, shape)


def _check_geometry(columns: np.ndarray, rows: np.ndarray | None, shape: Shape, block: int) -> None:
    """The ViT's patches must be the cipher's blocks."""
    channels, height, width = shape
    if len(columns) != channels * block * block:
        raise ParameterError(f"the ViT's patches have {len(columns)} entries but the cipher's {block}x{block} "
                             f"blocks have {channels * block * block}: the patch size must be the block size")
    if rows is not None and len(rows) != (height // block) * (width // block):
        raise ParameterError(f"the ViT has {len(rows)} positions but the image has "
                             f"{(height // block) * (width // block)} blocks")


def _keyed_part_is_everything(cipher: Cipher, shape: Shape) -> bool:
    """Whether the cipher has no keyless step, so a map of its encryption is one of its keyed part."""
    if tuple(cipher.keyed_shape(shape)) != tuple(shape):
        return False
    probe = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, *shape), dtype=np.uint8))
    return torch.equal(cipher.keyless_step(probe), probe)
