"""The map of units a shared-key cipher applies to every image: :class:`ComponentMap`.

``cipher_unit[i] = plain_unit[index[i]] XOR mask[i]`` over the units of ``bits`` bits of the
flattened ``(C, H, W)`` components, numbered plane by plane, low plane first. A cipher turns a
recovered map into its key material (:meth:`ppattack.cipher.Cipher.key_from_map`); how maps are
recovered is :mod:`ppattack.solvers.component_map`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .keys import Shape

UNIT_SIZES = (8, 4, 2, 1)  # bits of a unit, coarsest first
ROWS = 64  # images per step when a map is applied (bounds the memory of bit units at 224x224)


def split_units(flat: torch.Tensor, bits: int) -> torch.Tensor:
    """uint8 ``(N, n)`` components -> uint8 ``(N, (8 // bits) * n)`` units, low plane first."""
    if bits == 8:
        return flat
    low = (1 << bits) - 1
    return torch.cat([(flat >> (bits * k)) & low for k in range(8 // bits)], dim=1)


def join_units(units: torch.Tensor, bits: int) -> torch.Tensor:
    """Inverse of :func:`split_units`."""
    if bits == 8:
        return units
    planes = units.view(units.shape[0], 8 // bits, -1)
    out = planes[:, 0].clone()
    for k in range(1, 8 // bits):
        out |= planes[:, k] << (bits * k)
    return out


@dataclass(frozen=True)
class ComponentMap:
    """``cipher_unit[i] = plain_unit[index[i]] ^ mask[i]`` over units of ``bits`` bits.

    ``ambiguous``: fraction of units whose source the evidence could not single out (resolved
    arbitrarily; 0 for a map from chosen images); ``tied`` marks those units (None: none).
    """

    bits: int
    index: np.ndarray
    mask: np.ndarray
    ambiguous: float = 0.0
    tied: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def signed(cls, index: np.ndarray, flip: np.ndarray, ambiguous: float = 0.0) -> "ComponentMap":
        """A byte map: component q comes from ``index[q]``, inverted (255 - x) where ``flip[q]``."""
        return cls(8, np.asarray(index, np.int64), (np.asarray(flip) != 0).astype(np.uint8) * 255, ambiguous)

    @property
    def flip(self) -> np.ndarray:
        """0/1 per unit: the unit is inverted (for byte maps: negative-positive)."""
        return (self.mask != 0).astype(np.int64)

    def decrypt(self, ciphertexts: torch.Tensor, shape: Shape | None = None) -> torch.Tensor:
        """Invert the map on a uint8 batch; the result has the plain ``shape`` (default: the
        ciphertexts' own)."""
        return self._move(ciphertexts, shape, inverse=True)

    def encrypt(self, images: torch.Tensor, shape: Shape | None = None) -> torch.Tensor:
        """Apply the map (what the cipher does) to a uint8 batch."""
        return self._move(images, shape, inverse=False)

    def _move(self, x: torch.Tensor, shape: Shape | None, inverse: bool) -> torch.Tensor:
        n = len(x)
        shape = tuple(x.shape[1:]) if shape is None else tuple(shape)
        flat = x.reshape(n, -1)
        index = torch.from_numpy(self.index).to(flat.device)
        mask = torch.from_numpy(self.mask.astype(np.uint8)).to(flat.device)
        out = []
        for start in range(0, n, ROWS):  # chunks bound the memory of bit units
            units = split_units(flat[start:start + ROWS], self.bits)
            if inverse:
                moved = torch.empty_like(units)
                moved[:, index] = units ^ mask
            else:
                moved = units[:, index] ^ mask
            out.append(join_units(moved, self.bits))
        return torch.cat(out).view(n, *shape) if out else flat.new_zeros((0, *shape))

    def coarsen(self) -> "ComponentMap":
        """The same map over the largest units it moves whole, bits in order."""
        for bits in UNIT_SIZES:
            if bits <= self.bits:
                return self
            found = self._as_units(bits)
            if found is not None:
                return found
        return self

    def _as_units(self, bits: int) -> "ComponentMap | None":
        ratio = bits // self.bits
        n = self.index.size * self.bits // 8  # components
        per = 8 // self.bits  # units of this map per component
        unit = np.arange(self.index.size)
        plane, comp = np.divmod(unit, n)
        src_plane, src_comp = np.divmod(self.index, n)
        # Units inside one coarse unit: planes ratio*K .. ratio*K + ratio - 1 of one component.
        coarse_plane, inner = np.divmod(plane, ratio)
        src_coarse, src_inner = np.divmod(src_plane, ratio)
        if per % ratio or not (src_inner == inner).all():
            return None
        first = inner == 0
        head = (coarse_plane * n + comp)[first]
        source = (src_coarse * n + src_comp)
        width = 8 // bits
        source_of = np.empty(width * n, np.int64)
        source_of[head] = source[first]
        coarse = coarse_plane * n + comp
        if not (source == source_of[coarse]).all():
            return None
        mask = np.zeros(width * n, np.int64)
        np.add.at(mask, coarse, self.mask.astype(np.int64) << (self.bits * inner))
        return ComponentMap(bits, source_of, mask.astype(np.uint8), self.ambiguous)

    def as_bits(self) -> "ComponentMap":
        """The same map bit by bit."""
        if self.bits == 1:
            return self
        n = self.index.size * self.bits // 8
        plane, comp = np.divmod(np.arange(self.index.size), n)
        src_plane, src_comp = np.divmod(self.index, n)
        inner = np.arange(self.bits)[:, None]
        index = ((src_plane * self.bits)[None] + inner) * n + src_comp[None]
        where = ((plane * self.bits)[None] + inner) * n + comp[None]
        out_index = np.empty(8 * n, np.int64)
        out_mask = np.empty(8 * n, np.uint8)
        out_index[where] = index
        out_mask[where] = (self.mask[None].astype(np.int64) >> inner) & 1
        return ComponentMap(1, out_index, out_mask, self.ambiguous)
