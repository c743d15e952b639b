"""Key-recovery scores: how much of the victim key an attack recovered.

Attacks never see the key. An attack that recovers key material returns it in
``AttackResult.recovered_key`` as ``{part: array}``, using the part names and the
semantics of the cipher's key JSON (docs/ciphers.md, "Key material"). The harness, which
holds the key, scores it (the recovered material is the victim's key, so no record holds it
and it is never written to result.json) and records only the scores of :func:`score_recovery`
under ``attack.key_recovery``:

- ``<part>``: for every recovered part that the key has, the fraction of entries equal to the
  key's (exact match per entry; a part of the wrong shape scores 0). For ``proposed`` the two
  parts commute (the pixel shuffle is the same in every sub-block and the block scrambling
  moves whole blocks), so each part's fraction is meaningful on its own: ``pixel_perm`` is the
  fraction of sub-block positions whose source is right, ``block_perm`` the fraction of blocks.
- ``direct``: (with ``block_perm``) the fraction of blocks restored exactly: the block
  permutation entry and every recovered per-block part (e.g. etc's ``transform``, ``np``,
  ``color``) right at that block; the jigsaw "direct comparison" (Cho et al. 2010).
- ``neighbour``: (with ``block_perm``) the fraction of adjacent block pairs in the restored
  grid (horizontal and vertical) that are joined correctly; the jigsaw "neighbour comparison".
  When the recovered key is a complete key of a cipher that maps components to components
  (proposed, etc, ...), "correctly" is judged on the map from the plain image to the restored
  one (decrypting with the recovered key what the true key encrypted): both blocks must be
  moved by the same rigid transform of the whole picture (the same turn, shift, channel order
  and negative-positive), so a solution that is right up to a turn, mirror or recolouring of the
  whole picture, which no edge cue can settle, still scores 1. Otherwise two blocks are joined
  correctly when they are true neighbours in the same relation and both restored exactly.
- ``direct_modulo_global``: (complete keys of component-map ciphers) the fraction of blocks
  moved by the most common rigid transform: direct comparison up to that global ambiguity.
- ``largest_component``: (with ``block_perm``) the largest set of blocks connected by correct
  neighbour pairs, as a fraction of all blocks.
- ``complete``: 1.0 when every part of the key was recovered and is entirely right, else 0.0.

An attack that solves every ciphertext on its own (jigsaw) returns a list with one such dict
per ciphertext; every score is then the mean over the ciphertexts.

    >>> import ppattack
    >>> cipher = ppattack.create_cipher("proposed", block_size=4)
    >>> key = cipher.generate_key((3, 8, 8), seed=0)
    >>> score_recovery(cipher, key, {"block_perm": key.material["block_perm"],
    ...                              "pixel_perm": [0, 1, 2, 3]})["block_perm"]
    1.0
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..cipher import Cipher
from .component_map import ComponentMap, from_oracle
from ..errors import PPAttackError
from ..keys import Key


def _fraction(recovered: Any, truth: np.ndarray) -> float:
    found = np.asarray(recovered)
    if found.shape != truth.shape:
        return 0.0
    return float((found == truth).mean()) if truth.size else 1.0


def _grid(cipher: Cipher, key: Key, blocks: int) -> tuple[int, int] | None:
    block = getattr(cipher, "block_size", None)
    if not block:
        return None
    _, height, width = cipher.encrypted_shape(key.shape)
    rows, cols = height // block, width // block
    return (rows, cols) if rows * cols == blocks else None


def _components(links: list[tuple[int, int]], size: int) -> int:
    """Size of the largest connected component of ``size`` nodes joined by ``links``."""
    parent = list(range(size))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in links:
        parent[root(a)] = root(b)
    roots = [root(a) for a in range(size)]
    return max(np.bincount(roots)) if size else 0


def _placement_scores(key: Key, recovered: Mapping[str, Any], rows: int, cols: int) -> dict[str, float]:
    truth = np.asarray(key.material["block_perm"])
    found = np.asarray(recovered["block_perm"])
    n = rows * cols
    if found.shape != truth.shape or sorted(found.tolist()) != list(range(n)):
        return {"direct": 0.0, "neighbour": 0.0, "largest_component": 0.0}
    exact = found == truth
    for part, value in recovered.items():  # per-block parts (indexed by cipher block)
        ref = np.asarray(key.material.get(part, ()))
        if part != "block_perm" and ref.shape == truth.shape:
            got = np.asarray(value)
            if got.size == ref.size:
                exact &= got.reshape(ref.shape) == ref
            else:
                exact[:] = False
    # The restored grid: plain position found[i] receives cipher block i, which truly is plain
    # block truth[i]. A pair of neighbouring positions is right when it holds true neighbours.
    at = np.empty(n, np.int64)
    at[found] = np.arange(n)  # cipher block placed at each restored position
    links = []
    for p in range(n):
        r, c = divmod(p, cols)
        for q, ok in ((p + 1, c + 1 < cols), (p + cols, r + 1 < rows)):
            if not ok:
                continue
            i, j = at[p], at[q]
            if exact[i] and exact[j] and truth[j] - truth[i] == q - p and \
                    (q - p == cols or truth[i] % cols + 1 < cols):
                links.append((int(i), int(j)))
    pairs = rows * (cols - 1) + cols * (rows - 1)
    return {"direct": float(exact.mean()),
            "neighbour": len(links) / pairs if pairs else 1.0,
            "largest_component": float(_components(links, n) / n)}


def _rigid_scores(cipher: Cipher, key: Key, recovered: Mapping[str, Any],
                  rows: int, cols: int) -> dict[str, float] | None:
    """Neighbour comparison on the plain -> restored component map; None where not applicable."""
    channels, height, width = key.shape
    block = getattr(cipher, "block_size", None)
    if not block or block < 2 or (height, width) != (rows * block, cols * block) or \
            set(recovered) != set(key.material):
        return None
    try:
        guess = Key(cipher.name, cipher.params, key.shape, cipher.parse_material(recovered, key.shape))
        composite = from_oracle(lambda x: cipher.decrypt(cipher.encrypt(x, key), guess), key.shape)
    except (PPAttackError, RuntimeError, IndexError, ValueError):
        return None
    plane = height * width
    src_channel, src_pixel = np.divmod(composite.index.reshape(channels, height, width), plane)
    src = np.stack(np.divmod(src_pixel, width))  # (2, C, H, W): source row, col
    # One rigid transform per restored cell, read off its top-left pixel and its two neighbours.
    grid = lambda a: a.reshape(*a.shape[:-2], rows, block, cols, block)  # noqa: E731
    s = grid(src)  # (2, C, R, B, Q, B)
    origin = s[:, 0, :, 0, :, 0]  # (2, R, Q)
    col_step = s[:, 0, :, 0, :, 1] - origin
    row_step = s[:, 0, :, 1, :, 0] - origin
    r, c = np.arange(block)[:, None], np.arange(block)[None, :]
    offs_r = r + np.zeros_like(c)
    offs_c = c + np.zeros_like(r)
    pred = (origin[:, :, None, :, None] + row_step[:, :, None, :, None] * offs_r[None, None, :, None, :]
            + col_step[:, :, None, :, None] * offs_c[None, None, :, None, :])  # (2, R, B, Q, B)
    rigid = (s == pred[:, None]).all(axis=(0, 1, 3, 5))
    chan = grid(src_channel)  # (C, R, B, Q, B)
    flips = grid(composite.flip.reshape(channels, height, width))
    rigid &= (chan == chan[:, :, :1, :, :1]).all(axis=(0, 2, 4)) & (flips == flips[:, :, :1, :, :1]).all(axis=(0, 2, 4))
    # Signature: the whole-picture transform the cell implies (linear part, shift, colours).
    rows_i, cols_i = np.meshgrid(np.arange(rows) * block, np.arange(cols) * block, indexing="ij")
    shift = origin - (row_step * rows_i + col_step * cols_i)
    signature = np.concatenate([row_step, col_step, shift, chan[:, :, 0, :, 0], flips[:, :, 0, :, 0]])
    keys = [tuple(signature[:, i, j]) if rigid[i, j] else None for i in range(rows) for j in range(cols)]
    links = [(p, q) for p in range(rows * cols)
             for q, ok in ((p + 1, (p % cols) + 1 < cols), (p + cols, p // cols + 1 < rows))
             if ok and keys[p] is not None and keys[p] == keys[q]]
    pairs = rows * (cols - 1) + cols * (rows - 1)
    valid = [k for k in keys if k is not None]
    common = max(set(valid), key=valid.count) if valid else None
    n = rows * cols
    return {"neighbour": len(links) / pairs if pairs else 1.0,
            "largest_component": float(_components(links, n) / n),
            "direct_modulo_global": (valid.count(common) / n) if valid else 0.0}


def score_recovery(cipher: Cipher, key: Key,
                   recovered: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Score recovered key material against the true ``key`` (see the module docstring).

    Args:
        cipher: the victim's cipher (gives the block grid).
        key: the victim key.
        recovered: ``{part: array-like}`` as returned by an attack (parts the key does not
            have are ignored), or a list of them, one per ciphertext.

    Returns:
        ``{name: fraction in [0, 1]}``.
    """
    if not isinstance(recovered, Mapping):
        each = [score_recovery(cipher, key, one) for one in recovered]
        return {name: float(np.mean([s[name] for s in each])) for name in (each[0] if each else {})}
    scores: dict[str, float] = {}
    material = key.material
    for part, value in recovered.items():
        if part in material:
            scores[part] = _fraction(value, np.asarray(material[part]))
    if "block_perm" in recovered and "block_perm" in material:
        grid = _grid(cipher, key, len(material["block_perm"]))
        if grid is not None:
            scores.update(_placement_scores(key, recovered, *grid))
            scores.update(_rigid_scores(cipher, key, recovered, *grid) or {})
    complete = all(part in recovered for part in material) and all(
        scores.get(part) == 1.0 for part in material)
    scores["complete"] = 1.0 if complete else 0.0
    return scores


def score_map(cipher: Cipher, key: Key, found: ComponentMap) -> dict[str, float]:
    """Score a recovered map of the cipher's keyed part against the true ``key``.

    Works for every cipher, with no knowledge of its key format: the true map is read off the
    cipher with chosen images (the harness holds the key) and both are compared bit by bit.

    Returns:
        ``map_bits``: fraction of ciphertext bits whose source bit and flip are right;
        ``decrypts_exactly``: 1.0 when the map decrypts a fresh random image bit-exactly;
        ``complete``: the same (a map that decrypts every image is the whole key).
    """
    keyed, out = cipher.keyed_shape(key.shape), cipher.encrypted_shape(key.shape)
    truth = from_oracle(lambda z: cipher.encrypt_keyed(z, key), keyed, 1, out)
    mine = found.as_bits()
    right = float(((mine.index == truth.index) & (mine.mask == truth.mask)).mean()) \
        if mine.index.shape == truth.index.shape else 0.0
    fresh = torch.from_numpy(np.random.default_rng(12_345).integers(0, 256, (2, *keyed), dtype=np.uint8))
    exact = float(torch.equal(found.decrypt(cipher.encrypt_keyed(fresh, key), keyed), fresh))
    return {"map_bits": right, "decrypts_exactly": exact, "complete": exact}
