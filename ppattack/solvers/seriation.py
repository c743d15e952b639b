"""Seriation: recover a permutation of positions from second-order statistics.

A cipher that moves the positions of a unit (a sub-block, a block) the same way in every unit
and image leaves the correlation between positions intact, only relabelled. Given the
correlation ``observed`` of the permuted positions and a ``template`` of the plain positions
(estimated from public images, or a parametric decay with grid distance), the permutation is
the solution of a quadratic assignment problem::

    maximise  sum_{k,l} template[perm[k], perm[l]] * observed[k, l]

solved from several starts (a spectral embedding of both matrices aligned by Hungarian
matching, and scipy's FAQ from random starts), each polished by pairwise swaps (2-opt).
Second-order statistics of natural images
are (nearly) invariant under the symmetries of the square, so on a square grid the answer is
fixed only up to those 8 symmetries (:func:`ppattack.solvers.pieces.square_symmetries`); callers
decide among them with another cue.

    >>> from ppattack.solvers.pieces import square_symmetries
    >>> t = grid_template(3, 3)
    >>> perm = np.random.default_rng(0).permutation(9)
    >>> found = match_positions(t, t[np.ix_(perm, perm)])
    >>> bool(any((s[found] == perm).all() for s in square_symmetries(3)))
    True
"""
from __future__ import annotations

from itertools import permutations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment, quadratic_assignment

EXHAUSTIVE = 6  # up to this many positions, match_positions tries all permutations (720)
LEAN_SCREEN = 4  # orientations of the spectral embedding the lean search matches (spectral_starts)


def correlation(vectors: torch.Tensor, *, center: bool = True) -> np.ndarray:
    """Correlation between positions of unit vectors, pooled over units and channels.

    Args:
        vectors: ``(M, S, C)`` values of M units at S positions with C channels (any dtype).
        center: subtract each unit's mean per channel first (removes the shared brightness,
            which otherwise dominates every correlation).

    Returns:
        float64 ``(S, S)`` correlation matrix.
    """
    v = vectors.double()
    if center:
        v = v - v.mean(dim=1, keepdim=True)
    cov = torch.einsum("mkc,mlc->kl", v, v) / max(1, v.shape[0] * v.shape[2])
    scale = cov.diagonal().clamp_min(1e-12).sqrt()
    return (cov / scale[:, None] / scale[None, :]).numpy()


def grid_template(rows: int, cols: int, scale: float = 1.0) -> np.ndarray:
    """A parametric template for a ``rows x cols`` grid: ``exp(-distance / scale)``."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    distance = np.hypot(r[:, None] - r[None, :], c[:, None] - c[None, :])
    return np.exp(-distance / scale)


def match_positions(template: np.ndarray, observed: np.ndarray, *, restarts: int = 16,
                    seed: int = 0, lean: bool = False) -> np.ndarray:
    """The permutation ``perm`` with ``observed[k, l] ~ template[perm[k], perm[l]]``.

    Args:
        template: ``(S, S)`` similarity of the plain positions.
        observed: ``(S, S)`` similarity of the permuted positions.
        restarts: FAQ runs from random doubly-stochastic starts (plus one from the barycentre);
            the best objective wins.
        seed: seeds the random starts.
        lean: two starts only, the best spectral one (of the :data:`LEAN_SCREEN` orientations
            nearest the template's) and one FAQ run from the barycentre, each polished by swaps
            (``restarts`` is ignored). For many independent problems of hundreds of positions
            (a map per piece position at 224x224/16), where the full search costs minutes each.

    Returns:
        int64 ``(S,)``: permuted position k holds plain position ``perm[k]``.
    """
    size = len(template)
    if size <= 1:
        return np.zeros(size, np.int64)
    if size <= EXHAUSTIVE:  # few positions: try every permutation
        perms = np.array(list(permutations(range(size))))
        values = [objective(template, observed, p) for p in perms]
        return perms[int(np.argmax(values))].astype(np.int64)
    template = (np.asarray(template, np.float64) + np.asarray(template, np.float64).T) / 2
    observed = (np.asarray(observed, np.float64) + np.asarray(observed, np.float64).T) / 2
    rng = np.random.default_rng(seed)
    if lean:
        starts = spectral_starts(template, observed, keep=1, screen=LEAN_SCREEN)
        restarts = 0
    else:
        starts = spectral_starts(template, observed)
    for start in range(restarts + 1):
        options = {"maximize": True, "rng": rng}
        if start:
            options["P0"] = "randomized"
        found = quadratic_assignment(template, observed, method="faq", options=options)
        # found.col_ind[u] = the observed position matched to template position u.
        perm = np.empty(size, np.int64)
        perm[found.col_ind] = np.arange(size)
        starts.append(perm)
    best, best_value = None, -np.inf
    for perm in starts:
        perm, value = refine_swaps(template, observed, perm)
        if value > best_value + 1e-9:
            best, best_value = perm, value
    return best


def chain_order(similarity: np.ndarray) -> np.ndarray:
    """Positions along a chain that joins the most similar pairs first (greedy edge matching
    for a Hamiltonian path: a pair is joined when both are still chain ends of different
    chains), the start for ordering lines on one axis. Returns the positions in chain order.
    """
    size = len(similarity)
    if size <= 2:
        return np.arange(size)
    s = (np.asarray(similarity, np.float64) + np.asarray(similarity, np.float64).T) / 2
    degree = np.zeros(size, np.int64)
    chain = np.arange(size)  # a chain's label: its first member's
    neighbours: list[list[int]] = [[] for _ in range(size)]
    first, second = np.triu_indices(size, 1)
    for k in np.argsort(-s[first, second], kind="stable"):
        a, b = int(first[k]), int(second[k])
        if degree[a] < 2 and degree[b] < 2 and chain[a] != chain[b]:
            neighbours[a].append(b)
            neighbours[b].append(a)
            degree[a] += 1
            degree[b] += 1
            chain[chain == chain[b]] = chain[a]
    order = [int(np.flatnonzero(degree < 2)[0])]
    while len(order) < size:
        order.append(next(n for n in neighbours[order[-1]] if len(order) < 2 or n != order[-2]))
    return np.array(order)


def match_lines(template: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """:func:`match_positions` for positions on a line (rows or columns of a picture): the
    quadratic assignment started from the chain of the most similar pairs
    (:func:`chain_order`) and from its reversal, each polished by swaps. A line and its
    reversal have (nearly) the same correlations: callers choose between them with another cue.

    Returns:
        int64 ``(S,)``: permuted line k holds plain line ``perm[k]``.
    """
    template = (np.asarray(template, np.float64) + np.asarray(template, np.float64).T) / 2
    observed = (np.asarray(observed, np.float64) + np.asarray(observed, np.float64).T) / 2
    chain = chain_order(observed)
    best, best_value = None, -np.inf
    for along in (chain, chain[::-1]):
        perm = np.empty(len(chain), np.int64)
        perm[along] = np.arange(len(chain))  # the j-th line of the chain is plain line j
        perm, value = refine_swaps(template, observed, perm)
        if value > best_value + 1e-9:
            best, best_value = perm, value
    return best


def _embedding(similarity: np.ndarray, dims: int) -> np.ndarray:
    """Laplacian-eigenmap coordinates ``(S, dims)`` of a similarity matrix (smooth directions)."""
    w = similarity - similarity.min()
    np.fill_diagonal(w, 0.0)
    scale = 1 / np.sqrt(w.sum(axis=1) + 1e-12)
    values, vectors = np.linalg.eigh(scale[:, None] * w * scale[None, :])
    return vectors[:, ::-1][:, 1:dims + 1] * scale[:, None]


def spectral_starts(template: np.ndarray, observed: np.ndarray, *, dims: int = 2, angles: int = 72,
                    keep: int = 4, screen: int | None = None) -> list[np.ndarray]:
    """Starting permutations from matching spectral embeddings of both matrices.

    The two leading non-trivial eigenvectors of a grid-like similarity span its 2-D layout, but
    only up to a rotation and reflection inside that plane: every rotation (``angles`` steps)
    and reflection is tried, points are matched with the Hungarian algorithm, and the ``keep``
    best by objective are returned. ``screen``: match only that many orientations, those whose
    points lie nearest the template's (mean distance to the nearest template point), which
    saves most of the Hungarian matchings of a large problem.
    """
    size = len(template)
    if size < dims + 2:
        return []
    t_emb, o_emb = _embedding(template, dims), _embedding(observed, dims)
    t_emb = t_emb / (np.linalg.norm(t_emb, axis=0, keepdims=True) + 1e-12)
    o_emb = o_emb / (np.linalg.norm(o_emb, axis=0, keepdims=True) + 1e-12)
    costs = []
    for theta in np.linspace(0, 2 * np.pi, angles, endpoint=False):
        rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        for mirror in (1, -1):
            turned = o_emb[:, :2] @ (rot * np.array([1, mirror])).T
            points = np.concatenate([turned, o_emb[:, 2:]], axis=1)
            costs.append(((points[:, None, :] - t_emb[None, :, :]) ** 2).sum(-1))
    if screen is not None:
        nearest = [float(cost.min(1).mean()) for cost in costs]
        costs = [costs[i] for i in np.argsort(nearest, kind="stable")[:screen]]
    found = []
    for cost in costs:
        rows, cols = linear_sum_assignment(cost)
        perm = np.empty(size, np.int64)
        perm[rows] = cols
        found.append((objective(template, observed, perm), perm))
    found.sort(key=lambda item: -item[0])
    return [perm for _, perm in found[:keep]]


def objective(template: np.ndarray, observed: np.ndarray, perm: np.ndarray) -> float:
    """``sum_{k,l} template[perm[k], perm[l]] * observed[k, l]``."""
    return float((template[np.ix_(perm, perm)] * observed).sum())


def refine_swaps(template: np.ndarray, observed: np.ndarray, perm: np.ndarray,
                 max_swaps: int = 10_000) -> tuple[np.ndarray, float]:
    """Best-improvement pairwise swaps of ``perm`` until none improves the objective.

    Both matrices must be symmetric. The gain of every swap is kept in one ``(S, S)`` table
    (Taillard's update for the quadratic assignment problem): after a swap of positions x and
    y, the gains of pairs apart from them change by ``-2 (a_u - a_v) (b_u - b_v)`` with
    ``a = A[:, y] - A[:, x]`` and ``b = O[:, x] - O[:, y]`` (one rank-4 product), and the rows
    of x and y are computed again; O(S^2) a swap instead of the O(S^3) of a fresh table.
    Returns the polished permutation and its objective.
    """
    perm = perm.copy()
    o = np.asarray(observed, np.float64)
    a = np.asarray(template, np.float64)[np.ix_(perm, perm)]  # a[k, l] = template[perm[k], perm[l]]
    size = len(perm)
    diag_o = np.diag(o).copy()
    m = a @ o
    diag_a, diag_m = np.diag(a).copy(), np.diag(m)
    # gain[x, y]: change of the objective when x and y trade template labels.
    cross = m + m.T - diag_m[:, None] - diag_m[None, :]
    own = (a.T - diag_a[:, None]) * (diag_o[:, None] - o) + (diag_a[None, :] - a) * (o - diag_o[None, :])
    gain = 2 * (cross - own) + (diag_a[None, :] - diag_a[:, None]) * (diag_o[:, None] - diag_o[None, :])
    np.fill_diagonal(gain, 0.0)
    own_terms = (a * o).sum(1)  # own_terms[k] = sum_l a[k, l] o[k, l]
    tolerance = 1e-12 * (1 + np.abs(gain).max())
    ones = np.ones(size)
    for _ in range(max_swaps):
        x, y = divmod(int(np.argmax(gain)), size)
        if gain[x, y] <= tolerance:
            break
        a_diff, o_diff = a[:, y] - a[:, x], o[:, x] - o[:, y]
        perm[[x, y]] = perm[[y, x]]
        a[[x, y]] = a[[y, x]]
        a[:, [x, y]] = a[:, [y, x]]
        both = a_diff * o_diff
        own_terms += both
        gain += np.stack([both, ones, a_diff, o_diff], 1) @ np.stack([-2 * ones, -2 * both, 2 * o_diff, 2 * a_diff])
        pair = [x, y]
        own_terms[pair] = (a[pair] * o[pair]).sum(1)
        diag_a = np.diag(a)
        a_by_o, o_by_a = a @ o[:, pair], o @ a[:, pair]
        for j, z in enumerate(pair):
            row = a_by_o[:, j] + o_by_a[:, j] - own_terms - own_terms[z]
            row -= (a[:, z] - a[z, z]) * (o[z, z] - o[:, z]) + (diag_a - a[z]) * (o[z] - diag_o)
            row = 2 * row + (diag_a - a[z, z]) * (o[z, z] - diag_o)
            row[z] = 0.0
            gain[z], gain[:, z] = row, row
    return perm, objective(template, observed, perm)
