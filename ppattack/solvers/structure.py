"""A cipher's structure, learned from keys of the attacker's own (the algorithm is public).

Generic key recovery (keyrec) attacks any shared-key cipher whose keyed part is a map of bit
units (:mod:`ppattack.solvers.component_map`). It does not know the cipher: it encrypts chosen images
under keys it draws itself, reads each key's map, and records what every key has in common:

- ``bits``: the unit size (8: bytes, 4: nibbles, 1: bits) and ``masks``, the unit masks used;
- ``block``: the side of the pieces the map keeps whole (the cipher's declared ``block_size``
  when it has one, else the smallest side that every key keeps whole);
- ``moves``: whether pieces change position (block scrambling);
- ``shared``: whether one in-piece map serves every piece (else each position has its own);
- ``sources_shared``: whether every piece moves its units alike, its masks aside (true when
  ``shared``; a cipher that only inverts each position's units by a key of their own has it);
- ``own_masks``: the in-piece units whose mask differs between pieces under some own key (the
  units a piece inverts by a key of its own);
- ``pixels_whole``: whether every in-piece map moves whole pixels (all channels, all planes,
  in order), so pixels can be placed as units;
- ``planes_fixed``: whether units keep their plane (a low nibble stays a low nibble);
- ``classes``: a label per in-piece unit: units that no key ever moves out of their class
  (connected components of "unit a was sent to position b" over many own keys; proposed: the
  channel and quarter of the block). A solution that moves a unit out of its class is no key
  of the cipher, which settles symmetries that statistics leave open (e.g. a mirror);
- ``states``: when pieces have maps of their own, but drawn from a small set (etc: 8 turns x 2
  inversions x 6 channel orders), one in-piece map of each class of that set up to turns of
  the piece (``(S, L)`` sources and masks), listed from own keys until no key adds a class;
  None when the set is large (ele: a random nibble permutation per position);
- ``lines``: when every key moves pieces as whole lines (cipher piece (r, c) holds plain piece
  (R[r], C[c]) for a permutation R of the piece rows and C of the piece columns; a row or
  column shuffle), whether some key permutes the rows and whether some key permutes the
  columns; None when a key moves pieces otherwise (or none moves).

Units of a piece are numbered ``((plane * C + channel) * B + row) * B + col`` (:func:`piece_units`).

    >>> import ppattack
    >>> probe(ppattack.create_cipher("block-shuffle", block_size=4), (3, 8, 8))
    Structure(bits=8, masks=(0,), block=4, moves=False, shared=True, sources_shared=True, pixels_whole=False, planes_fixed=True)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..cipher import Cipher
from .component_map import from_oracle, unit_bits_of
from ..errors import ParameterError
from ..keys import Shape
from .pieces import DIHEDRAL, turn
from ..unit_map import ComponentMap, join_units, split_units

PROBE_KEYS = 3  # keys of the attacker's own; each costs a few encryptions of chosen images
CLASS_KEYS = 8  # keys whose in-piece maps are joined into classes
STATE_KEYS = 32  # at most this many keys are drawn to list a cipher's in-piece maps
MAX_STATES = 256  # more distinct in-piece maps (up to turns) than this: a map per position


@dataclass(frozen=True)
class Structure:
    """What every key of a cipher does, seen piece by piece (see the module docstring)."""

    bits: int
    masks: tuple[int, ...]
    block: int
    moves: bool
    shared: bool
    sources_shared: bool
    pixels_whole: bool
    planes_fixed: bool
    classes: np.ndarray = field(repr=False, compare=False)
    own_masks: np.ndarray = field(repr=False, compare=False)
    states: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)
    lines: tuple[bool, bool] | None = field(default=None, repr=False, compare=False)

    def allows(self, src: np.ndarray) -> bool:
        """Whether an in-piece map (cipher unit l holds plain unit ``src[l]``) keeps every unit
        in its class."""
        return bool((self.classes[np.arange(len(src))] == self.classes[src]).all())

    @property
    def planes(self) -> int:
        return 8 // self.bits

    @property
    def identity(self) -> bool:
        """No key of the attacker's own moved a piece or a unit or flipped a bit: the keyed part
        leaves every image as it is (plain, the positive control), so there is nothing to solve."""
        return not self.moves and self.masks == (0,) and len(np.unique(self.classes)) == len(self.classes)


def piece_units(images: torch.Tensor, block: int, bits: int) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> ``(N, P, L)``: the units of every ``block x block`` piece
    (row-major pieces; ``L = planes * C * block^2`` units in the order of the module docstring)."""
    n, c, h, w = images.shape
    units = split_units(images.reshape(n, -1), bits).view(n, 8 // bits, c, h // block, block, w // block, block)
    return units.permute(0, 3, 5, 1, 2, 4, 6).reshape(n, (h // block) * (w // block), -1)


def assemble_units(units: torch.Tensor, shape: Shape, block: int, bits: int) -> torch.Tensor:
    """Inverse of :func:`piece_units`: ``(N, P, L)`` -> uint8 ``(N, C, H, W)``."""
    c, h, w = shape
    n = units.shape[0]
    grid = units.reshape(n, h // block, w // block, 8 // bits, c, block, block).permute(0, 3, 4, 1, 5, 2, 6)
    return join_units(grid.reshape(n, -1), bits).view(n, c, h, w)


def unit_layout(shape: Shape, block: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """For every unit of the flattened map numbering (plane-major, :mod:`ppattack.solvers.component_map`):
    its piece and its index inside the piece."""
    c, h, w = shape
    planes = 8 // bits
    plane, comp = np.divmod(np.arange(planes * c * h * w), c * h * w)
    channel, pixel = np.divmod(comp, h * w)
    row, col = np.divmod(pixel, w)
    piece = (row // block) * (w // block) + col // block
    local = ((plane * c + channel) * block + row % block) * block + col % block
    return piece, local


def local_maps(found: ComponentMap, shape: Shape, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A map seen piece by piece: ``(source piece (P,), source local unit (P, L), mask (P, L))``
    for every cipher piece; None when some cipher piece draws on several plain pieces."""
    piece, local = unit_layout(shape, block, found.bits)
    pieces, length = piece.max() + 1, local.max() + 1
    src_piece, src_local = piece[found.index], local[found.index]
    grid_piece = np.empty((pieces, length), np.int64)
    grid_local = np.empty((pieces, length), np.int64)
    grid_mask = np.empty((pieces, length), np.int64)
    grid_piece[piece, local] = src_piece
    grid_local[piece, local] = src_local
    grid_mask[piece, local] = found.mask
    if not (grid_piece == grid_piece[:, :1]).all():
        return None
    return grid_piece[:, 0], grid_local, grid_mask


def _moves_pixels_whole(src_local: np.ndarray, channels: int, block: int, planes: int) -> bool:
    """Every in-piece map sends unit (plane, channel, pixel) to (plane, channel, pixel')."""
    lay = src_local.reshape(-1, planes, channels, block * block)
    plane_channel = np.arange(planes * channels).reshape(planes, channels, 1) * block * block
    pixel = lay - plane_channel[None]
    return bool(((pixel >= 0) & (pixel < block * block)).all() and (pixel == pixel[:, :1, :1]).all())


def _state_classes(views: list, channels: int, block: int, planes: int) -> tuple[np.ndarray, np.ndarray] | None:
    """One in-piece map per class (up to turns of the piece) of the maps in ``views``; None
    when there are more than :data:`MAX_STATES` classes."""
    grid = torch.arange(planes * channels * block * block).view(planes, channels, block, block)
    relabel = []
    for t in range(DIHEDRAL if block > 1 else 1):
        moved = turn(grid, t).reshape(-1).numpy()
        g = np.empty_like(moved)
        g[moved] = np.arange(len(moved))
        relabel.append(g)
    found: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    for view in views:
        for src, mask in zip(view[1], view[2]):
            canonical = min(np.concatenate([g[src], mask]).tobytes() for g in relabel)
            found.setdefault(canonical, (src, mask))
            if len(found) > MAX_STATES:
                return None
    return (np.stack([v[0] for v in found.values()]), np.stack([v[1] for v in found.values()]))


def _line_moves(placements: list[np.ndarray], rows: int, cols: int) -> tuple[bool, bool] | None:
    """Whether the pieces' placements (source piece per cipher piece, ``(rows * cols,)`` each)
    move whole lines: ``(rows permuted, columns permuted)`` when every placement is a
    permutation of the piece rows times one of the piece columns and some placement moves a
    piece; None otherwise."""
    rows_move = cols_move = False
    for src in placements:
        src_row, src_col = np.divmod(src.reshape(rows, cols), cols)
        if not ((src_row == src_row[:, :1]).all() and (src_col == src_col[:1, :]).all()):
            return None
        rows_move |= bool((src_row[:, 0] != np.arange(rows)).any())
        cols_move |= bool((src_col[0] != np.arange(cols)).any())
    return (rows_move, cols_move) if rows_move or cols_move else None


def _classes(src_local: np.ndarray) -> np.ndarray:
    """Connected components of the graph joining every unit l to ``src_local[k, l]`` (any k)."""
    length = src_local.shape[1]
    parent = np.arange(length)

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in {(int(a), int(b)) for row in src_local for a, b in zip(range(length), row)}:
        parent[root(a)] = root(b)
    return np.array([root(a) for a in range(length)])


def probe(cipher: Cipher, shape: Shape, keys: int = PROBE_KEYS) -> Structure:
    """Learn the :class:`Structure` of ``cipher`` for plain images of ``shape``.

    Raises:
        ParameterError: the cipher is outside the class (a key per image, ciphertexts that are
            not 8-bit or not of the keyed shape, no piece size that every key keeps whole).
    """
    bits = unit_bits_of(cipher, shape)
    keyed = tuple(cipher.keyed_shape(shape))
    if tuple(cipher.encrypted_shape(shape)) != keyed:
        raise ParameterError(f"cipher '{cipher.name}' changes the image shape in its keyed part: "
                             "outside this attack's class")
    channels, height, width = keyed
    maps = []
    for seed in range(keys):
        key = cipher.generate_key(shape, seed=30_011 + seed)
        maps.append(from_oracle(lambda z: cipher.encrypt_keyed(z, key), keyed, bits))
    declared = getattr(cipher, "block_size", None)
    if declared and height % declared == 0 and width % declared == 0:
        sides = [int(declared)]
    else:
        sides = [b for b in range(1, min(height, width) + 1) if height % b == 0 and width % b == 0]
    for block in sides:
        views = [local_maps(m, keyed, block) for m in maps]
        if any(v is None for v in views):
            continue
        masks = tuple(sorted({int(v) for m in maps for v in np.unique(m.mask)}))
        planes = 8 // bits
        moves = any((v[0] != np.arange(len(v[0]))).any() for v in views)
        sources_shared = all((v[1] == v[1][:1]).all() for v in views)
        shared = sources_shared and all((v[2] == v[2][:1]).all() for v in views)
        whole = all(_moves_pixels_whole(v[1], channels, block, planes) for v in views) and \
            all((v[2] == v[2][:, :1]).all() or masks == (0,) for v in views)
        plane_of = lambda local: local // (channels * block * block)  # noqa: E731
        fixed = all((plane_of(v[1]) == plane_of(np.arange(v[1].shape[1]))[None]).all() for v in views)
        states = None if shared else _state_classes(views, channels, block, 8 // bits)
        for seed in range(keys, max(keys, CLASS_KEYS, STATE_KEYS if states is not None else 0)):
            key = cipher.generate_key(shape, seed=30_011 + seed)
            views.append(local_maps(from_oracle(lambda z: cipher.encrypt_keyed(z, key), keyed, bits), keyed, block))
            if states is not None and seed >= CLASS_KEYS - 1:
                more = _state_classes(views, channels, block, 8 // bits)
                if more is None or len(more[0]) == len(states[0]):
                    states = more
                    break
                states = more
        else:  # every key up to the last still added a class: the set is large, not listed
            states = None
        classes = _classes(np.concatenate([v[1] for v in views if v is not None]))
        own_masks = np.any([(v[2] != v[2][:1]).any(0) for v in views if v is not None], axis=0)
        lines = _line_moves([v[0] for v in views if v is not None], height // block, width // block)
        return Structure(bits, masks, block, moves, shared, sources_shared, whole, fixed, classes, own_masks, states,
                         lines)
    raise ParameterError(f"cipher '{cipher.name}': no piece size is kept whole by every key "
                         f"(tried {sides[0]}..{sides[-1]}): outside this attack's class")


def compose_map(shape: Shape, block: int, bits: int, sources: list[np.ndarray], masks: list[np.ndarray],
                cells: np.ndarray) -> ComponentMap:
    """The whole-image map of in-piece maps and a placement: cipher piece i holds plain piece
    ``cells[i]``, its unit l being plain unit ``sources[i][l]`` XOR ``masks[i][l]``."""
    piece, local = unit_layout(shape, block, bits)
    flat = np.empty((piece.max() + 1, local.max() + 1), np.int64)
    flat[piece, local] = np.arange(piece.size)
    index = np.empty(piece.size, np.int64)
    mask = np.empty(piece.size, np.uint8)
    for i, (src, m) in enumerate(zip(sources, masks)):
        index[flat[i]] = flat[cells[i], src]
        mask[flat[i]] = m
    return ComponentMap(bits, index, mask)
