"""In-piece maps from second-order statistics: which plain unit every cipher unit holds.

A shared-key cipher of the class (:mod:`ppattack.solvers.structure`) moves the units of every piece by
a map that does not change from image to image. Pooled over many ciphertexts, the correlations
between the cipher units are those of the plain units, relabelled; a template of the plain
units' statistics comes from public images. :func:`recover_piece_map` solves, in order:

1. planes: which cipher units are most significant (a high nibble correlates with its
   neighbours, a low nibble hardly does), unless the cipher keeps units in their plane;
2. masks: a unit inverted by the key (``x ^ all-ones``) correlates negatively with the rest:
   the signs of the leading eigenvector of the correlation matrix (Le Roux et al., "Learning
   the 2-D topology of images", NIPS 2007, use the same statistics to recover pixel order);
3. the most significant plane by quadratic assignment against the template
   (:func:`ppattack.solvers.seriation.match_positions`), whole pixels at a time where the cipher moves
   whole pixels;
4. each lower plane by matching every cipher unit to the plain slot whose value, predicted
   from the planes above by a linear model fitted on public images, it follows best.

The answer is fixed only up to the symmetries of the template (turns and mirrors of the piece,
exchanges of channels: :func:`symmetries`); callers decide among them with other cues.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import permutations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from threadpoolctl import threadpool_limits

from ..errors import ParameterError
from .pieces import DIHEDRAL, turn
from .seriation import correlation, grid_template, match_positions
from .structure import Structure

GRID_SCALE = 2.0  # decay (pixels) of the parametric template used without public images
RIDGE = 1e-3  # relative ridge of the lower-plane predictor (fraction of the mean feature variance)


@dataclass(frozen=True)
class PieceMap:
    """Cipher unit l of a piece holds plain unit ``src[l]`` XOR ``mask[l]``."""

    src: np.ndarray
    mask: np.ndarray

    def decode(self, units: torch.Tensor) -> torch.Tensor:
        """Plain units ``(..., L)`` from cipher units ``(..., L)`` (uint8)."""
        out = torch.empty_like(units)
        out[..., torch.from_numpy(self.src)] = units ^ torch.from_numpy(self.mask.astype(np.uint8))
        return out

    def then(self, g: np.ndarray) -> "PieceMap":
        """This map followed by the plain-side relabelling ``g`` (plain unit a becomes g[a])."""
        return PieceMap(g[self.src], self.mask)


def _corr(x: torch.Tensor, y: torch.Tensor | None = None) -> np.ndarray:
    """Pearson correlation between the columns of ``x`` (and of ``y``): float64."""
    a = x.double() - x.double().mean(0)
    b = a if y is None else y.double() - y.double().mean(0)
    cov = a.T @ b / max(1, len(a) - 1)
    sa = a.pow(2).sum(0).div(max(1, len(a) - 1)).sqrt().clamp_min(1e-9)
    sb = sa if y is None else b.pow(2).sum(0).div(max(1, len(b) - 1)).sqrt().clamp_min(1e-9)
    return (cov / sa[:, None] / sb[None, :]).numpy()


def symmetries(channels: int, block: int, planes: int, *, turns: bool = True,
               colours: bool = True) -> list[np.ndarray]:
    """Relabellings of a piece's plain units that natural-image statistics cannot tell apart:
    every turn / mirror of the square (:func:`ppattack.solvers.pieces.turn` numbering, element t at
    index ``t * C!``) times every permutation of the channels."""
    grid = torch.arange(planes * channels * block * block).view(planes, channels, block, block)
    found = []
    for t in range(DIHEDRAL if turns and block > 1 else 1):
        turned = turn(grid, t)
        for order in (permutations(range(channels)) if colours else [tuple(range(channels))]):
            moved = turned[:, list(order)].reshape(-1).numpy()  # unit at a comes from moved[a]
            g = np.empty_like(moved)
            g[moved] = np.arange(len(moved))
            found.append(g)
    return found


def _signs(x: torch.Tensor) -> np.ndarray:
    """+1 / -1 per column: the signs of the leading eigenvector of the correlation matrix."""
    _, vectors = np.linalg.eigh(_corr(x))
    signs = np.sign(vectors[:, -1])
    signs[signs == 0] = 1
    return signs if (signs > 0).sum() >= (signs < 0).sum() else -signs


def recover_piece_map(samples: torch.Tensor, public: torch.Tensor | None, structure: Structure,
                      channels: int, *, restarts: int = 8, seed: int = 0) -> PieceMap:
    """The in-piece map up to :func:`symmetries`, from cipher pieces and public plain pieces
    (one problem; :class:`PieceMapSolver` solves many against one template).

    Args:
        samples: uint8 ``(m, L)`` units of cipher pieces that share one map.
        public: uint8 ``(p, L)`` units of public plain pieces (the template; None: a
            parametric template, for whole-pixel maps without inversions), or
            ``(positions, p, L)`` to keep the plain piece positions apart (their value
            distributions then decide inversions position by position).
        structure: the cipher's probed structure.
        channels: channels of the keyed image.

    Raises:
        ParameterError: masks other than none / all-ones (not recoverable from statistics).
    """
    return PieceMapSolver(public, structure, channels).solve(samples, restarts=restarts, seed=seed)


class PieceMapSolver:
    """Recovers in-piece maps against one template: what depends on the public images only
    (correlations, value histograms, the lower planes' predictors) is computed once, so many
    maps (one per piece position) cost one template. Arguments as :func:`recover_piece_map`."""

    def __init__(self, public: torch.Tensor | None, structure: Structure, channels: int):
        self.full = (1 << structure.bits) - 1
        if not set(structure.masks) <= {0, self.full}:
            raise ParameterError(f"unit masks {structure.masks} are not inversions of whole units: "
                                 "outside the ciphertext-only attack's class (try kpa or cpa)")
        self.flips_allowed = self.full in structure.masks
        if public is None and not (structure.pixels_whole and structure.planes_fixed
                                   and not self.flips_allowed and structure.planes == 1):
            raise ParameterError("without public images only maps that move whole pixels and invert "
                                 "nothing can be recovered (threat model coa+public gives the template)")
        self.structure, self.channels = structure, channels
        self.by_position = None if public is None else (public.double() if public.ndim == 3 else public.double()[None])
        y = self.y = None if self.by_position is None else self.by_position.flatten(0, 1)
        # What the public images give, computed once (solve only reads it: threads may share it).
        planes, block = structure.planes, structure.block
        length = channels * block * block * planes
        per_plane = length // planes
        top_slots = np.arange((planes - 1) * per_plane, length)
        self.whole_pixels = structure.pixels_whole and structure.planes_fixed and block > 1
        if self.whole_pixels:
            self.top_template = (grid_template(block, block, GRID_SCALE) if y is None
                                 else correlation(_cells(y[:, top_slots], channels), center=False))
        else:
            self.top_template = _corr(y[:, top_slots])
        self.top_histograms = _histograms(self.by_position[..., top_slots], self.full) if self.flips_allowed else None
        self.predictors = {} if self.whole_pixels else {
            plane: _ridge(y[:, (plane + 1) * per_plane:], y[:, plane * per_plane:(plane + 1) * per_plane])
            for plane in range(planes - 1)}

    def solve_each(self, samples: torch.Tensor, *, restarts: int = 8, seed: int = 0,
                   lean: bool = False) -> list[PieceMap]:
        """The map of every piece position: ``samples`` uint8 ``(m, positions, L)``. Positions
        are solved side by side on ``torch.get_num_threads()`` threads, each with a
        single-threaded BLAS (the problems are many and small; threads inside each would only
        wait for one another)."""
        solve = lambda i: self.solve(samples[:, i], restarts=restarts, seed=seed, lean=lean)  # noqa: E731
        with threadpool_limits(limits=1, user_api="blas"), \
                ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads())) as pool:
            return list(pool.map(solve, range(samples.shape[1])))

    def solve(self, samples: torch.Tensor, *, restarts: int = 8, seed: int = 0, lean: bool = False) -> PieceMap:
        """The map of cipher pieces ``samples`` (uint8 ``(m, L)``); ``lean``: the lean search
        of the quadratic assignment (:func:`ppattack.solvers.seriation.match_positions`)."""
        structure, channels, full = self.structure, self.channels, self.full
        planes, block = structure.planes, structure.block
        length = samples.shape[1]
        per_plane = length // planes
        x = samples.double()
        # 1. planes
        if planes == 1 or structure.planes_fixed:
            plane_of = np.arange(length) // per_plane
        else:
            strength = (_corr(x) ** 2).sum(0)
            plane_of = np.empty(length, np.int64)
            plane_of[np.argsort(-strength, kind="stable")] = np.repeat(np.arange(planes)[::-1], per_plane)
        src = np.full(length, -1, np.int64)
        flip = np.zeros(length, bool)
        # 2. masks and 3. the top plane
        top = planes - 1
        units = np.flatnonzero(plane_of == top)
        slots = np.arange(top * per_plane, (top + 1) * per_plane)
        if self.flips_allowed:
            flip[units] = _signs(x[:, units]) < 0
        decoded = torch.where(torch.from_numpy(flip[units]), full - x[:, units], x[:, units])
        if self.flips_allowed and self._globally_flipped(decoded):
            flip[units] = ~flip[units]
            decoded = full - decoded
        pixels = block * block
        if self.whole_pixels:
            # Whole pixels: match B^2 positions, correlations pooled over the channels.
            perm = match_positions(self.top_template, correlation(_cells(decoded, channels), center=False),
                                   restarts=restarts, seed=seed, lean=lean)
            for plane in range(planes):
                for c in range(channels):
                    base = (plane * channels + c) * pixels
                    src[base + np.arange(pixels)] = base + perm
                    flip[base + np.arange(pixels)] = flip[top * per_plane + c * pixels + np.arange(pixels)]
            return PieceMap(src, flip.astype(np.uint8) * full)
        perm = match_positions(self.top_template, _corr(decoded), restarts=restarts, seed=seed, lean=lean)
        src[units] = slots[perm]
        # 4. lower planes, most significant first
        known_units, known_slots = list(units), list(slots[perm])
        for plane in range(top - 1, -1, -1):
            units = np.flatnonzero(plane_of == plane)
            slots = np.arange(plane * per_plane, (plane + 1) * per_plane)
            values = torch.where(torch.from_numpy(flip[known_units]), full - x[:, known_units], x[:, known_units])
            predicted = self._predict(plane, values[:, np.argsort(known_slots)])
            match = _corr(x[:, units], predicted)  # (units, slots)
            rows, cols = linear_sum_assignment(-np.abs(match) if self.flips_allowed else -match)
            src[units[rows]] = slots[cols]
            if self.flips_allowed:
                flip[units[rows]] = match[rows, cols] < 0
            known_units += list(units[rows])
            known_slots += list(slots[cols])
        return PieceMap(src, flip.astype(np.uint8) * full)

    def _globally_flipped(self, decoded: torch.Tensor) -> bool:
        """Whether inverting every unit brings the distribution of the units' values closer to
        the template's: the L1 distance of the histograms to the nearest of the template's
        per-position histograms (natural images are not symmetric in value, and positions
        differ, e.g. luma and chroma planes)."""
        distance = lambda v: float((_histograms(v, self.full)[None] - self.top_histograms).abs().sum(-1).min())  # noqa: E731
        return distance(self.full - decoded) < distance(decoded)

    def _predict(self, plane: int, values: torch.Tensor) -> torch.Tensor:
        """Every slot of ``plane`` predicted from the units of the planes above it (``values``,
        in slot order) by a ridge regression fitted on the public images."""
        mean, weights = self.predictors[plane]
        return torch.cat([values - mean, torch.ones(len(values), 1, dtype=values.dtype)], 1) @ weights


def _cells(units: torch.Tensor, channels: int) -> torch.Tensor:
    """Units ``(m, C * B^2)`` of one plane as pixel vectors ``(m, B^2, C)``."""
    return units.reshape(len(units), channels, -1).transpose(1, 2)


def _histograms(v: torch.Tensor, full: int) -> torch.Tensor:
    """Normalised histograms of the values of ``v`` ``(..., m, k)`` over its last two dims."""
    flat = v.round().long().flatten(-2)
    counts = torch.zeros((*flat.shape[:-1], full + 1), dtype=torch.float64)
    counts.scatter_add_(-1, flat, torch.ones_like(flat, dtype=torch.float64))
    return counts / counts.sum(-1, keepdim=True)


def _ridge(features: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge regression of ``targets`` on ``features`` (public images): the features' mean and
    the weights ``(F + 1, T)`` that predict the targets from centred features and a constant."""
    mean = features.mean(0)
    a = torch.cat([features - mean, torch.ones(len(features), 1, dtype=features.dtype)], 1)
    gram = a.T @ a
    gram += torch.eye(len(gram), dtype=gram.dtype) * RIDGE * float(gram.diagonal().mean())
    return mean, torch.linalg.solve(gram, a.T @ targets)
