"""The cipher base class: the contract every built-in and third-party cipher implements.

A subclass defines the scheme's parameters as explicit keyword arguments, its key fields,
key-space size, and how a key compiles into index maps and masks (``compile``) and how those
are applied (``apply``). The base class owns the ceremony: shape and dtype checks, key
generation from a CSPRNG or a seed, key validation, and caching each compiled key per device.

Example (a complete third-party cipher: a global inversion with no key)::

    class Invert(ppattack.Cipher):
        \"\"\"Negative image: 255 - x.\"\"\"
        name = "invert"
        paper = "none"

        def key_fields(self, shape):
            return {}

        def key_space_bits(self, shape):
            return 0.0

        def compile(self, key, device):
            return None

        def apply(self, x, plan, inverse):
            return 255 - x
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import numpy as np
import torch

from .errors import KeyFileError, ParameterError, ShapeError
from .keys import Key, Shape, as_int_array, check_permutation, check_range
from .rng import KeyRNG
from .unit_map import ComponentMap


@dataclass(frozen=True)
class KeyField:
    """One array of key material: its shape, and either a permutation or values in [0, high)."""

    shape: tuple[int, ...]
    high: int = 2
    permutation: bool = False

    def draw(self, rng: KeyRNG) -> np.ndarray:
        if self.permutation:
            rows = [rng.permutation(self.shape[-1]) for _ in range(math.prod(self.shape[:-1]))]
            return np.stack(rows).reshape(self.shape) if rows else np.zeros(self.shape, np.int64)
        return rng.integers(self.high, self.shape)


@dataclass(frozen=True)
class UnitTransforms:
    """A small public set of transforms applied independently to each unit (pixel or block).

    An edge-based solver searches this set per unit (pe: 48 per pixel; etc: 96 per block;
    etc-gray: 16 per block). ``undo(units, t)`` applies the INVERSE of candidate ``t`` to a
    batch of units ``(M, C, s, s)`` uint8 (``s = unit_size``), giving candidate plain units.
    ``key_parts(t)``: the key material parts (named as in docs/ciphers.md, "Key material") of
    units given their candidate numbers ``t`` (int64, one per unit), so that a solver's answer
    is a key of the cipher.
    """

    unit: str  # "pixel" or "block"
    unit_size: int
    count: int
    undo: Callable[[torch.Tensor, int], torch.Tensor]
    #: Key material parts of units given their candidate numbers, or None.
    key_parts: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None
    #: A closed form of :meth:`canonical` (uint8 ``(N, C, H, W)`` -> the same), when the cipher
    #: knows one: it must give exactly the search's result (a cipher's tests check it against
    #: :meth:`search_canonical`); the search over every candidate costs ``count`` passes.
    canonical_form: Callable[[torch.Tensor], torch.Tensor] | None = None

    def canonical(self, images: torch.Tensor) -> torch.Tensor:
        """Every unit of ``images`` replaced by the least of its candidates (lexicographic over
        its ``C*s*s`` values in ``(C, s, s)`` order).

        When the candidates form a group that holds every unit's keyed transform (pe, etc,
        etc-gray), a unit's candidates are its plain unit's whole orbit, so the result is the
        same under every key: what survives a fresh key per unit. pe: each pixel's folded
        values ``min(v, 255 - v)`` in ascending order.

        Shape: uint8 ``(N, C, H, W)`` with H and W multiples of ``unit_size``, same out.
        """
        if self.canonical_form is not None:
            return self.canonical_form(images)
        return self.search_canonical(images)

    def search_canonical(self, images: torch.Tensor) -> torch.Tensor:
        """:meth:`canonical` by its definition: every candidate of every unit compared."""
        n, c, h, w = images.shape
        s = self.unit_size
        units = images.reshape(n, c, h // s, s, w // s, s).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, s, s)
        best = self.undo(units, 0).reshape(len(units), -1)
        for t in range(1, self.count):
            candidate = self.undo(units, t).reshape(len(units), -1)
            difference = candidate.to(torch.int16) - best.to(torch.int16)
            first = (difference != 0).to(torch.uint8).argmax(dim=1, keepdim=True)
            smaller = difference.gather(1, first).squeeze(1) < 0
            best = torch.where(smaller[:, None], candidate, best)
        grid = best.reshape(n, h // s, w // s, c, s, s).permute(0, 3, 1, 4, 2, 5)
        return grid.reshape(n, c, h, w).contiguous()


def log2_factorial(n: int) -> float:
    """log2(n!) computed with lgamma (never a factorial)."""
    return math.lgamma(n + 1) / math.log(2)


class Cipher:
    """Base class of all ciphers. Subclasses set ``name`` (the registry key) and ``paper``."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    invertible: ClassVar[bool] = True
    #: "shared": one key encrypts every image; "per-image": every image gets its own key.
    key_reuse: ClassVar[str] = "shared"
    #: Number of channels the cipher takes (protocol: RGB).
    channels: ClassVar[int] = 3
    #: True when encryption only moves pixel components around (what keyrec and the model
    #: transformation need; fr then has nothing to fold); negative-positive or nibble ciphers are not.
    component_permutation: ClassVar[bool] = False
    #: Largest per-component error of decrypt(encrypt(x)) (0: bit-exact; etc-gray: 2).
    max_round_trip_error: ClassVar[int] = 0
    #: True when every block position has a key of its own (ele): models with per-position
    #: input adaptation fit it (:mod:`ppattack.learning.classifier`).
    per_position_keys: ClassVar[bool] = False
    #: Block side in pixels for block-wise ciphers, None otherwise (instances set it).
    block_size: int | None = None
    #: dtype of ciphertexts (uint8 images; block-ffx: int32 values beyond 255).
    ciphertext_dtype: ClassVar[torch.dtype] = torch.uint8

    def __init__(self, **params: Any):
        self._params = dict(params)
        self._plans: weakref.WeakKeyDictionary[Key, dict[str, Any]] = weakref.WeakKeyDictionary()

    # -- description ---------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        """The cipher's parameters (what a key file stores under ``params``)."""
        return dict(self._params)

    @classmethod
    def summary(cls) -> str:
        """First line of the class docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"

    # -- shapes --------------------------------------------------------------------------------
    def check_shape(self, shape: Shape) -> None:
        """Raise :class:`ShapeError` if the cipher cannot take plain images of ``shape`` (C, H, W)."""
        if len(shape) != 3 or any(int(s) <= 0 for s in shape):
            raise ShapeError(f"image shape must be C,H,W with positive sizes, got {tuple(shape)}")
        if shape[0] != self.channels:
            raise ShapeError(f"cipher '{self.name}' takes {self.channels}-channel images, "
                             f"got {shape[0]} channels: convert the images to RGB")

    def check_block_divides(self, shape: Shape, block_size: int) -> None:
        """Helper for block ciphers: H and W must be multiples of ``block_size``."""
        _, h, w = shape
        if h % block_size or w % block_size:
            fit = (max(block_size, h // block_size * block_size),
                   max(block_size, w // block_size * block_size))
            raise ShapeError(f"image size {h}x{w} is not a multiple of block_size {block_size} "
                             f"for cipher '{self.name}': resize or crop to e.g. {fit[0]}x{fit[1]}, "
                             "or choose another block_size")

    def unit_transforms(self, shape: Shape) -> UnitTransforms | None:
        """The per-unit candidate set, for ciphers whose units each get one of few transforms."""
        return None

    def encrypted_shape(self, shape: Shape) -> Shape:
        """Shape (C, H, W) of a ciphertext for plain images of ``shape``."""
        return tuple(shape)

    # -- hooks for generic attacks (what an attacker may know of any cipher) --------------------
    # A cipher = an optional public keyless step, then a keyed part. Generic key recovery
    # (keyrec, kpa, cpa) models the keyed part as a map of bits, nibbles or bytes
    # (ppattack.solvers.component_map) and learns its structure by encrypting with keys of its own.
    def keyless_step(self, x: torch.Tensor) -> torch.Tensor:
        """The public step every image gets before the key acts (default: none). uint8 in and
        out; the output has :meth:`keyed_shape` (etc-gray: YCbCr planes side by side)."""
        return x

    def undo_keyless_step(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`keyless_step` (as exact as the cipher's round trip)."""
        return z

    def keyed_shape(self, shape: Shape) -> Shape:
        """Shape of :meth:`keyless_step`'s output for plain images of ``shape``."""
        return tuple(shape)

    def encrypt_keyed(self, z: torch.Tensor, key: Key) -> torch.Tensor:
        """The keyed part alone, on images of :meth:`keyed_shape` (default: :meth:`encrypt`)."""
        return self.encrypt(z, key)

    def decrypt_keyed(self, y: torch.Tensor, key: Key) -> torch.Tensor:
        """Inverse of :meth:`encrypt_keyed` (default: :meth:`decrypt`)."""
        return self.decrypt(y, key)

    def key_from_map(self, shape: Shape, found: ComponentMap) -> dict[str, np.ndarray] | None:
        """This cipher's key material for a recovered map of its keyed part (None: the cipher
        does not say; attacks then decrypt with the map itself and scores compare decryptions)."""
        return None

    # -- keys ----------------------------------------------------------------------------------
    def key_fields(self, shape: Shape) -> Mapping[str, KeyField]:
        """The arrays of key material for images of ``shape`` (docs/ciphers.md, "Key material")."""
        raise NotImplementedError

    def key_space_bits(self, shape: Shape) -> float:
        """log2 of the number of keys for images of ``shape``."""
        raise NotImplementedError

    def separable_bits(self, shape: Shape) -> float:
        """Bits of the largest key part an attacker can recover on its own (default: all)."""
        return self.key_space_bits(shape)

    def card(self, shape: Shape) -> dict[str, Any]:
        """What this cipher is at ``shape`` (``ppattack info``, a bench's key-space column): its
        parameters, shapes, key space and separable bits (unrounded), key reuse, block size,
        ciphertext dtype, component permutation, unit transforms and paper."""
        self.check_shape(shape)
        units = self.unit_transforms(shape)
        return {"cipher": self.name, "summary": self.summary(), "params": self.params,
                "shape": list(shape), "encrypted_shape": list(self.encrypted_shape(shape)),
                "key_space_bits": self.key_space_bits(shape), "separable_bits": self.separable_bits(shape),
                "invertible": self.invertible, "key_reuse": self.key_reuse, "block_size": self.block_size,
                "ciphertext_dtype": str(self.ciphertext_dtype).removeprefix("torch."),
                "component_permutation": self.component_permutation,
                "unit_transforms": None if units is None else {"unit": units.unit, "unit_size": units.unit_size,
                                                               "count": units.count},
                "paper": self.paper}

    def generate_key(self, shape: Shape, seed: int | None = None) -> Key:
        """A new key for images of ``shape``: from the OS CSPRNG, or deterministic for ``seed``."""
        shape = tuple(int(s) for s in shape)
        self.check_shape(shape)
        rng = KeyRNG(seed)
        material = {name: field.draw(rng) for name, field in self.key_fields(shape).items()}
        return Key(self.name, self.params, shape, material)

    def parse_material(self, raw: Mapping[str, Any], shape: Shape) -> dict[str, Any]:
        """Validate JSON key material against :meth:`key_fields`; errors name the field."""
        fields = self.key_fields(shape)
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise KeyFileError(f"field 'material.{unknown[0]}' is not a key field of cipher "
                               f"'{self.name}' (expected {sorted(fields)})")
        material = {}
        for name, field in fields.items():
            if name not in raw:
                raise KeyFileError(f"field 'material.{name}' is missing")
            array = as_int_array(raw[name], name, field.shape)
            if field.permutation:
                check_permutation(array, name)
            else:
                check_range(array, name, field.high)
            material[name] = array
        return material

    def check_key(self, key: Key) -> None:
        """Raise :class:`KeyFileError` if ``key`` was not made for this cipher and parameters."""
        if key.cipher != self.name or dict(key.params) != self.params:
            raise KeyFileError(f"the key is for cipher '{key.cipher}' {dict(key.params)}, not "
                               f"'{self.name}' {self.params}: use the matching key or cipher")

    # -- encryption ----------------------------------------------------------------------------
    def compile(self, key: Key, device: torch.device) -> Any:
        """Turn ``key`` into index maps / masks on ``device`` (called once per key and device)."""
        raise NotImplementedError

    def apply(self, x: torch.Tensor, plan: Any, inverse: bool) -> torch.Tensor:
        """Encrypt (``inverse=False``) or decrypt a checked uint8 batch with a compiled plan."""
        raise NotImplementedError

    def image_plan(self, plan: Any, key: Key, indices: np.ndarray, device: torch.device) -> Any:
        """Per-image ciphers (``key_reuse = "per-image"``): the plan for the images numbered
        ``indices`` (int64, one per image of the batch), built from the key's compiled ``plan``.
        Shared-key ciphers never get here."""
        raise NotImplementedError

    def encrypt(self, x: torch.Tensor, key: Key, *, indices: Any = None) -> torch.Tensor:
        """Encrypt a uint8 batch ``(N, C, H, W)`` of the key's shape; same dtype and device.

        ``indices``: for per-image ciphers, the images' numbers n (image n is encrypted with the
        key derived for n; default ``0..N-1``); shared-key ciphers ignore it.
        """
        self._check_batch(x, key, key.shape, "plain images")
        return self.apply(x, self._batch_plan(key, x, indices), inverse=False)

    def decrypt(self, y: torch.Tensor, key: Key, *, indices: Any = None) -> torch.Tensor:
        """Invert :meth:`encrypt` for ciphertexts ``(N, C', H', W')`` made with ``key``
        (and, for per-image ciphers, the same ``indices``)."""
        if not self.invertible:
            raise ParameterError(f"cipher '{self.name}' cannot be decrypted")
        self._check_batch(y, key, self.encrypted_shape(key.shape), "ciphertexts", self.ciphertext_dtype)
        return self.apply(y, self._batch_plan(key, y, indices), inverse=True)

    def _batch_plan(self, key: Key, x: torch.Tensor, indices: Any) -> Any:
        plan = self._plan(key, x.device)
        if self.key_reuse != "per-image":
            return plan
        if indices is None:
            numbers = np.arange(len(x), dtype=np.int64)
        else:
            numbers = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices)
            if (numbers.shape != (len(x),) or (numbers.size and numbers.dtype.kind not in "iu")
                    or (numbers.size and numbers.min() < 0)):
                raise ParameterError(f"indices must be {len(x)} non-negative integers (one per image), "
                                     f"got {numbers.dtype} {list(numbers.shape)}")
            numbers = numbers.astype(np.int64)
        return self.image_plan(plan, key, numbers, x.device)

    def _check_batch(self, x: torch.Tensor, key: Key, shape: Shape, what: str,
                     dtype: torch.dtype = torch.uint8) -> None:
        self.check_key(key)
        if not isinstance(x, torch.Tensor) or x.dtype != dtype or x.ndim != 4:
            got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            kind = str(dtype).removeprefix("torch.")
            raise ShapeError(f"{what} must be a {kind} tensor (N, C, H, W), got {got}")
        if tuple(x.shape[1:]) != tuple(shape):
            raise ShapeError(f"{what} have shape {tuple(x.shape[1:])} but the key was made for "
                             f"{tuple(shape)}: make a key for this shape or resize the images")

    def _plan(self, key: Key, device: torch.device) -> Any:
        per_device = self._plans.setdefault(key, {})
        if str(device) not in per_device:
            per_device[str(device)] = self.compile(key, device)
        return per_device[str(device)]


class BlockCipher(Cipher):
    """Base of the ciphers over M x M blocks: the ``block_size`` parameter and the shape check
    (H and W multiples of M).

    A subclass states its default in its own signature, ``__init__(self, block_size: int = 4)``,
    and calls ``super().__init__(block_size)``.
    """

    #: True when M must be even (proposed: its sub-blocks are M/2 x M/2).
    even_block_size: ClassVar[bool] = False

    def __init__(self, block_size: int, **params: Any) -> None:
        even = self.even_block_size
        block_size = parse_int_param("block_size", block_size, minimum=2 if even else 1, even=even)
        super().__init__(block_size=block_size, **params)
        self.block_size = block_size

    def check_shape(self, shape: Shape) -> None:
        super().check_shape(shape)
        self.check_block_divides(shape, self.block_size)


def parse_int_param(name: str, value: Any, *, minimum: int = 1, even: bool = False) -> int:
    """Validate an integer parameter given in code or as a command-line string."""
    try:
        number = int(value)
        if isinstance(value, bool) or (isinstance(value, float) and number != value):  # true is no size
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ParameterError(f"parameter {name} must be an integer, got {shown}") from None
    if number < minimum or (even and number % 2):
        need = f"an even integer >= {minimum}" if even else f"an integer >= {minimum}"
        raise ParameterError(f"parameter {name} must be {need}, got {number}")
    return number
