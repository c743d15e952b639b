"""block-ffx: block-wise format-preserving encryption with a secret key (MaungMaung and Kiya 2021).

One key for all M x M blocks and images: block vector entry k (length L = 3 M^2, (row, col,
channel) order) is encrypted where ``mask[k] = 1``, and kept where it is 0. The paper encrypts
masked pixel values with FFX under a password; here the format-preserving encryption is NIST
FF3-1 (SP 800-38G Rev. 1, radix 10) with AES-128 key ``fpe_key`` and 56-bit tweak ``tweak``.
AES comes from the optional package pycryptodome (``pip install 'ppattack[ffx]'``); the FF3-1
rounds are computed here for all 256 values at once (one AES call per round), and agree with
the maintained PyPI package ``ff3`` (tested).

FF3-1 needs a domain of at least 10^6 values, so a masked value v in 0..255 is written as six
decimal digits (``f"{v:06d}"``), encrypted, and read back as an integer.

Output: ciphertexts are NOT 8-bit images. They are ``torch.int32`` tensors of the plain shape;
unmasked components keep their value 0..255, masked ones hold FF3-1 ciphertexts in
0..999999. Decryption takes such int32 tensors and returns uint8 images.

Since only 256 values can occur, a key compiles into a 512-entry lookup table (identity for
unmasked, FF3-1 for masked positions) and an inverse table, applied with one gather each.
"""
from __future__ import annotations

import numpy as np
import torch

from ppattack.cipher import BlockCipher, KeyField
from ppattack.errors import KeyFileError, PPAttackError
from ppattack.functional import block_components
from ppattack.keys import Key, Shape

DIGITS = 6
DOMAIN = 10 ** DIGITS
_HALF = 10 ** (DIGITS // 2)  # both Feistel halves hold 3 digits
_Y_WEIGHTS = np.array([pow(256, j, _HALF) for j in range(16)], dtype=np.int64)  # little-endian bytes


def _reversed_digits(values: np.ndarray) -> np.ndarray:
    """NUM(REV(X)) of 3-digit strings X = f"{v:03d}": the number with the digits reversed."""
    return (values % 10) * 100 + (values // 10 % 10) * 10 + values // 100


def ff3_1_encrypt(fpe_key: np.ndarray, tweak: np.ndarray, values: np.ndarray) -> np.ndarray:
    """FF3-1 (radix 10, 6 digits) of every integer in ``values`` (0..999999), all at once.

    SP 800-38G Rev. 1: A, B = the first and last 3 digits; 8 rounds with
    P = W ^ [i]^4 || [NUM(REV(B))]^12, S = REVB(AES_{REVB(K)}(REVB(P))),
    c = (NUM(REV(A)) + NUM(S)) mod 10^3, A, B = B, REV(STR^3(c)). Here A and B are kept as
    a = NUM(REV(A)), b = NUM(REV(B)).
    """
    try:
        from Crypto.Cipher import AES
    except ImportError:
        raise PPAttackError("cipher 'block-ffx' needs the optional package pycryptodome: "
                            "pip install 'ppattack[ffx]' (or pip install pycryptodome)") from None
    aes = AES.new(bytes(fpe_key.astype(np.uint8)[::-1]), AES.MODE_ECB)
    t = tweak.astype(np.uint8)  # 56-bit tweak -> T_L = T[0..27] || 0^4, T_R = T[32..55] || T[28..31] || 0^4
    sides = (np.array([t[4], t[5], t[6], (t[3] & 0x0F) << 4], np.uint8),  # T_R: even rounds
             np.array([t[0], t[1], t[2], t[3] & 0xF0], np.uint8))        # T_L: odd rounds
    a, b = _reversed_digits(values // _HALF), _reversed_digits(values % _HALF)
    blocks = np.zeros((len(values), 16), dtype=np.uint8)
    for i in range(8):
        blocks[:, :4] = sides[i % 2]
        blocks[:, 3] ^= i
        blocks[:, 14], blocks[:, 15] = b >> 8, b & 0xFF  # [b]^12 big-endian (b < 1000)
        encrypted = np.frombuffer(aes.encrypt(blocks[:, ::-1].tobytes()), dtype=np.uint8).reshape(-1, 16)
        y = encrypted.astype(np.int64) @ _Y_WEIGHTS  # NUM(REVB(.)) mod 10^3, term by term
        a, b = b, (a + y) % _HALF
    return _reversed_digits(a) * _HALF + _reversed_digits(b)


class BlockFfx(BlockCipher):
    """Block-wise FF3-1 format-preserving encryption of masked components; ciphertexts are int32 in 0..999999, not images (MaungMaung and Kiya 2021)."""

    name = "block-ffx"
    paper = ("MaungMaung, Kiya: A protection method of trained CNN model with a secret key from "
             "unauthorized access (APSIPA Trans. Signal and Information Processing 10, 2021)")
    ciphertext_dtype = torch.int32

    def __init__(self, block_size: int = 4) -> None:
        super().__init__(block_size)

    def key_fields(self, shape: Shape) -> dict[str, KeyField]:
        return {"mask": KeyField((shape[0] * self.block_size ** 2,), high=2),
                "fpe_key": KeyField((16,), high=256),
                "tweak": KeyField((7,), high=256)}

    def key_space_bits(self, shape: Shape) -> float:
        """Mask bits plus the AES-128 key and the 56-bit tweak."""
        return float(shape[0] * self.block_size ** 2 + 128 + 56)

    def separable_bits(self, shape: Shape) -> float:
        """The FF3-1 key and tweak (one 256-entry substitution), recoverable without the mask."""
        return 128.0 + 56.0

    def compile(self, key: Key, device: torch.device) -> dict[str, torch.Tensor]:
        """Forward tables; the 2 x 10^6-entry inverse table is built on the first decryption."""
        table = ff3_1_encrypt(key.material["fpe_key"], key.material["tweak"], np.arange(256))
        components = block_components(*key.shape, self.block_size)
        masked = np.zeros(components.size, dtype=np.int32)
        masked[components] = key.material["mask"][None, :]
        return {"table": torch.from_numpy(table).to(device),
                "forward": torch.from_numpy(np.concatenate([np.arange(256), table]).astype(np.int32)).to(device),
                "forward_offset": torch.from_numpy(256 * masked).to(device),
                "inverse_offset": torch.from_numpy(DOMAIN * masked).to(device)}

    def apply(self, x: torch.Tensor, plan: dict[str, torch.Tensor], inverse: bool) -> torch.Tensor:
        n = x.shape[0]
        if not inverse:
            index = x.reshape(n, -1).to(torch.int32).add_(plan["forward_offset"])
            return plan["forward"].index_select(0, index.view(-1)).view(x.shape)
        if bool(((x < 0) | (x >= DOMAIN)).any()):
            raise KeyFileError(f"block-ffx ciphertexts must hold values 0..{DOMAIN - 1}: "
                               "these were not made by block-ffx")
        if "inverse" not in plan:  # unmasked: 0..255 -> itself; masked: DOMAIN + FF3-1(v) -> v
            values = torch.arange(256, dtype=torch.int16, device=x.device)
            lookup = torch.full((2 * DOMAIN,), -1, dtype=torch.int16, device=x.device)
            lookup[:256] = values
            lookup[DOMAIN + plan["table"]] = values
            plan["inverse"] = lookup
        index = x.reshape(n, -1) + plan["inverse_offset"]
        plain = plan["inverse"].index_select(0, index.view(-1))
        if bool((plain < 0).any()):
            raise KeyFileError("the ciphertexts hold values this block-ffx key cannot produce: "
                               "wrong key, or corrupted ciphertexts")
        return plain.to(torch.uint8).view(x.shape)
