"""The attack base class: the ceremony around an attack's math.

A subclass sets ``name``, ``paper`` and ``threat_models`` (the first is the default of the
class; the harness prefers coa+public, :func:`ppattack.threat.default_threat`), declares its
parameters once, as keyword arguments of its constructor whose defaults are the real ones (the
paper's setting), lists in its ``budgets`` table what each budget changes, and implements
``fit`` (optional training on what the view grants) and ``reconstruct`` (ciphertexts ->
plain-shaped uint8 images). The base class stores and records the parameters, and owns seeds,
the device, timing and no-grad; one call runs it::

    attack = ppattack.create_attack("fr", budget="quick")
    result = attack(view)          # view: a ThreatView built by the harness
    result.images                  # uint8 (N, C, H, W) reconstructions

A subclass's constructor stores its parameters with one call::

    budgets = {"quick": {"steps": 200}, "cifar": {"steps": 3000}, "paper": {}}

    def __init__(self, *, steps: int = 10_000, lr: float = 1e-3, **common: Any):
        super().__init__(**common)
        self.store_params(locals())   # steps: 200 at quick, 10,000 at paper, 7 if given steps=7

Each parameter takes, in this order: the value the caller passed (by name, even one equal to
the default), else the budget's override, else the signature's default. None is an ordinary
value (e.g. ``steps=None``: train by ``epochs``), never "unset": which values the caller passed
is noted at construction (:meth:`Attack.__new__`). (:func:`ppattack.create_attack`, and so
``--param``, drops None values: there None leaves a parameter to the budget.) A subclass that wants another default for a
parent's parameter declares the parameter again (or overrides it in its budgets); a value it
passes to ``super().__init__`` counts as a default, which a budget overrides.
"""
from __future__ import annotations

import inspect
import os
import random
import time
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import numpy as np
import torch

from .cipher import Cipher
from .errors import ParameterError
from .params import accepted_parameters
from .runtime.distributed import launched
from .threat import ThreatView, check_threat_model


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU; ``"cpu"`` and ``"cuda[:N]"`` are passed to torch.

    Under torchrun, ``"auto"`` and ``"cuda"`` mean this rank's GPU, ``cuda:$LOCAL_RANK``; an
    explicit ``cuda:N`` there is refused (every rank would share one GPU, which NCCL rejects), as
    is an index beyond the GPUs present.
    """
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except RuntimeError:
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):  # torch knows mps, meta, ...: ppattack does not
        raise ParameterError(f"unknown device {device!r}: use auto, cpu or cuda")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device cuda was requested but CUDA is not available: use --device cpu")
    if resolved.type == "cuda" and resolved.index is not None and launched():
        raise ParameterError(f"device {device} under torchrun would put every rank on one GPU: give "
                             "--device cuda (each rank takes cuda:LOCAL_RANK)")
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if launched() else 0)
    if resolved.type == "cuda" and resolved.index >= torch.cuda.device_count():
        raise ParameterError(f"device {resolved} does not exist: this machine has "
                             f"{torch.cuda.device_count()} GPU(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return resolved


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)



def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a CUDA device; a no-op elsewhere)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)

@dataclass
class AttackResult:
    """Reconstructions (uint8, plain shape) plus attack-specific facts and timings (seconds).

    ``facts`` are JSON values that result.json records. Recovered key material goes to its own
    fields, never to ``facts``: ``recovered_key`` (the cipher's key parts, ``{part: values}``, or
    a list of candidates) and ``recovered_map`` (a piece map that decrypts,
    :mod:`ppattack.solvers.keyscore`). The harness scores them against the victim's key; no
    record or file holds them.
    """

    images: torch.Tensor
    facts: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = 0.0
    attack_seconds: float = 0.0
    recovered_key: Any = field(default=None, repr=False)
    recovered_map: Any = field(default=None, repr=False)


#: The base class's own constructor arguments: not among an attack's declared parameters
#: (``params`` records the budget, threat and seed itself; the device is no parameter).
COMMON_ARGUMENTS = ("budget", "threat", "seed", "device")


def typed(value: Any, annotation: Any) -> Any:
    """``value`` converted to a parameter's annotated type when that is ``int``, ``float``,
    ``bool`` or ``str`` (alone or ``| None``); None and values of other annotations (e.g.
    ``int | float | None``) are kept as given."""
    types = [t for t in (typing.get_args(annotation) or (annotation,)) if t is not type(None)]
    if value is None or len(types) != 1 or types[0] not in (int, float, bool, str):
        return value
    if types[0] is bool:
        return truth_value(value)
    return types[0](value)


def truth_value(value: Any) -> bool:
    """A boolean parameter's value: a bool, 0 or 1, or the text true / false in any case
    (``bool("false")`` would be True); anything else is a ValueError."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, (bool, int, float)) and value in (0, 1):
        return bool(value)
    raise ValueError(f"expected true or false, got {value!r}")


class Attack:
    """Base class of all attacks. Subclasses set ``name``, ``paper`` and ``threat_models``."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    threat_models: ClassVar[tuple[str, ...]] = ("coa",)
    #: budget name -> the parameters that budget changes, with their values there (only those
    #: that differ from the constructor's defaults; ``"paper": {}`` when the defaults are the
    #: paper's setting). A run preset picks the budget of its name (``--preset quick``: budget
    #: ``quick``). An attack with a table refuses a budget it does not name unless every
    #: parameter some budget overrides is passed.
    budgets: ClassVar[dict[str, dict[str, Any]]] = {}
    #: True: the harness adds the victim's encrypted training images to the view
    #: (``ThreatView.training_ciphertexts``); they cost an encryption pass and memory.
    uses_training_ciphertexts: ClassVar[bool] = False

    def __new__(cls, *args: Any, **given: Any) -> Attack:
        """A new attack that notes the names of the keyword arguments its caller passed, so that
        :meth:`store_params` tells a value passed from a default (both may be equal)."""
        attack = super().__new__(cls)
        attack._passed = frozenset(given)
        return attack

    def __init__(self, *, budget: str = "quick", threat: str | None = None, seed: int = 0,
                 device: str | torch.device = "auto"):
        threat = self.threat_models[0] if threat is None else check_threat_model(threat)
        if threat not in self.threat_models:
            raise ParameterError(f"attack '{self.name}' supports threat models "
                                 f"{', '.join(self.threat_models)}, not '{threat}'")
        self.budget = budget
        self.threat_model = threat
        self.seed = int(seed)
        self.device = resolve_device(device)
        self._fit_facts: dict[str, Any] = {}

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    @classmethod
    def declared_params(cls) -> dict[str, inspect.Parameter]:
        """The attack's parameters, by name: the keyword arguments its constructors accept
        (:func:`ppattack.params.accepted_parameters`), the base classes' first, in signature
        order, less the base class's own ``budget``, ``threat``, ``seed`` and ``device``."""
        return {name: p for name, p in accepted_parameters(cls).items() if name not in COMMON_ARGUMENTS}

    def store_params(self, given: Mapping[str, Any]) -> None:
        """Store the parameters a constructor was given (its ``locals()``) as attributes of the
        same names, converted to their annotated types (:func:`typed`): the value the caller
        passed, else this budget's override, else the signature's default. A budget that the
        ``budgets`` table does not name is an error that says which parameter to pass, unless
        the caller passed every parameter that some budget overrides."""
        overridden = {name for values in self.budgets.values() for name in values}
        for name, parameter in self.declared_params().items():
            if name not in given:  # another constructor's parameter (a base or a subclass)
                continue
            value = given[name]
            if name not in self._passed and name in overridden:
                if self.budget not in self.budgets:
                    raise ParameterError(f"attack '{self.name}' has no '{self.budget}' budget value for "
                                         f"{name}: pass --param {name}=...")
                value = self.budgets[self.budget].get(name, value)
            setattr(self, name, typed(value, parameter.annotation))

    def public_images_wanted(self) -> int | None:
        """How many public images this attack reads (it reads the first ones), or None for all
        that its threat model grants. The harness hands over, and decodes, no more than that."""
        return None

    def known_pairs_wanted(self, cipher: Cipher, shape: tuple[int, int, int]) -> int | None:
        """How many (plain, cipher) pairs this attack needs under the kpa threat model against
        ``cipher`` (a copy without the victim's key) on images of ``shape``, or None for the
        harness's default. A run's ``known_pairs`` setting, when given, overrides it."""
        return None

    @property
    def params(self) -> dict[str, Any]:
        """The resolved parameters, recorded in result.json and in cache identities: the
        attack's budget (``budget``), threat model and seed, then every declared parameter
        (:meth:`declared_params`) in signature order."""
        return {"budget": self.budget, "threat": self.threat_model, "seed": self.seed,
                **{name: getattr(self, name) for name in self.declared_params()}}

    # -- the math (subclasses) -----------------------------------------------------------------
    def fit(self, view: ThreatView) -> None:
        """Learn whatever the attack needs from the view (default: nothing)."""

    def reconstruct(self, view: ThreatView) -> torch.Tensor | AttackResult:
        """Restore ``view.ciphertexts`` to uint8 images of ``view.plain_shape``."""
        raise NotImplementedError

    # -- the ceremony --------------------------------------------------------------------------
    def __call__(self, view: ThreatView) -> AttackResult:
        if view.threat_model != self.threat_model:
            raise ParameterError(f"attack '{self.name}' runs under '{self.threat_model}' but was "
                                 f"given a '{view.threat_model}' view")
        seed_everything(self.seed)
        self._fit_facts = {}
        start = time.perf_counter()
        self.fit(view)
        synchronize(self.device)  # CUDA runs asynchronously: time the work, not its launch
        trained = time.perf_counter()
        with torch.no_grad():
            out = self.reconstruct(view)
        synchronize(self.device)
        done = time.perf_counter()
        result = out if isinstance(out, AttackResult) else AttackResult(out)
        result.facts = {**self._fit_facts, **result.facts}
        expected = (view.ciphertexts.shape[0], *view.plain_shape)
        if result.images.dtype != torch.uint8 or tuple(result.images.shape) != expected:
            raise RuntimeError(f"attack '{self.name}' returned {result.images.dtype} "
                               f"{tuple(result.images.shape)}, expected uint8 {expected}")
        result.train_seconds = trained - start
        result.attack_seconds = done - trained
        return result
