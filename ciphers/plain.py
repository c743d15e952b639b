"""plain: the identity cipher, the positive control of every experiment (0 key bits)."""
from __future__ import annotations

from typing import Any

import torch

from ppattack.cipher import Cipher, KeyField
from ppattack.keys import Key, Shape


class Plain(Cipher):
    """Identity: the ciphertext is the plain image (positive control)."""

    name = "plain"
    paper = "none (control)"
    component_permutation = True

    def __init__(self) -> None:
        super().__init__()

    def key_fields(self, shape: Shape) -> dict[str, KeyField]:
        return {}

    def key_space_bits(self, shape: Shape) -> float:
        return 0.0

    def compile(self, key: Key, device: torch.device) -> Any:
        return None

    def apply(self, x: torch.Tensor, plan: Any, inverse: bool) -> torch.Tensor:
        return x.clone()

    def key_from_map(self, shape: Shape, found) -> dict:
        return {}
