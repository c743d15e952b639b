"""Pieces: square tiles of an image, and the two groups of transforms that act on one.

Jigsaw-style attacks cut images into the cipher's ``B x B`` blocks (row-major, as in
docs/ciphers.md, "Conventions"), work on the pieces, and put them back. A piece may be

- turned by one of the 8 elements of the dihedral group of the square, numbered as etc's block
  transform: ``t = 4 * f + r`` means ``torch.rot90(k=r)`` on the (H, W) dims
  (counter-clockwise), then a left-right flip if ``f = 1``;
- recoloured by an element of the colour group (:class:`ColourGroup`): a permutation of the
  channels, then optionally the negative-positive inversion ``255 - x`` of every component.

The two commute (one moves pixels, the other acts on each pixel's values).

    >>> x = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4)
    >>> bool((assemble(split(x, 2), 2, 2) == x).all())
    True
"""
from __future__ import annotations

from itertools import permutations

import numpy as np
import torch

#: Number of elements of the dihedral group of the square.
DIHEDRAL = 8


def split(images: torch.Tensor, block: int) -> torch.Tensor:
    """Cut ``(N, C, H, W)`` images into pieces ``(N, R*Q, C, block, block)``, row-major."""
    n, c, h, w = images.shape
    rows, cols = h // block, w // block
    pieces = images.reshape(n, c, rows, block, cols, block).permute(0, 2, 4, 1, 3, 5)
    return pieces.reshape(n, rows * cols, c, block, block)


def assemble(pieces: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Inverse of :func:`split`: ``(N, R*Q, C, B, B)`` pieces -> ``(N, C, R*B, Q*B)`` images."""
    n, _, c, b, _ = pieces.shape
    grid = pieces.reshape(n, rows, cols, c, b, b).permute(0, 3, 1, 4, 2, 5)
    return grid.reshape(n, c, rows * b, cols * b)


def turn(pieces: torch.Tensor, t: int) -> torch.Tensor:
    """Apply dihedral element ``t`` to the last two dims (rot90 by ``t % 4``, then flip if ``t >= 4``)."""
    out = torch.rot90(pieces, t % 4, dims=(-2, -1))
    return out.flip(-1) if t >= 4 else out


def _offset_matrices() -> np.ndarray:
    """(8, 2, 2) int matrices: how element t moves a (row, col) offset between two cells."""
    rot = np.array([[0, -1], [1, 0]])  # rot90 CCW: (dr, dc) -> (-dc, dr)
    flip = np.array([[1, 0], [0, -1]])  # left-right flip: (dr, dc) -> (dr, -dc)
    mats = []
    for t in range(DIHEDRAL):
        m = np.linalg.matrix_power(rot, t % 4)
        mats.append(flip @ m if t >= 4 else m)
    return np.stack(mats)


OFFSETS = _offset_matrices()


def _table() -> tuple[np.ndarray, np.ndarray]:
    keys = {tuple(m.ravel()): t for t, m in enumerate(OFFSETS)}
    product = np.empty((DIHEDRAL, DIHEDRAL), np.int64)
    for a in range(DIHEDRAL):
        for b in range(DIHEDRAL):
            product[a, b] = keys[tuple((OFFSETS[a] @ OFFSETS[b]).ravel())]
    inverse = np.array([int(np.flatnonzero(product[a] == 0)[0]) for a in range(DIHEDRAL)])
    return product, inverse


#: ``PRODUCT[a, b]``: the element "first b, then a"; ``INVERSE[a]``: its inverse.
PRODUCT, INVERSE = _table()


def square_symmetries(side: int) -> np.ndarray:
    """(8, side*side) position maps: element t sends row-major position k to ``maps[t, k]``."""
    grid = torch.arange(side * side).view(side, side)
    maps = np.empty((DIHEDRAL, side * side), np.int64)
    for t in range(DIHEDRAL):
        turned = turn(grid, t)  # turned[p] = k: position k lands at p
        maps[t, turned.reshape(-1).numpy()] = np.arange(side * side)
    return maps


class ColourGroup:
    """Channel permutations (``C!``) times negative-positive (2) of a C-channel piece.

    Element ``e = negative * C! + q``: output channel c = input channel ``perms[q][c]``, then
    every component becomes ``255 - x`` if ``negative``. For C = 3 the permutations are in the
    order of docs/ciphers.md, "Colour table". ``product[a, b]`` is "first b, then a".
    """

    def __init__(self, channels: int):
        self.channels = channels
        self.perms = np.array(sorted(permutations(range(channels))), np.int64)
        self.size = 2 * len(self.perms)
        self.product = np.empty((self.size, self.size), np.int64)
        index = {tuple(p): q for q, p in enumerate(self.perms)}
        for a in range(self.size):
            na, qa = divmod(a, len(self.perms))
            for b in range(self.size):
                nb, qb = divmod(b, len(self.perms))
                composite = index[tuple(self.perms[qb][self.perms[qa]])]
                self.product[a, b] = (na ^ nb) * len(self.perms) + composite
        self.inverse = np.array([int(np.flatnonzero(self.product[a] == 0)[0]) for a in range(self.size)])

    def apply(self, pieces: torch.Tensor, e: int) -> torch.Tensor:
        """Recolour ``(..., C, B, B)`` pieces (values 0..255, any dtype) by element ``e``."""
        negative, q = divmod(int(e), len(self.perms))
        out = pieces.index_select(-3, torch.as_tensor(self.perms[q], device=pieces.device))
        return 255 - out if negative else out
