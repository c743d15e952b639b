"""jigsaw: jigsaw-puzzle solver on single ciphertexts (Chuman, Kurihara, Kiya 2017/2018).

Every ciphertext is solved on its own: its blocks are the pieces, the compatibility of two
pieces is the Mahalanobis gradient compatibility (Gallagher 2012, :mod:`ppattack.solvers.edge_compatibility`) and
the placement is tree-based with a greedy fill (:mod:`ppattack.solvers.placement`). Pieces may carry a
state from the cipher's per-block transform set (``Cipher.unit_transforms``), which must be
made of dihedral turns and colour transforms (channel permutations, negative-positive). Which
ciphers it applies to is learned from keys of the attacker's own (:func:`ppattack.solvers.structure.probe`,
keyed or not): those that scramble blocks, and those whose keys change nothing (the positive
control), where no block moves and the pieces stay where they are: there is no puzzle. Examples:

- ``etc``: 96 states per block (8 turns x 2 negative-positive x 6 colour permutations): the
  tree works over the 8 turns with, for every pair of turned pieces, the best of the 12
  relative colour transforms; the colour states then follow the tree's joins.
- ``etc-gray``: 16 states (8 turns x negative-positive) on the (1, H, 3W) grey image.
- ``proposed`` (and any cipher whose keys move units inside a block by one map shared by every
  block): the shared map is first recovered from the ciphertext itself
  (:func:`ppattack.solvers.piece_maps.recover_piece_map` on its blocks, with a template from public
  images, or a parametric one under ``coa``), the symmetry kept being one that leaves every
  unit in its class and the blocks' insides smoothest; the solution is then a map of the whole
  image (decrypted with it; key material where the cipher derives it).
- ``plain``: own keys move and flip nothing (:attr:`Structure.identity`), so the pieces are left
  in place and the ciphertext is returned as it is (positive control; ``block_size`` sets the
  pieces). A keyed cipher that keeps its blocks in place (le, block-shuffle) is refused.

A solved picture is defined only up to a turn and a recolouring of the whole; under
``coa+public`` the candidate most likely under a Gaussian model of simple statistics of the
public images (channel means and spreads, luminance skew, top-bottom brightness) is chosen,
under ``coa`` the solver's own frame is kept. Each ciphertext's solution (block permutation and
states) goes to ``AttackResult.recovered_key`` as a list, which the harness scores (direct and
neighbour comparison, largest component; :mod:`ppattack.solvers.keyscore`).
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np
import torch

from ppattack.attack import Attack, AttackResult
from ppattack.cipher import Cipher
from ppattack.solvers.edge_compatibility import dihedral_dissimilarity, dissimilarity
from ppattack.errors import ParameterError, ShapeError
from ppattack.keys import Key
from ppattack.solvers.pieces import DIHEDRAL, OFFSETS, PRODUCT, ColourGroup, assemble, split, turn
from ppattack.solvers.piece_maps import PieceMap, recover_piece_map, symmetries
from ppattack.solvers.placement import place
from ppattack.solvers.structure import assemble_units, compose_map, piece_units, probe
from ppattack.threat import ThreatView

log = logging.getLogger(__name__)

class StateSet:
    """A cipher's per-block transforms as (turn, colour element) pairs (found by probing)."""

    def __init__(self, cipher: Cipher, channels: int, block: int, shape):
        self.colour = ColourGroup(channels)
        self.cipher_state = np.full((DIHEDRAL, self.colour.size), -1, np.int64)
        transforms = cipher.unit_transforms(shape)
        #: key material parts of blocks given their state numbers (the cipher's, or None)
        self.key_parts = None if transforms is None else transforms.key_parts
        if transforms is None:
            self.cipher_state[0, 0] = 0
        else:
            if transforms.unit != "block" or transforms.unit_size != block:
                raise ParameterError(f"jigsaw needs per-block transforms of {block}x{block} blocks; "
                                     f"cipher '{cipher.name}' has per-{transforms.unit} ones")
            probe = torch.from_numpy(np.random.default_rng(0).integers(
                0, 256, (1, channels, block, block)).astype(np.uint8))
            display = {(t, e): turn(self.colour.apply(probe, e), t)
                       for t in range(DIHEDRAL) for e in range(self.colour.size)}
            for s in range(transforms.count):
                plain = transforms.undo(probe, s)
                match = [te for te, shown in display.items() if torch.equal(shown, plain)]
                if len(match) != 1:
                    raise ParameterError(f"jigsaw handles turns, channel permutations and "
                                         f"negative-positive; state {s} of cipher "
                                         f"'{cipher.name}' is none of these")
                self.cipher_state[match[0]] = s
        turns = {t for t, _ in np.argwhere(self.cipher_state >= 0)}
        colours = {e for _, e in np.argwhere(self.cipher_state >= 0)}
        if not ((turns == {0} or len(turns) == DIHEDRAL) and
                (colours == {0} or len(colours) == self.colour.size) and
                (self.cipher_state >= 0).sum() == len(turns) * len(colours)):
            raise ParameterError(f"jigsaw needs the per-block states of '{cipher.name}' to be all "
                                 "turns and/or all colour transforms (or none)")
        self.turns = DIHEDRAL if len(turns) > 1 else 1
        self.colours = len(colours) > 1


class UprightPrior:
    """Which turn and recolouring of a whole picture looks natural: learned from public images.

    Edges cannot tell a solved picture from its turned, mirrored or recoloured versions. Natural
    images can, partly: typical channel means and spreads, a luminance skew that
    negative-positive reverses, a sky brighter (and bluer) at the top. A linear score over such
    statistics is fitted on the public images so that each one beats its own transformed
    versions (a conditional logit over the candidates); a mirror image stays a coin toss.
    """

    SIDE = 32  # statistics are computed on pictures average-pooled to at most 32 x 32

    def __init__(self, public: torch.Tensor, turns: list[int], colour: ColourGroup | None,
                 steps: int = 100, max_images: int = 128):
        self.turns = turns
        self.colour = colour
        candidates = self.candidates(self._small(public[:max_images].double()))  # (P, K, C, s, s)
        feats = self.features(candidates.flatten(0, 1)).view(*candidates.shape[:2], -1)
        self.mean = feats[:, 0].mean(0)
        self.scale = feats[:, 0].std(0) + 1e-6
        z = (feats - self.mean) / self.scale
        weight = torch.zeros(z.shape[-1], dtype=torch.float64, requires_grad=True)
        optimiser = torch.optim.LBFGS([weight], max_iter=steps, line_search_fn="strong_wolfe")
        target = torch.zeros(len(z), dtype=torch.long)

        def closure():
            optimiser.zero_grad()
            with torch.enable_grad():
                loss = torch.nn.functional.cross_entropy(z @ weight, target) + 1e-3 * weight.pow(2).sum()
                loss.backward()
            return loss

        optimiser.step(closure)
        self.weight = weight.detach()

    def _small(self, x: torch.Tensor) -> torch.Tensor:
        side = min(self.SIDE, x.shape[-2], x.shape[-1])
        return torch.nn.functional.adaptive_avg_pool2d(x.double(), side) if x.shape[-1] > side else x.double()

    def labels(self) -> list[tuple[int, int]]:
        return [(g, e) for g in self.turns for e in (range(self.colour.size) if self.colour else [0])]

    def candidates(self, x: torch.Tensor) -> torch.Tensor:
        """``(M, C, H, W)`` -> ``(M, K, C, H, W)``: every (turn, colour) of :meth:`labels`."""
        out = []
        for g, e in self.labels():
            turned = turn(x, g)
            out.append(self.colour.apply(turned, e) if self.colour is not None else turned)
        return torch.stack(out, 1)

    @staticmethod
    def features(x: torch.Tensor) -> torch.Tensor:
        """Statistics of pictures ``(M, C, H, W)`` (values 0..255) -> ``(M, F)``."""
        m, c, h, w = x.shape
        mean = x.mean(dim=(2, 3))
        centred = x - mean[:, :, None, None]
        std = centred.pow(2).mean(dim=(2, 3)).sqrt() + 1e-6
        skew = centred.pow(3).mean(dim=(2, 3)) / std ** 3
        third_h, third_w = max(1, h // 3), max(1, w // 3)
        top_bottom = x[:, :, :third_h].mean(dim=(2, 3)) - x[:, :, -third_h:].mean(dim=(2, 3))
        left_right = x[:, :, :, :third_w].mean(dim=(2, 3)) - x[:, :, :, -third_w:].mean(dim=(2, 3))
        grad_v = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(dim=(2, 3))
        grad_h = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean(dim=(2, 3))
        parts = [mean, std, skew, top_bottom, left_right, grad_v - grad_h, (mean - 128) ** 2 / 128]
        if c > 1:
            z = centred / std[:, :, None, None]
            pairs = [(a, b) for a in range(c) for b in range(a + 1, c)]
            parts.append(torch.stack([(z[:, a] * z[:, b]).mean(dim=(1, 2)) for a, b in pairs], 1))
            parts.append(torch.stack([mean[:, a] - mean[:, b] for a, b in pairs], 1))
        return torch.cat(parts, 1)

    def choose(self, picture: torch.Tensor) -> tuple[int, int]:
        """The (turn, colour element) that makes ``picture`` ``(1, C, H, W)`` look most natural."""
        feats = self.features(self.candidates(self._small(picture))[0])
        return self.labels()[int(torch.argmax(((feats - self.mean) / self.scale) @ self.weight))]


class Jigsaw(Attack):
    """Jigsaw-puzzle solver on each ciphertext: MGC compatibility, tree placement, block states."""

    name = "jigsaw"
    paper = ("Chuman, Kurihara, Kiya: On the security of block scrambling-based EtC systems "
             "against jigsaw puzzle solver attacks (ICASSP 2017); Gallagher: Jigsaw puzzles "
             "with pieces of unknown orientation (CVPR 2012)")
    threat_models = ("coa+public", "coa")
    budgets = {"quick": {"block_size": 4}, "cifar": {"block_size": 4}, "paper": {}}  # changes to the defaults

    def __init__(self, *, block_size: int = 16, compat: str = "mgc", reg: float = 1.0,
                 top: int = 3, max_public: int = 500, **common):
        super().__init__(**common)
        self.store_params(locals())
        if not (math.isfinite(self.reg) and self.reg >= 0) or min(self.top, self.max_public) < 1:
            raise ParameterError(f"jigsaw reg must be finite and >= 0 (got {self.reg}), top and max_public "
                                 f"at least 1 (got {self.top}, {self.max_public})")

    def public_images_wanted(self) -> int:
        return self.max_public

    def fit(self, view: ThreatView) -> None:
        """Check the cipher, probe its block states, and learn from the public images (when
        granted) the upright prior and, for proposed, the sub-block correlation template."""
        cipher, shape = view.cipher, tuple(view.plain_shape)
        # Own keys say what the cipher does (the algorithm is public): it must scramble blocks,
        # or change nothing at all (then no block moves and there is no puzzle to solve).
        self._structure = probe(cipher, shape)
        if not self._structure.moves and not self._structure.identity:
            raise ParameterError(f"jigsaw solves ciphers that scramble blocks; cipher '{cipher.name}' "
                                 "keeps its blocks in place (keys of its own show it): not supported")
        block = cipher.block_size or self.block_size
        _, channels, height, width = view.ciphertexts.shape
        if height % block or width % block:
            raise ShapeError(f"jigsaw needs images whose sides are multiples of {block}")
        self._states = StateSet(cipher, channels, block, tuple(view.plain_shape))
        states = self._states
        public = None if view.public_images is None else view.public_images[:self.max_public].cpu()
        self._prior = None
        # The prior judges RGB pictures; etc-gray's grey (Y|Cb|Cr) picture keeps the solver's frame.
        if public is not None and (states.turns > 1 or states.colours) and channels == public.shape[1]:
            rows, cols = height // block, width // block
            turns = [t for t in range(states.turns)
                     if rows == cols or (OFFSETS[t] == np.diag(np.diag(OFFSETS[t]))).all()]
            self._prior = UprightPrior(public, turns, states.colour if states.colours else None)
        # A map shared by every block that moves pixels inside it (proposed): undone first.
        structure = self._structure
        self._shared = (structure.shared and
                        len(set(structure.classes.tolist())) < len(structure.classes))
        self._public_units = (None if public is None or not self._shared else
                              piece_units(cipher.keyless_step(public), block, structure.bits).flatten(0, 1))

    def reconstruct(self, view: ThreatView) -> AttackResult:
        cipher, shape = view.cipher, tuple(view.plain_shape)
        block = cipher.block_size or self.block_size
        states, prior = self._states, self._prior
        cts = view.ciphertexts.cpu()
        restored, keys, clusters = [], [], []
        start = time.perf_counter()
        for ct in cts:
            image, recovered, cluster = self._solve(cipher, shape, ct[None], block, states, prior)
            restored.append(image)
            keys.append(recovered)
            clusters.append(cluster)
            log.debug("jigsaw: image %d solved, largest cluster %.2f", len(keys) - 1, cluster)
        facts = {"largest_cluster_mean": float(np.mean(clusters)),
                 "blocks_move": bool(self._structure.moves),
                 "states_per_block": int(states.turns * (states.colour.size if states.colours else 1)),
                 "global_ambiguity": "public-image prior" if prior is not None else
                 ("none" if states.turns == 1 and not states.colours else "unresolved (coa)"),
                 "seconds_per_image": (time.perf_counter() - start) / max(1, len(cts))}
        return AttackResult(torch.cat(restored).to(view.device), facts, recovered_key=keys)

    # -- one ciphertext ------------------------------------------------------------------------
    def _solve(self, cipher: Cipher, shape, ct: torch.Tensor, block: int, states: StateSet,
               prior: UprightPrior | None):
        _, channels, height, width = ct.shape
        rows, cols = height // block, width // block
        recovered: dict[str, Any] = {}
        original = ct
        shared = None
        if self._shared:
            shared = self._shared_map(ct, block)
            ct = compose_map(tuple(ct.shape[1:]), block, self._structure.bits, [shared.src] * (rows * cols),
                             [shared.mask] * (rows * cols), np.arange(rows * cols)).decrypt(ct)
        pieces = split(ct, block)[0].double()  # (N, C, B, B)
        n = len(pieces)
        colour = states.colour if states.colours else None
        if not self._structure.moves:  # no key moves a block (own keys show it): no puzzle
            cells, turns, colours, cluster = np.arange(n), np.zeros(n, np.int64), np.zeros(n, np.int64), 1.0
        else:
            solved = self._place(pieces, rows, cols, states, colour)
            colours = solved.colours if colour is not None else np.zeros(n, np.int64)
            cells, turns, cluster = solved.cells, solved.states, solved.largest_cluster / n
        if prior is not None:
            cells, turns, colours = self._upright(pieces, cells, turns, colours, rows, cols, states, prior)
        if shared is not None:  # the whole map: shared in-block map and placement
            found = compose_map(tuple(ct.shape[1:]), block, self._structure.bits, [shared.src] * n,
                                [shared.mask] * n, cells)
            material = cipher.key_from_map(shape, found) or {}
            image = cipher.undo_keyless_step(found.decrypt(original))
            return image, {k: np.asarray(v).tolist() for k, v in material.items()}, cluster
        recovered["block_perm"] = cells
        if states.key_parts is not None:
            recovered.update(states.key_parts(states.cipher_state[turns, colours]))
        if set(recovered) == set(cipher.key_fields(shape)):  # a key of the cipher: decrypt with it
            image = cipher.decrypt(original, Key(cipher.name, cipher.params, shape, recovered))
        else:  # no key to decrypt with (e.g. a cipher without a key): show the solved pieces
            image = assemble(_display(pieces, cells, turns, colours, states)[None], rows, cols)
            image = image.round().clamp(0, 255).to(torch.uint8)
        return image, {k: np.asarray(v).tolist() for k, v in recovered.items()}, cluster

    def _place(self, pieces: torch.Tensor, rows: int, cols: int, states: StateSet,
               colour: ColourGroup | None):
        """The puzzle: pairwise dissimilarities of ``pieces`` (N, C, B, B) up to their states,
        then the tree placement (:func:`ppattack.solvers.placement.place`)."""
        if states.turns > 1:
            table, relative = dihedral_dissimilarity(pieces, self.compat, self.reg, colour)
        elif colour is not None:
            tables = torch.stack([dissimilarity(pieces, self.compat, self.reg, others=colour.apply(pieces, e))
                                  for e in range(colour.size)])
            best = tables.min(dim=0)
            table, relative = best.values.numpy(), best.indices.numpy()
            np.einsum("rii->ri", table)[...] = np.inf
        else:
            table, relative = dissimilarity(pieces, self.compat, self.reg).numpy(), None
        return place(table, rows, cols, states=states.turns, top=self.top, relative=relative,
                     colour_product=None if colour is None else colour.product)

    def _shared_map(self, ct: torch.Tensor, block: int) -> PieceMap:
        """The in-block map every block shares, from this ciphertext's blocks (against the public
        images, or a parametric template), among its symmetries the one that keeps every unit
        in its class and leaves the blocks' insides smoothest."""
        structure = self._structure
        samples = piece_units(ct, block, structure.bits)[0]
        found = recover_piece_map(samples, self._public_units, structure, ct.shape[1], seed=self.seed)
        candidates = [found.then(g) for g in symmetries(ct.shape[1], block, structure.planes)]
        candidates = [c for c in candidates if structure.allows(c.src)] or candidates

        def roughness(candidate: PieceMap) -> float:
            pieces = assemble_units(candidate.decode(samples)[:, None], (ct.shape[1], block, block),
                                    block, structure.bits).double()
            return float((pieces.diff(dim=-1) ** 2).mean() + (pieces.diff(dim=-2) ** 2).mean())

        return min(candidates, key=roughness)

    def _upright(self, pieces, cells, turns, colours, rows, cols, states: StateSet, prior: UprightPrior):
        """Turn and recolour the whole solution as the public-image prior likes best."""
        base = assemble(_display(pieces, cells, turns, colours, states)[None], rows, cols)
        g, e = prior.choose(base)
        # The whole picture turned by g: cell (r, c) moves; every piece turns and recolours.
        r, c = np.divmod(cells, cols)
        centre = np.array([(rows - 1) / 2, (cols - 1) / 2])
        moved = (OFFSETS[g] @ (np.stack([r, c]) - centre[:, None])) + centre[:, None]
        out_cols = cols if g % 2 == 0 else rows
        new_cells = np.rint(moved[0]).astype(np.int64) * out_cols + np.rint(moved[1]).astype(np.int64)
        return new_cells, PRODUCT[g, turns], states.colour.product[e, colours]


def _display(pieces: torch.Tensor, cells: np.ndarray, turns: np.ndarray, colours: np.ndarray,
             states: StateSet) -> torch.Tensor:
    """Pieces in their solved turn and colour, ordered by cell."""
    shown = torch.stack([states.colour.apply(turn(pieces[i], int(turns[i])), int(colours[i]))
                         for i in range(len(pieces))])
    order = np.argsort(cells)
    return shown[torch.from_numpy(order)]
