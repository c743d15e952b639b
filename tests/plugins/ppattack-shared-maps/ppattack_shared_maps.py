"""Three shared-key test ciphers that no ppattack attack knows by name.

- ``tile-mix`` (declares ``block_size`` B): B x B tiles are scrambled by one permutation, the
  3 B^2 bytes of every tile vector (row, col, channel order) are permuted by a second one shared
  by all tiles, and the bytes where a shared mask is set are inverted (``invert=1``, default).
- ``tile-turn`` (declares ``block_size`` B): every B x B tile stays where it is, turned by its
  own one of the 8 turns and mirrors of the square and inverted where its own bit is set.
- ``pixel-scatter`` (declares nothing): one permutation of all pixels of the image (a pixel keeps
  its three channels together), then the pixels where a shared bit is set are inverted.

Two more, not registered (tests build them from their classes): ``column-mask`` (tile scrambling,
then a negative-positive bit per pixel column) and ``tile-quarter`` (tile scrambling, a quarter
turn of its own for every tile).

Written against the plugin contract of ppattack's README only.
"""
import numpy as np
import torch

import ppattack
from ppattack.cipher import KeyField, log2_factorial


def _gather(x, index, mask):
    flat = x.reshape(len(x), -1)
    return (flat[:, index] ^ mask).view(x.shape)


def _invert(index, mask):
    inverse = torch.argsort(index)
    return inverse, mask[inverse]


class TileMix(ppattack.Cipher):
    """Tile scrambling + one shared permutation and inversion mask of every tile vector."""

    name = "tile-mix"
    paper = "test plugin"

    def __init__(self, block_size: int = 4, invert: int = 1) -> None:
        super().__init__(block_size=int(block_size), invert=int(invert))
        self.block_size = int(block_size)
        self.invert = int(invert)

    def check_shape(self, shape):
        super().check_shape(shape)
        self.check_block_divides(shape, self.block_size)

    def key_fields(self, shape):
        c, h, w = shape
        b = self.block_size
        fields = {"tiles": KeyField(((h // b) * (w // b),), permutation=True),
                  "entries": KeyField((c * b * b,), permutation=True)}
        if self.invert:
            fields["mask"] = KeyField((c * b * b,), high=2)
        return fields

    def key_space_bits(self, shape):
        c, h, w = shape
        b = self.block_size
        return log2_factorial((h // b) * (w // b)) + log2_factorial(c * b * b) + self.invert * c * b * b

    def compile(self, key, device):
        c, h, w = key.shape
        b = self.block_size
        cols = w // b
        tile = np.arange((h // b) * cols)
        k = np.arange(c * b * b)
        pixel, channel = np.divmod(k, c)
        row, col = np.divmod(pixel, b)

        def component(t, entry):  # flat (C, H, W) index of entry of tile t
            p, ch = np.divmod(entry, c)
            r, q = np.divmod(p, b)
            return ch * h * w + ((t // cols) * b + r) * w + (t % cols) * b + q

        out = component(tile[:, None], k[None, :])
        source = component(np.asarray(key.material["tiles"])[:, None],
                           np.asarray(key.material["entries"])[None, :])
        index = np.empty(c * h * w, np.int64)
        index[out] = source
        mask = np.zeros(c * h * w, np.uint8)
        if self.invert:
            mask[out] = 255 * np.asarray(key.material["mask"])[None, :]
        index_t = torch.as_tensor(index, device=device)
        mask_t = torch.as_tensor(mask, device=device)
        return {"forward": (index_t, mask_t), "inverse": _invert(index_t, mask_t)}

    def apply(self, x, plan, inverse):
        return _gather(x, *plan["inverse" if inverse else "forward"])


class PixelScatter(ppattack.Cipher):
    """One shared permutation of all pixels, then inversion of the pixels a shared bit marks."""

    name = "pixel-scatter"
    paper = "test plugin"

    def __init__(self) -> None:
        super().__init__()

    def key_fields(self, shape):
        return {"pixels": KeyField((shape[1] * shape[2],), permutation=True),
                "invert": KeyField((shape[1] * shape[2],), high=2)}

    def key_space_bits(self, shape):
        return log2_factorial(shape[1] * shape[2]) + shape[1] * shape[2]

    def compile(self, key, device):
        c, h, w = key.shape
        plane = h * w
        pixels = np.asarray(key.material["pixels"])
        index = (np.arange(c)[:, None] * plane + pixels[None, :]).reshape(-1)
        mask = np.tile(255 * np.asarray(key.material["invert"]).astype(np.uint8), c)
        index_t = torch.as_tensor(index, device=device)
        mask_t = torch.as_tensor(mask, device=device)
        return {"forward": (index_t, mask_t), "inverse": _invert(index_t, mask_t)}

    def apply(self, x, plan, inverse):
        return _gather(x, *plan["inverse" if inverse else "forward"])


class TileTurn(ppattack.Cipher):
    """A turn or mirror of its own and an inversion bit of its own for every tile; no scrambling."""

    name = "tile-turn"
    paper = "test plugin"

    def __init__(self, block_size: int = 4) -> None:
        super().__init__(block_size=int(block_size))
        self.block_size = int(block_size)

    def check_shape(self, shape):
        super().check_shape(shape)
        self.check_block_divides(shape, self.block_size)

    def key_fields(self, shape):
        tiles = (shape[1] // self.block_size) * (shape[2] // self.block_size)
        return {"turns": KeyField((tiles,), high=8), "invert": KeyField((tiles,), high=2)}

    def key_space_bits(self, shape):
        return 4.0 * (shape[1] // self.block_size) * (shape[2] // self.block_size)

    def compile(self, key, device):
        c, h, w = key.shape
        b = self.block_size
        cols = w // b
        grid = torch.arange(b * b).view(b, b)
        within = []  # within[g][r, q]: the tile entry that turn g brings to (r, q)
        for g in range(8):
            turned = torch.rot90(grid, g % 4, dims=(0, 1))
            within.append((turned.flip(1) if g >= 4 else turned).numpy())
        index = np.arange(c * h * w).reshape(c, h, w)
        mask = np.zeros((c, h, w), np.uint8)
        turns, invert = np.asarray(key.material["turns"]), np.asarray(key.material["invert"])
        for t in range(len(turns)):
            top, left = (t // cols) * b, (t % cols) * b
            rows, cols_in = np.divmod(within[int(turns[t])], b)
            index[:, top:top + b, left:left + b] = (np.arange(c)[:, None, None] * h * w
                                                    + (top + rows) * w + left + cols_in)
            mask[:, top:top + b, left:left + b] = 255 * int(invert[t])
        index_t = torch.as_tensor(index.reshape(-1), device=device)
        mask_t = torch.as_tensor(mask.reshape(-1), device=device)
        return {"forward": (index_t, mask_t), "inverse": _invert(index_t, mask_t)}

    def apply(self, x, plan, inverse):
        return _gather(x, *plan["inverse" if inverse else "forward"])


def _tile_moves(shape, block, tiles, turns=None):
    """Flat gather index of a tile scrambling: output tile t holds source tile ``tiles[t]``,
    turned a quarter ``turns[t]`` times (``numpy.rot90`` of its rows and columns)."""
    c, h, w = shape
    cols = w // block
    grid = np.arange(c * h * w).reshape(c, h, w)
    index = np.empty_like(grid)
    for t, s in enumerate(tiles):
        (r, q), (sr, sq) = divmod(t, cols), divmod(int(s), cols)
        tile = grid[:, sr * block:(sr + 1) * block, sq * block:(sq + 1) * block]
        if turns is not None:
            tile = np.rot90(tile, int(turns[t]), axes=(1, 2))
        index[:, r * block:(r + 1) * block, q * block:(q + 1) * block] = tile
    return index.reshape(-1)


class ColumnMask(ppattack.Cipher):
    """Tile scrambling by one permutation, then negative-positive of the pixel columns a shared
    bit per column marks (tiles never turn; nothing about turns is declared). Not registered."""

    name = "column-mask"
    paper = "test plugin"

    def __init__(self, block_size: int = 4) -> None:
        super().__init__(block_size=int(block_size))
        self.block_size = int(block_size)

    def check_shape(self, shape):
        super().check_shape(shape)
        self.check_block_divides(shape, self.block_size)

    def key_fields(self, shape):
        tiles = (shape[1] // self.block_size) * (shape[2] // self.block_size)
        return {"tiles": KeyField((tiles,), permutation=True), "columns": KeyField((shape[2],), high=2)}

    def key_space_bits(self, shape):
        return log2_factorial((shape[1] // self.block_size) * (shape[2] // self.block_size)) + shape[2]

    def compile(self, key, device):
        c, h, w = key.shape
        index = torch.as_tensor(_tile_moves(key.shape, self.block_size, key.material["tiles"]), device=device)
        columns = 255 * np.asarray(key.material["columns"]).astype(np.uint8)
        mask = torch.as_tensor(np.broadcast_to(columns, (c, h, w)).reshape(-1).copy(), device=device)
        return {"forward": (index, mask), "inverse": _invert(index, mask)}

    def apply(self, x, plan, inverse):
        return _gather(x, *plan["inverse" if inverse else "forward"])


class TileQuarter(ppattack.Cipher):
    """Tile scrambling by one permutation, every output tile turned by its own quarter turn
    (never mirrored). Not registered."""

    name = "tile-quarter"
    paper = "test plugin"

    def __init__(self, block_size: int = 4) -> None:
        super().__init__(block_size=int(block_size))
        self.block_size = int(block_size)

    def check_shape(self, shape):
        super().check_shape(shape)
        self.check_block_divides(shape, self.block_size)

    def key_fields(self, shape):
        tiles = (shape[1] // self.block_size) * (shape[2] // self.block_size)
        return {"tiles": KeyField((tiles,), permutation=True), "turns": KeyField((tiles,), high=4)}

    def key_space_bits(self, shape):
        tiles = (shape[1] // self.block_size) * (shape[2] // self.block_size)
        return log2_factorial(tiles) + 2 * tiles

    def compile(self, key, device):
        c, h, w = key.shape
        index = torch.as_tensor(_tile_moves(key.shape, self.block_size, key.material["tiles"],
                                            key.material["turns"]), device=device)
        mask = torch.zeros(c * h * w, dtype=torch.uint8, device=device)
        return {"forward": (index, mask), "inverse": _invert(index, mask)}

    def apply(self, x, plan, inverse):
        return _gather(x, *plan["inverse" if inverse else "forward"])
