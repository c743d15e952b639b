"""Threat models and the view of a case that an attacker is allowed to see.

The harness builds a :class:`ThreatView` holding exactly what the attack's threat model
grants (docs/threat-models.md). The view has no field for the victim key or the victim's plain target
images, so an attack cannot reach them: ground truth goes only to the metrics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from .cipher import Cipher
from .errors import ParameterError
from .keys import Shape

#: name -> what it grants, in increasing strength.
THREAT_MODELS: dict[str, str] = {
    "coa": "victim ciphertexts only (the algorithm is public, the key is not)",
    "coa+public": "victim ciphertexts, plus the attacker's own public plain images",
    "kpa": "victim ciphertexts, public images, and (plain, cipher) pairs under the victim key",
    "cpa": "victim ciphertexts, public images, and an encryption oracle under the victim key",
    "model": "victim ciphertexts, public images, and the provider's trained model",
}


#: The seed's attacker: the cloud, which holds public images of its own. ``run``, ``bench`` and
#: ``check`` use it for an attack that supports it unless a threat model is asked for.
SEED_ATTACKER = "coa+public"


def default_threat(threat_models: tuple[str, ...]) -> str:
    """:data:`SEED_ATTACKER` when ``threat_models`` holds it, else the attack's own first."""
    return SEED_ATTACKER if SEED_ATTACKER in threat_models else threat_models[0]


def check_threat_model(name: str) -> str:
    if name not in THREAT_MODELS:
        raise ParameterError(f"unknown threat model '{name}': choose one of {', '.join(THREAT_MODELS)}")
    return name


@dataclass(frozen=True)
class ThreatView:
    """What crosses the wire to the attacker. Fields a threat model does not grant are None.

    Shapes: ``ciphertexts`` uint8 ``(N, C', H', W')``; ``public_images`` uint8 ``(P, C, H, W)``;
    ``known_pairs`` a (plain, cipher) tuple of uint8 batches under the victim key;
    ``training_ciphertexts`` uint8 ``(T, C', H', W')`` on the CPU: the provider's training images
    as the cloud receives them to train the protected classifier (the seed's setting: the
    attacker is that cloud), filled only for attacks that ask for them
    (``Attack.uses_training_ciphertexts``) since every threat model holds them.
    ``training_labels`` int64 ``(T,)`` on the CPU, filled with ``training_ciphertexts``: the class
    labels the provider sends with those images (the cloud trains the classifier on them);
    ``training_labels[i]`` is the label of ``training_ciphertexts[i]``. Never their plaintexts.
    ``data_id`` names the data this view was built from (dataset, role sizes, a digest of the
    public images) so that trained attack networks can be cached; it identifies, never carries.
    """

    threat_model: str
    cipher: Cipher
    plain_shape: Shape
    ciphertexts: torch.Tensor
    public_images: torch.Tensor | None = None
    public_labels: torch.Tensor | None = None
    known_pairs: tuple[torch.Tensor, torch.Tensor] | None = None
    oracle: Callable[[torch.Tensor], torch.Tensor] | None = None
    model: Any | None = None
    training_ciphertexts: torch.Tensor | None = None
    training_labels: torch.Tensor | None = None
    data_id: str | None = None

    @property
    def device(self) -> torch.device:
        return self.ciphertexts.device
