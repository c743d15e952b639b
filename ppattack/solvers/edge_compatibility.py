"""Edge compatibility of jigsaw pieces: how well piece b continues piece a across a side.

Two measures, both as dissimilarities (lower = better fit), for every ordered pair at once:

- ``"mgc"``: Mahalanobis gradient compatibility (Gallagher, CVPR 2012). The gradients across
  a's side are modelled by the mean and covariance (over the pixels of the side, per colour
  channel pair) of the gradients just inside a; the gradient from a into b is scored by its
  Mahalanobis distance to that model, plus the same from b's side.
- ``"prediction"``: squared error of the linear prediction ``2 x_last - x_prev`` from each side
  (Pomeranz, Shemesh, Ben-Shahar 2011), in both directions.

The quadratic forms are expanded into matrix products, so a table over K pieces costs a few
``K x K`` matmuls and never a ``K x K x B x C`` tensor.

    >>> x = torch.rand(1, 3, 8, 8).cumsum(-1).cumsum(-2)          # a smooth image
    >>> pieces = split(x, 4)[0]                                    # 4 pieces, 2 x 2
    >>> table = dissimilarity(pieces)                              # (2, 4, 4)
    >>> int(table[0, 0].argmin()), int(table[1, 0].argmin())       # right of 0, below 0
    (1, 2)
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ParameterError
from .pieces import DIHEDRAL, INVERSE, OFFSETS, PRODUCT, ColourGroup, split, turn  # noqa: F401 (split: docstring)

KINDS = ("mgc", "prediction")
RIGHT, BELOW = 0, 1


def _side_model(edge: torch.Tensor, inner: torch.Tensor, kind: str, reg: float):
    """Prediction of the next column and its precision, from a side's last two columns.

    ``edge``/``inner``: ``(..., K, L, C)`` the outermost and next-inner pixel columns.
    Returns ``pred (..., K, L, C)`` and ``precision (..., K, C, C)``.
    """
    grad = edge - inner
    channels = edge.shape[-1]
    eye = torch.eye(channels, dtype=edge.dtype, device=edge.device)
    if kind == "prediction":
        return edge + grad, eye.expand(*edge.shape[:-2], channels, channels)
    mean = grad.mean(dim=-2, keepdim=True)
    centred = grad - mean
    cov = centred.transpose(-1, -2) @ centred / max(1, grad.shape[-2] - 1) + reg * eye
    return edge + mean, torch.linalg.inv(cov)


def _quadratic_table(pred: torch.Tensor, precision: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``out[..., a, b] = sum_l (target_b,l - pred_a,l)^T precision_a (target_b,l - pred_a,l)``."""
    batch, ka, kb = target.shape[:-3], pred.shape[-3], target.shape[-3]
    outer = torch.einsum("...blc,...bld->...bcd", target, target).reshape(*batch, kb, -1)
    term1 = precision.reshape(*batch, ka, -1) @ outer.transpose(-1, -2)
    q = pred @ precision  # (..., K, L, C): pred^T P per pixel (P symmetric)
    term2 = q.reshape(*batch, ka, -1) @ target.reshape(*batch, kb, -1).transpose(-1, -2)
    term3 = (q * pred).sum(dim=(-1, -2))
    return (term1 - 2 * term2 + term3[..., :, None]).clamp_min_(0)


def _right_table(pieces: torch.Tensor, others: torch.Tensor, kind: str, reg: float) -> torch.Tensor:
    cols = pieces.transpose(-3, -1)  # (..., K, W, H, C): columns of pixels, top to bottom
    other = others.transpose(-3, -1)
    a_pred, a_prec = _side_model(cols[..., -1, :, :], cols[..., -2, :, :], kind, reg)
    b_pred, b_prec = _side_model(other[..., 0, :, :], other[..., 1, :, :], kind, reg)
    forward = _quadratic_table(a_pred, a_prec, other[..., 0, :, :])     # [a, b]: a predicts b
    backward = _quadratic_table(b_pred, b_prec, cols[..., -1, :, :])    # [b, a]: b predicts a
    return forward + backward.transpose(-1, -2)


def dissimilarity(pieces: torch.Tensor, kind: str = "mgc", reg: float = 1.0,
                  others: torch.Tensor | None = None) -> torch.Tensor:
    """Dissimilarity of every ordered pair of pieces, for both relations.

    Args:
        pieces: ``(..., K, C, B, B)`` pieces (any real or uint8 dtype; values in 0..255);
            leading dims are batch dims (e.g. one puzzle per image).
        kind: ``"mgc"`` or ``"prediction"``.
        reg: added to the diagonal of every gradient covariance (pixel units squared); keeps
            flat pieces from getting an unbounded precision.
        others: ``(..., K', C, B, B)`` the pieces b is taken from (default ``pieces``), e.g.
            the same pieces recoloured.

    Returns:
        float64 ``(..., 2, K, K')``: ``[RIGHT, a, b]`` for b placed right of a, ``[BELOW, a, b]``
        for b placed below a. Without ``others`` the diagonal (a piece next to itself) is +inf.
    """
    if kind not in KINDS:
        raise ParameterError(f"unknown compatibility '{kind}': choose one of {', '.join(KINDS)}")
    x = pieces.double()
    y = x if others is None else others.double()
    table = torch.stack([_right_table(x, y, kind, reg),
                         _right_table(x.transpose(-1, -2), y.transpose(-1, -2), kind, reg)], dim=-3)
    if others is None:
        table.diagonal(dim1=-2, dim2=-1).fill_(float("inf"))
    return table


def dihedral_dissimilarity(pieces: torch.Tensor, kind: str = "mgc", reg: float = 1.0,
                           colour: ColourGroup | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`dissimilarity` over every dihedral turn (and colour transform) of every piece.

    Row ``k`` stands for piece ``k // 8`` turned by ``k % 8`` (:func:`ppattack.solvers.pieces.turn`).
    Turning a whole pair turns its relation, so only pairs whose first piece is upright are
    computed (in all four directions) and the rest is filled in by symmetry: a quarter of the
    work of the full table. With ``colour``, the second piece is also recoloured by every
    element of the group and the best is kept.

    Args:
        pieces: ``(N, C, B, B)``.

    Returns:
        ``table`` float64 ``(2, 8N, 8N)`` as :func:`dissimilarity`, with +inf between two turns
        of one piece; and ``relative`` int64 ``(2, 8N, 8N)``, the colour element of the second
        piece that achieves it (None without ``colour``).
    """
    n = len(pieces)
    x = pieces.double()
    turned = torch.stack([turn(x, t) for t in range(DIHEDRAL)], 1).flatten(0, 1)  # (8N, ...)
    elements = range(colour.size) if colour is not None else [0]
    # Turning the pair by h = ti^-1 makes a upright: b's turn becomes h*tj, the relation h(rel).
    directions = [(0, 1), (1, 0), (0, -1), (-1, 0)]
    direction_index = torch.tensor([[directions.index(tuple(int(v) for v in OFFSETS[INVERSE[ti]] @ np.array(delta)))
                                     for ti in range(DIHEDRAL)] for delta in ((0, 1), (1, 0))])[:, :, None]
    turn_index = torch.from_numpy(PRODUCT[INVERSE][:, :])[None]  # [ti, tj] -> h*tj
    best = None
    for e in elements:
        recoloured = colour.apply(turned, e) if colour is not None else turned
        forward = dissimilarity(x, kind, reg, others=recoloured)    # (2, N, 8N): a upright
        backward = dissimilarity(recoloured, kind, reg, others=x)   # (2, 8N, N): b upright
        # From an upright a, in the four directions: [i, j, u] with b = piece j turned by u.
        sides = {(0, 1): forward[0], (1, 0): forward[1], (0, -1): backward[0].T, (-1, 0): backward[1].T}
        source = torch.stack([v.reshape(n, n, DIHEDRAL).permute(2, 0, 1) for v in sides.values()])
        table = source[direction_index, turn_index]  # (2, 8, 8, N, N): [rel, ti, tj, i, j]
        table = table.permute(0, 3, 1, 4, 2).reshape(2, n * DIHEDRAL, n * DIHEDRAL)
        if best is None:
            best, relative = table, torch.zeros(table.shape, dtype=torch.int64)
        else:
            better = table < best
            best = torch.where(better, table, best)
            relative[better] = e
    same = torch.arange(n * DIHEDRAL) // DIHEDRAL
    best[:, same[:, None] == same[None, :]] = float("inf")
    return best.numpy(), (relative.numpy() if colour is not None else None)


CHUNK = 64  # images per step when tables are summed over many images (bounds memory)


def block_edge_cost(images: torch.Tensor, block: int) -> float:
    """Mean squared step across the borders between neighbouring blocks."""
    x = images.float()
    vertical = x[..., block::block] - x[..., block - 1:-1:block]
    horizontal = x[..., block::block, :] - x[..., block - 1:-1:block, :]
    return float((vertical ** 2).mean() + (horizontal ** 2).mean())


def summed_dissimilarity(images: torch.Tensor, block: int, kind: str, reg: float) -> np.ndarray:
    """Edge dissimilarity of every ordered pair of block positions, summed over images.

    Each image's table is divided by its median entry first, so that no single high-contrast
    image dominates. Returns float64 ``(2, K, K)`` (see :func:`ppattack.solvers.edge_compatibility.dissimilarity`).
    """
    total = None
    for start in range(0, len(images), CHUNK):
        table = dissimilarity(split(images[start:start + CHUNK], block), kind, reg)  # (n, 2, K, K)
        finite = torch.where(torch.isfinite(table), table, torch.nan).flatten(1)
        table = table / (finite.nanmedian(dim=1).values[:, None, None, None] + 1e-9)
        part = table.sum(dim=0)
        total = part if total is None else total + part
    return total.numpy()
