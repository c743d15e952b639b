"""Placement: put jigsaw pieces on a grid of known size from a pairwise dissimilarity table.

Tree-based reassembly after Gallagher (CVPR 2012): candidate edges (piece a, piece b, side)
are taken in order of confidence (the dissimilarity divided by the second-best alternative, in
both directions), Kruskal-style; an edge joins two clusters of pieces only when the joined
cluster has no two pieces on one cell and still fits the frame. The largest cluster is then
placed in the frame, every other cluster of at least four pieces is placed whole where it fits
best, and the empty cells are filled greedily, most-constrained cell first, with the unplaced
piece that best fits the pieces already around it.

Pieces may carry a state: with ``states=8`` every piece comes in the 8 dihedral turns of
:mod:`ppattack.solvers.pieces` (row ``k`` of the table is piece ``k // 8`` turned by ``k % 8``), and
joining two clusters turns one of them as a whole. Pieces may also carry a colour state
(:class:`ppattack.solvers.pieces.ColourGroup`): the table is then the best over relative colour
elements, ``relative[rel, a, b]`` says which (b recoloured by it, a as it is), and joining two
clusters recolours one of them. The solution is defined up to a turn and a recolouring of the
whole picture, which the caller settles (e.g. with natural-image statistics).

    >>> import torch
    >>> from ppattack.solvers.edge_compatibility import dissimilarity
    >>> from ppattack.solvers.pieces import split
    >>> x = torch.rand(1, 3, 12, 12).cumsum(-1).cumsum(-2) * 3
    >>> order = torch.randperm(9)
    >>> solved = place(dissimilarity(split(x, 4)[0][order]).numpy(), 3, 3)
    >>> bool((solved.cells == order.numpy()).all())
    True
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .pieces import INVERSE, OFFSETS, PRODUCT

RIGHT, BELOW = 0, 1
MIN_CLUSTER = 4  # smaller clusters than this are filled piece by piece
_DELTA = {RIGHT: np.array([0, 1]), BELOW: np.array([1, 0])}


@dataclass(frozen=True)
class Placement:
    """Where each piece went: ``cells[i]`` (row-major cell index), ``states[i]`` (turn) and
    ``colours[i]`` (colour element; 0 without colour states).

    ``largest_cluster``: pieces in the largest cluster the tree phase built (before filling).
    """

    cells: np.ndarray
    states: np.ndarray
    largest_cluster: int
    colours: np.ndarray | None = None


class _Cluster:
    """Pieces of one cluster: piece -> (row, col, turn, colour) in the cluster's own frame."""

    def __init__(self, piece: int):
        self.where = {piece: (0, 0, 0, 0)}
        self.occupied = {(0, 0): piece}

    def bbox(self, cells: list[tuple[int, int]]) -> tuple[int, int]:
        rows = [r for r, _ in cells]
        cols = [c for _, c in cells]
        return max(rows) - min(rows) + 1, max(cols) - min(cols) + 1


def _fits(size: tuple[int, int], rows: int, cols: int, turnable: bool) -> bool:
    h, w = size
    return (h <= rows and w <= cols) or (turnable and h <= cols and w <= rows)


def _candidate_edges(table: np.ndarray, states: int, top: int) -> list[tuple[float, int, int, int]]:
    """(confidence, relation, a, b) for each side's few best partners, best first."""
    _, k, _ = table.shape
    piece = np.arange(k) // states
    same = piece[:, None] == piece[None, :]
    edges = []
    for rel in (RIGHT, BELOW):
        d = np.where(same, np.inf, table[rel])
        finite_max = np.nanmax(np.where(np.isfinite(d), d, np.nan)) if np.isfinite(d).any() else 1.0
        d = np.where(np.isfinite(d), d, finite_max * 10 + 1)
        second_row = np.partition(d, 1, axis=1)[:, 1] if k > 2 else d.min(axis=1)
        second_col = np.partition(d, 1, axis=0)[1] if k > 2 else d.min(axis=0)
        eps = 1e-9 * (np.median(d) + 1e-9)
        ratio = np.maximum(d / (second_row[:, None] + eps), d / (second_col[None, :] + eps))
        best_b = np.argsort(ratio, axis=1)[:, :top]
        best_a = np.argsort(ratio, axis=0)[:top].T
        a_idx = np.concatenate([np.repeat(np.arange(k), best_b.shape[1]), best_a.ravel()])
        b_idx = np.concatenate([best_b.ravel(), np.repeat(np.arange(k), best_a.shape[1])])
        pairs = np.unique(np.stack([a_idx, b_idx], 1), axis=0)
        pairs = pairs[piece[pairs[:, 0]] != piece[pairs[:, 1]]]
        conf = ratio[pairs[:, 0], pairs[:, 1]] + d[pairs[:, 0], pairs[:, 1]] * 1e-12
        edges += [(float(c), rel, int(a), int(b)) for c, (a, b) in zip(conf, pairs)]
    edges.sort()
    return edges


def _tree(table: np.ndarray, n: int, states: int, rows: int, cols: int, top: int,
          relative: np.ndarray | None, colour_product: np.ndarray, colour_inverse: np.ndarray) -> _Cluster:
    """Kruskal over confident edges; returns every cluster, largest first."""
    owner = {p: _Cluster(p) for p in range(n)}
    turnable = states > 1
    for _, rel, a, b in _candidate_edges(table, states, top):
        i, ti = divmod(a, states)
        j, tj = divmod(b, states)
        A, B = owner[i], owner[j]
        if A is B:
            continue
        ri, ci, ai, qi = A.where[i]
        rj, cj, bj, qj = B.where[j]
        h = PRODUCT[ai, INVERSE[ti]]  # turn the edge into A's frame
        target = np.array([ri, ci]) + OFFSETS[h] @ _DELTA[rel]
        g = PRODUCT[PRODUCT[h, tj], INVERSE[bj]]  # turn applied to all of B
        r = 0 if relative is None else int(relative[rel, a, b])
        recolour = colour_product[colour_product[qi, r], colour_inverse[qj]]  # applied to all of B
        moved = {}
        for m, (rm, cm, sm, qm) in B.where.items():
            row, col = target + OFFSETS[g] @ np.array([rm - rj, cm - cj])
            if (int(row), int(col)) in A.occupied:
                break
            moved[m] = (int(row), int(col), int(PRODUCT[g, sm]), int(colour_product[recolour, qm]))
        else:
            cells = list(A.occupied) + [(row, col) for row, col, _, _ in moved.values()]
            if not _fits(A.bbox(cells), rows, cols, turnable):
                continue
            for m, where in moved.items():
                A.where[m] = where
                A.occupied[where[:2]] = m
                owner[m] = A
    return sorted({id(c): c for c in owner.values()}.values(), key=lambda c: -len(c.where))


def _add_clusters(seed: dict[int, tuple[int, int, int, int]], clusters: list[_Cluster], table: np.ndarray,
                  states: int, rows: int, cols: int) -> dict[int, tuple[int, int, int, int]]:
    """Place further clusters of at least :data:`MIN_CLUSTER` pieces whole, each where (and,
    with turns, as) it fits best against the pieces already placed, in empty cells only.

    Pieces that no edge joins (e.g. side-by-side image planes) keep the shape the tree gave
    them instead of being filled in one by one."""
    seed = dict(seed)
    occupied = {(r, c): m * states + s for m, (r, c, s, _) in seed.items()}
    big = np.nanmax(np.where(np.isfinite(table), table, np.nan)) * 10 + 1
    d = np.where(np.isfinite(table), table, big)
    for cluster in clusters:
        if len(cluster.where) < MIN_CLUSTER or any(m in seed for m in cluster.where):
            continue
        best = None
        for g in range(8 if states > 1 else 1):
            turned = {m: (*(OFFSETS[g] @ np.array([r, c])), int(PRODUCT[g, s]), q)
                      for m, (r, c, s, q) in cluster.where.items()}
            r0 = min(v[0] for v in turned.values())
            c0 = min(v[1] for v in turned.values())
            shape = {m: (int(r - r0), int(c - c0), s, q) for m, (r, c, s, q) in turned.items()}
            h = max(v[0] for v in shape.values()) + 1
            w = max(v[1] for v in shape.values()) + 1
            for dr in range(rows - h + 1):
                for dc in range(cols - w + 1):
                    cells = {(r + dr, c + dc): m * states + s for m, (r, c, s, _) in shape.items()}
                    if any(cell in occupied for cell in cells):
                        continue
                    cost, count = 0.0, 0
                    for (r, c), a in cells.items():
                        for (nr, nc), rel, forward in (((r, c + 1), RIGHT, True), ((r, c - 1), RIGHT, False),
                                                       ((r + 1, c), BELOW, True), ((r - 1, c), BELOW, False)):
                            b = occupied.get((nr, nc))
                            if b is not None:
                                cost += d[rel, a, b] if forward else d[rel, b, a]
                                count += 1
                    value = cost / count if count else np.inf
                    if best is None or value < best[0]:
                        best = (value, dr, dc, shape)
        if best is None:
            continue
        _, dr, dc, shape = best
        for m, (r, c, s, q) in shape.items():
            seed[m] = (r + dr, c + dc, s, q)
            occupied[(r + dr, c + dc)] = m * states + s
    return seed


def _orient(cluster: _Cluster, rows: int, cols: int) -> dict[int, tuple[int, int, int, int]]:
    """The cluster in frame orientation with its top-left cell at (0, 0)."""
    where = cluster.where
    h, w = cluster.bbox(list(cluster.occupied))
    if not (h <= rows and w <= cols):  # only fits turned by 90 degrees
        where = {m: (-c, r, int(PRODUCT[1, s]), q) for m, (r, c, s, q) in where.items()}
    r0 = min(v[0] for v in where.values())
    c0 = min(v[1] for v in where.values())
    return {m: (r - r0, c - c0, s, q) for m, (r, c, s, q) in where.items()}


def _fill(table: np.ndarray, n: int, states: int, rows: int, cols: int,
          seed: dict[int, tuple[int, int, int, int]], relative: np.ndarray | None,
          colour_product: np.ndarray, colour_inverse: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Greedy fill of the empty cells around ``seed``; returns cells, turns, colours, cost."""
    grid = -np.ones((rows, cols), np.int64)  # row index into the table (piece * states + state)
    colour = np.zeros((rows, cols), np.int64)
    for m, (r, c, s, q) in seed.items():
        grid[r, c] = m * states + s
        colour[r, c] = q
    placed = np.zeros(n, bool)
    placed[list(seed)] = True
    k = n * states
    big = np.nanmax(np.where(np.isfinite(table), table, np.nan)) * 10 + 1
    d = np.where(np.isfinite(table), table, big)
    candidate_ok = np.repeat(~placed, states)
    total = 0.0
    sides = ((0, -1, RIGHT, True), (0, 1, RIGHT, False), (-1, 0, BELOW, True), (1, 0, BELOW, False))
    while not placed.all():
        empty = np.argwhere(grid < 0)
        cost = np.zeros((len(empty), k))
        count = np.zeros(len(empty))
        for dr, dc, rel, forward in sides:
            r, c = empty[:, 0] + dr, empty[:, 1] + dc
            inside = (r >= 0) & (r < rows) & (c >= 0) & (c < cols)
            nb = np.full(len(empty), -1)
            nb[inside] = grid[r[inside], c[inside]]
            has = nb >= 0
            if has.any():
                cost[has] += d[rel][nb[has]] if forward else d[rel][:, nb[has]].T
                count[has] += 1
        mean = np.where(candidate_ok[None, :], cost / np.maximum(count, 1)[:, None], np.inf)
        mean[count != count.max()] = np.inf
        e, cand = np.unravel_index(np.argmin(mean), mean.shape)
        r0, c0 = empty[e]
        total += float(cost[e, cand])
        grid[r0, c0] = cand
        if relative is not None:  # colour from the best-fitting placed neighbour
            options = []
            for dr, dc, rel, forward in sides:
                r, c = r0 + dr, c0 + dc
                if 0 <= r < rows and 0 <= c < cols and grid[r, c] >= 0 and (r, c) != (r0, c0):
                    nb = grid[r, c]
                    if forward:  # neighbour is a, the new piece is b
                        q = colour_product[colour[r, c], relative[rel, nb, cand]]
                        options.append((d[rel, nb, cand], q))
                    else:  # the new piece is a, the neighbour is b
                        q = colour_product[colour[r, c], colour_inverse[relative[rel, cand, nb]]]
                        options.append((d[rel, cand, nb], q))
            colour[r0, c0] = min(options)[1] if options else 0
        placed[cand // states] = True
        candidate_ok[(cand // states) * states:(cand // states + 1) * states] = False
    cells = np.empty(n, np.int64)
    out_states = np.empty(n, np.int64)
    out_colours = np.empty(n, np.int64)
    flat = grid.ravel()
    cells[flat // states] = np.arange(rows * cols)
    out_states[flat // states] = flat % states
    out_colours[flat // states] = colour.ravel()
    return cells, out_states, out_colours, total


def place(table: np.ndarray, rows: int, cols: int, *, states: int = 1, top: int = 3,
          max_offsets: int = 32, relative: np.ndarray | None = None,
          colour_product: np.ndarray | None = None) -> Placement:
    """Solve a jigsaw puzzle of ``rows x cols`` pieces from its dissimilarity table.

    Args:
        table: ``(2, K, K)`` dissimilarities (``[0, a, b]``: b right of a; ``[1, a, b]``: b
            below a) with ``K = rows * cols * states`` (:func:`ppattack.solvers.edge_compatibility.dissimilarity`).
        rows, cols: the frame in pieces.
        states: 1 (pieces are upright) or 8 (any dihedral turn; see the module docstring).
        top: candidate partners per piece and side considered by the tree phase.
        max_offsets: when the largest cluster is smaller than the frame, at most this many of
            its positions in the frame are tried (the one whose fill costs least wins).
        relative: ``(2, K, K)`` colour elements that achieve ``table`` (colour states), or None.
        colour_product: the colour group's ``product`` table (with ``relative``).

    Returns:
        :class:`Placement`: piece i goes to cell ``cells[i]`` in turn ``states[i]`` and colour
        ``colours[i]``.
    """
    n = rows * cols
    if table.shape != (2, n * states, n * states):
        raise ValueError(f"table has shape {table.shape}, expected (2, {n * states}, {n * states})")
    if relative is None:
        colour_product = np.zeros((1, 1), np.int64)
    colour_inverse = np.array([int(np.flatnonzero(row == 0)[0]) for row in colour_product])
    if n == 1:
        return Placement(np.zeros(1, np.int64), np.zeros(1, np.int64), 1, np.zeros(1, np.int64))
    clusters = _tree(table, n, states, rows, cols, top, relative, colour_product, colour_inverse)
    largest = _orient(clusters[0], rows, cols)
    h = max(v[0] for v in largest.values()) + 1
    w = max(v[1] for v in largest.values()) + 1
    offsets = [(dr, dc) for dr in range(rows - h + 1) for dc in range(cols - w + 1)]
    if len(offsets) > max_offsets:
        offsets = [offsets[i] for i in np.linspace(0, len(offsets) - 1, max_offsets).round().astype(int)]
    best = None
    for dr, dc in offsets:
        seed = {m: (r + dr, c + dc, s, q) for m, (r, c, s, q) in largest.items()}
        seed = _add_clusters(seed, clusters[1:], table, states, rows, cols)
        found = _fill(table, n, states, rows, cols, seed, relative, colour_product, colour_inverse)
        if best is None or found[3] < best[3]:
            best = found
    return Placement(best[0], best[1], len(largest), best[2])
