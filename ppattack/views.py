"""The attacker's view of a case: what each threat model grants, granted in one place.

:func:`grant` is the one function that fills a :class:`~ppattack.threat.ThreatView`; the view
of a harness case (:func:`threat_view`: the victim's key, data and roles) and the view of
ciphertext files (:func:`files_view`: ``ppattack restore``) both go through it.

    view = threat_view("kpa", cipher, key, ciphertexts, roles, known_pairs=8)
    view = files_view("coa+public", cipher, (3, 32, 32), ciphertexts, public)
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from .cipher import Cipher
from .data import Roles
from .errors import ParameterError
from .images.image_set import ImageSet, image_buffer
from .keys import Key
from .learning.classifier import TRAIN_NUMBERS
from .runtime.digest import tensor_digest
from .threat import ThreatView

KNOWN_PAIRS = 8  # (plain, cipher) pairs the kpa threat model grants when neither the run nor the attack says
#: What a view of ciphertext files names its data in ``data_id``.
FILES = "files"


def grant(threat_model: str, cipher: Cipher, plain_shape: tuple[int, ...], ciphertexts: torch.Tensor, *,
          source: str, public: torch.Tensor | None = None, public_labels: torch.Tensor | None = None,
          key: Key | None = None, known_pairs: int = KNOWN_PAIRS, model: Any = None,
          training: tuple[torch.Tensor, torch.Tensor] | None = None) -> ThreatView:
    """The view that ``threat_model`` grants (docs/threat-models.md), and nothing more.

    ``ciphertexts``: the targets' ciphertexts (on the device the attack runs on); ``public``:
    the attacker's own plain images (ignored under coa), with their labels when known (None:
    images that came without labels); ``key``: the victim's key, needed only by the models that
    encrypt under it (kpa's ``known_pairs`` pairs taken from the public images, cpa's oracle);
    ``model``: what the model threat grants; ``training``: the victim's encrypted training
    images and their labels, which every threat model holds (None: the attack does not ask).
    ``source`` names the data in the view's ``data_id``. The attacker gets its own cipher
    object: the harness's caches compiled plans per key.
    """
    public_cipher = type(cipher)(**cipher.params)
    extra: dict[str, Any] = {"data_id": f"{source}|{tuple(plain_shape)}|{threat_model}"}
    if training is not None:
        extra["training_ciphertexts"], extra["training_labels"] = training
    if threat_model == "coa":
        return ThreatView(threat_model, public_cipher, plain_shape, ciphertexts, **extra)
    if public is None:
        raise ParameterError(f"the '{threat_model}' threat model grants public images, and none were given")
    extra["data_id"] += f"|public={len(public)}:" + tensor_digest(
        *(t for t in (public, public_labels) if t is not None))
    # Per-image ciphers number the victim's images: the targets are 0..N-1, the known pairs
    # N..N+k-1, and every image the oracle encrypts takes the next unused number.
    first_free = len(ciphertexts)
    if threat_model in ("kpa", "cpa") and key is None:
        raise ParameterError(f"the '{threat_model}' threat model encrypts under the victim's key, "
                             "which a view of files does not hold")
    if threat_model == "kpa":
        known = public[:int(known_pairs)]
        numbers = torch.arange(len(known)) + first_free
        extra["known_pairs"] = (known, cipher.encrypt(known, key, indices=numbers))
    elif threat_model == "cpa":
        extra["oracle"] = _numbering_oracle(cipher, key, first_free, ciphertexts.device)
    elif threat_model == "model":
        if model is None:
            raise ParameterError("the 'model' threat model needs the provider's model (see provider_model)")
        extra["model"] = model
    return ThreatView(threat_model, public_cipher, plain_shape, ciphertexts, public, public_labels, **extra)


def threat_view(threat_model: str, cipher: Cipher, key: Key, ciphertexts: torch.Tensor,
                roles: Roles, *, dataset: str = "unnamed", known_pairs: int = KNOWN_PAIRS,
                model: Any = None, training_ciphertexts: bool = False,
                public_count: int | None = None) -> ThreatView:
    """The attacker's view of a harness case (:func:`grant`) under ``threat_model``.

    ``dataset`` names the data in the view's ``data_id``; ``known_pairs`` is how many
    (plain, cipher) pairs the kpa model grants (taken from the public images); ``model`` is
    what the model threat grants (:func:`ppattack.harness.provider_model`);
    ``training_ciphertexts`` adds the victim's encrypted training images
    (:func:`encrypted_training_images`), which every threat model holds; ``public_count`` caps
    the public images the view carries (the first ones; None: the whole public role), so that
    memory follows what the attack reads (:meth:`ppattack.attack.Attack.public_images_wanted`).
    """
    device = ciphertexts.device
    training = ((encrypted_training_images(cipher, key, roles.victim_train, device),
                 roles.victim_train_labels.clone()) if training_ciphertexts else None)
    public = labels = None
    if threat_model != "coa":  # copies: slices would share storage with the victim's training images
        granted = roles.public[:public_count] if public_count is not None else roles.public
        public, labels = granted.tensor(device), granted.labels.to(device).clone()
    return grant(threat_model, cipher, key.shape, ciphertexts, source=dataset, public=public,
                 public_labels=labels, key=key, known_pairs=known_pairs, model=model, training=training)


def files_view(threat_model: str, cipher: Cipher, plain_shape: tuple[int, int, int], ciphertexts: torch.Tensor,
               public: torch.Tensor | None) -> ThreatView:
    """The attacker's view of ciphertext files (:func:`grant`): the ciphertexts, and under
    coa+public the attacker's own plain images, which come without labels. Only the models
    that files alone can grant (coa, coa+public) take no key."""
    return grant(threat_model, cipher, plain_shape, ciphertexts, source=FILES, public=public)


def encrypted_training_images(cipher: Cipher, key: Key, images: ImageSet, device: torch.device,
                              chunk: int = 1024) -> torch.Tensor:
    """The victim's training images as the cloud receives them: uint8 on the CPU, image ``i``
    encrypted as number ``TRAIN_NUMBERS + i`` (as the protected classifier's training does),
    in chunks so that a large training set never sits on the device whole, nor in memory whole
    (a large result is backed by a temporary file: :func:`ppattack.images.image_set.image_buffer`)."""
    out = None
    for i in range(0, len(images), chunk):
        part = cipher.encrypt(images[i:i + chunk].tensor(device), key,
                              indices=torch.arange(i, min(i + chunk, len(images))) + TRAIN_NUMBERS).cpu()
        if out is None:  # a large set goes to a file-backed buffer (image_buffer), never whole in memory
            out = (image_buffer((len(images), *part.shape[1:])) if part.dtype == torch.uint8
                   else torch.empty((len(images), *part.shape[1:]), dtype=part.dtype))
        out[i:i + len(part)] = part
    return out if out is not None else torch.empty((0, *images.shape), dtype=torch.uint8)


def _numbering_oracle(cipher: Cipher, key: Key, first: int,
                      device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """The cpa encryption oracle: each query's images get fresh image numbers from ``first`` on."""
    issued = first

    def oracle(x: torch.Tensor) -> torch.Tensor:
        nonlocal issued
        numbers = torch.arange(len(x)) + issued
        issued += len(x)
        return cipher.encrypt(x.to(device), key, indices=numbers)

    return oracle
