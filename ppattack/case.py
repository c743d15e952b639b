"""A case: one run's configuration resolved into its parts, built in one place.

``ppattack run``, its positive control and ``ppattack restore`` all build their cipher and
attack with :func:`build_case` (the attack seeded by one derivation of the run's seed,
:func:`role_seed`), draw the victim's key with :func:`victim_case` and grant the attacker's
view with :func:`case_view` (:mod:`ppattack.views`), so that one seed gives one attack and one
key wherever a case is built.

    config = RunConfig(cipher="proposed", attack="fr", seed=7)
    case = build_case(config, resolve(config), torch.device("cpu"))   # cipher, attack, shape
    victim = victim_case(case, dataset, roles)         # the key and the targets' ciphertexts
    outcome = case.attack(case_view(case, victim))
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

import torch

from .attack import Attack
from .cipher import Cipher, parse_int_param
from .data import Dataset, Roles
from .errors import ParameterError
from .keys import Key
from .params import accepted_parameters
from .presets import get_preset
from .registry import ATTACKS, CIPHERS
from .threat import ThreatView, default_threat
from .views import KNOWN_PAIRS, threat_view


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on. ``params`` holds user ``K=V`` overrides (see :func:`resolve`)."""

    cipher: str
    attack: str
    dataset: str | None = None
    data_root: str | None = None
    preset: str = "quick"
    params: Mapping[str, Any] = field(default_factory=dict)
    device: str = "auto"
    seed: int = 0
    limit: int | None = None
    accuracy: bool = True
    threat: str | None = None  # None: coa+public when the attack supports it (threat.default_threat)
    control: bool = False  # also run the positive control (the same attack on plain)
    lpips_weights: str | None = None  # AlexNet trunk for LPIPS (None: torch hub cache)
    attack_budget: str | None = None  # the attack's budget (None: the preset's name; audit --budget sets it)


def config_options(config: RunConfig, names: Sequence[str] | None = None) -> dict[str, Any]:
    """The fields ``names`` of ``config``, in that order, and always ``params``: the run options
    that bench.json and audit.json record of their template (the fields the command line set).
    By default the fields other than cipher and attack that differ from RunConfig's defaults.

        >>> config_options(RunConfig(cipher="*", attack="*", seed=3))
        {'seed': 3, 'params': {}}
    """
    if names is None:
        default = RunConfig(cipher=config.cipher, attack=config.attack)
        names = [item.name for item in fields(RunConfig) if getattr(config, item.name) != getattr(default, item.name)]
    return {**{name: getattr(config, name) for name in names}, "params": dict(config.params)}


@dataclass(frozen=True)
class Resolved:
    """A config with the preset merged in and the parameters routed to their component."""

    settings: dict[str, Any]
    cipher_params: dict[str, Any]
    attack_params: dict[str, Any]


#: Preset values that must be positive integers (None: no limit, for the max_* values).
COUNTS = ("image_size", "block_size", "known_pairs", "targets", "max_train", "max_test", "classifier_batch")
#: The counts that may be None (no limit; known_pairs: as many as the attack asks for).
UNBOUNDED = ("known_pairs", "max_train", "max_test")


def resolve(config: RunConfig) -> Resolved:
    """Merge preset and user values (user wins) and route each ``K=V`` to whoever takes it.

    ``cipher.K=V`` / ``attack.K=V`` address one component; a bare ``K`` overrides the preset
    value of that name if there is one, else goes to the cipher and/or attack accepting it.
    """
    settings = get_preset(config.preset)
    settings.setdefault("known_pairs", None)  # None: as many as the attack asks for (known_pairs_granted)
    if config.dataset is not None:
        settings["dataset"] = config.dataset
    cipher_accepts = set(accepted_parameters(CIPHERS.get(config.cipher)))
    attack_accepts = set(ATTACKS.get(config.attack).declared_params())
    cipher_params: dict[str, Any] = {}
    attack_params: dict[str, Any] = {}
    spelled: dict[tuple[str, str], str] = {}  # (component, parameter) -> the name that set it

    def give(component: str, params: dict[str, Any], bare: str, value: Any, name: str) -> None:
        """Set ``params[bare]``; two spellings (``K``, ``cipher.K``) with different values are
        an error, since the last one given would win."""
        earlier = spelled.setdefault((component, bare), name)
        if earlier != name and params[bare] != value:
            raise ParameterError(f"the {component}'s parameter '{bare}' is given twice, as '{earlier}' and "
                                 f"'{name}', with different values: give it once")
        params[bare] = value

    for name, value in config.params.items():
        target, _, bare = name.rpartition(".")
        if target == "cipher" and bare in cipher_accepts:
            give("cipher", cipher_params, bare, value, name)
        elif target == "attack" and bare in attack_accepts:
            give("attack", attack_params, bare, value, name)
        elif target in ("cipher", "attack"):
            raise ParameterError(f"parameter '{name}' is not taken by the {target} "
                                 f"(cipher takes: {sorted(cipher_accepts)}; attack takes: {sorted(attack_accepts)})")
        elif target:
            raise ParameterError(f"parameter '{name}': a prefix is 'cipher.' or 'attack.' only, then one name "
                                 f"(cipher takes: {sorted(cipher_accepts)}; attack takes: {sorted(attack_accepts)})")
        elif name in settings or name in cipher_accepts or name in attack_accepts:
            if name in settings:
                settings[name] = value
            if name in cipher_accepts:
                give("cipher", cipher_params, name, value, name)
            if name in attack_accepts:
                give("attack", attack_params, name, value, name)
        else:
            raise ParameterError(f"no preset value, cipher '{config.cipher}' or attack "
                                 f"'{config.attack}' takes parameter '{name}' (preset values: "
                                 f"{sorted(settings)})")
    for name in COUNTS:  # the harness's own numbers; the components check theirs
        if settings.get(name) is not None or name not in UNBOUNDED:  # image_size=null is no size
            settings[name] = parse_int_param(name, settings.get(name))
    if "block_size" in cipher_accepts:
        cipher_params.setdefault("block_size", settings["block_size"])
    return Resolved(settings, cipher_params, attack_params)


def role_seed(seed: int, role: str) -> int:
    """The seed of one role in a run ("victim-key", "attack"), derived from the run's seed by
    SHA-256: a run stays reproducible from its seed, and the seed an attack receives tells it
    nothing about the seed of the victim key."""
    digest = hashlib.sha256(f"ppattack run seed|{role}|{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 63 bits: any numpy seed or torch seed


@dataclass(frozen=True)
class Case:
    """The parts of a case that hold no data: the configuration and its resolution, the cipher,
    the attack (seeded with ``role_seed(config.seed, "attack")``), the plain image shape
    ``(C, H, W)`` the cipher was checked to take, and the device the attack runs on."""

    config: RunConfig
    resolved: Resolved
    cipher: Cipher
    attack: Attack
    shape: tuple[int, int, int]
    device: torch.device

    @property
    def settings(self) -> dict[str, Any]:
        """The resolved settings (preset values with the run's overrides)."""
        return self.resolved.settings


def build_case(config: RunConfig, resolved: Resolved, device: torch.device, *,
               shape: tuple[int, int, int] | None = None) -> Case:
    """The case of ``config`` (``resolved``: :func:`resolve`'s answer for it) on ``device``: its cipher, and its attack with the run's attack
    budget (the preset's name unless an audit's budget says otherwise), threat model (the
    attack's default when none is given), parameters and seed (:func:`role_seed`).

    ``shape``: the plain image shape (None: the settings' ``image_size``, three channels).
    Raises ParameterError or ShapeError before any data is read when a component refuses its
    parameters or the cipher cannot take ``shape``."""
    cipher: Cipher = CIPHERS.create(config.cipher, **resolved.cipher_params)
    threat = config.threat if config.threat is not None else default_threat(ATTACKS.get(config.attack).threat_models)
    attack: Attack = ATTACKS.create(config.attack, budget=config.attack_budget or config.preset,
                                    seed=role_seed(config.seed, "attack"), device=device, threat=threat,
                                    **resolved.attack_params)
    if shape is None:
        size = int(resolved.settings["image_size"])
        shape = (3, size, size)
    cipher.check_shape(shape)
    return Case(config, resolved, cipher, attack, tuple(shape), device)


@dataclass(frozen=True)
class Victim:
    """The ground truth of a case: the cipher, the victim's key, the data and its roles, and the
    targets' plain images and ciphertexts (on the run's device). Attacks never see it; the
    harness grants their view of it (:func:`case_view`) and scores against it."""

    cipher: Cipher
    key: Key
    dataset: Dataset
    roles: Roles
    plain: torch.Tensor
    ciphertexts: torch.Tensor


def victim_case(case: Case, dataset: Dataset, roles: Roles) -> Victim:
    """The victim of ``case``: a key drawn from the run's victim-key seed (:func:`role_seed`),
    and the target images encrypted with it on the case's device."""
    key = case.cipher.generate_key(case.shape, seed=role_seed(case.config.seed, "victim-key"))
    plain = roles.targets.tensor(case.device)
    return Victim(case.cipher, key, dataset, roles, plain, case.cipher.encrypt(plain, key))


def known_pairs_granted(settings: Mapping[str, Any], attack: Attack, cipher: Cipher,
                        shape: tuple[int, int, int]) -> int:
    """How many (plain, cipher) pairs a kpa view of ``cipher`` at ``shape`` holds: the run's
    ``known_pairs`` when given, else what ``attack`` asks for
    (:meth:`ppattack.attack.Attack.known_pairs_wanted`, shown a copy of the cipher without the
    victim's key), else :data:`~ppattack.views.KNOWN_PAIRS`. Other threat models grant none (0)."""
    if attack.threat_model != "kpa":
        return 0
    if settings.get("known_pairs") is not None:
        return int(settings["known_pairs"])
    wanted = attack.known_pairs_wanted(type(cipher)(**cipher.params), shape)
    return KNOWN_PAIRS if wanted is None else int(wanted)


def case_view(case: Case, victim: Victim, *, model: Any = None) -> ThreatView:
    """The view that the case's attack's threat model grants of ``victim``
    (:func:`ppattack.views.threat_view`): the known pairs it is owed
    (:func:`known_pairs_granted`), the training ciphertexts when it reads them, as many public
    images as it asks for; ``model``: what the model threat grants."""
    attack = case.attack
    known_pairs = known_pairs_granted(case.settings, attack, victim.cipher, tuple(victim.key.shape))
    return threat_view(attack.threat_model, victim.cipher, victim.key, victim.ciphertexts, victim.roles,
                       dataset=str(case.settings["dataset"]), known_pairs=known_pairs, model=model,
                       training_ciphertexts=attack.uses_training_ciphertexts,
                       public_count=attack.public_images_wanted())
