"""Two shared-key test ciphers that no ppattack attack knows by name.

- ``tile-mix`` (declares ``block_size`` B): B x B tiles are scrambled by one permutation, the
  3 B^2 bytes of every tile vector (row, col, channel order) are permuted by a second one shared
  by all tiles, and the bytes where a shared mask is set are inverted (``invert=1``, default).
- ``pixel-scatter`` (declares nothing): one permutation of all pixels of the image (a pixel keeps
  its three channels together), then the pixels where a shared bit is set are inverted.

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
