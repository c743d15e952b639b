"""row-shuffle: an example third-party ppattack cipher (a keyed permutation of image rows).

Not a serious cipher: it shows the whole plugin contract in one file.
"""
import torch

import ppattack
from ppattack.cipher import KeyField, log2_factorial


class RowShuffle(ppattack.Cipher):
    """Permute the rows of every image with one key: output row i = input row perm[i]."""

    name = "row-shuffle"
    paper = "example plugin"
    component_permutation = True

    def __init__(self) -> None:
        super().__init__()

    def key_fields(self, shape):
        return {"row_perm": KeyField((shape[1],), permutation=True)}

    def key_space_bits(self, shape):
        return log2_factorial(shape[1])

    def compile(self, key, device):
        perm = torch.tensor(key.material["row_perm"], device=device)  # a copy: key arrays are read-only
        return {"forward": perm, "inverse": torch.argsort(perm)}

    def apply(self, x, plan, inverse):
        return x.index_select(2, plan["inverse" if inverse else "forward"])
