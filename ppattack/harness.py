"""The harness: one case (data, cipher, victim key) attacked under a threat model, then scored.

Following breaching's split, the case holds the ground truth and the attacker gets only a
:class:`ThreatView`; plaintexts and the key reach nothing but :func:`ppattack.metrics.score`.

    config = RunConfig(cipher="proposed", attack="fr")
    result = run(config)            # result.record: a RunRecord (ppattack.records)
    result.record.metrics.ssim.mean, result.record.to_json()   # a field; the result.json document
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

import torch

from .version import __version__
from .attack import Attack, resolve_device
from .learning.cache import tensor_digest
from .cipher import Cipher, parse_int_param
from .learning import classifier
from .learning.classifier import TRAIN_NUMBERS
from .data import Dataset, Roles, assign_roles, load_dataset
from .learning.distributed import init_from_env, main_first, world
from .errors import ParameterError, PPAttackError
from .images.image_set import ImageSet, image_buffer
from .keys import Key
from .solvers.keyscore import score_map, score_recovery
from .lpips_metric import prepare as prepare_lpips
from .metrics import conventions, score
from .params import accepted_parameters
from .records import (Accuracy, AttackRecord, Baseline, CipherRecord, ConfigRecord, Control, DatasetRecord,
                      Environment, RunRecord, Scores)
from .presets import get_preset
from .registry import ATTACKS, CIPHERS
from .threat import ThreatView, default_threat

log = logging.getLogger(__name__)
RESULT_SCHEMA_VERSION = 1
KNOWN_PAIRS = 8  # (plain, cipher) pairs the kpa threat model grants when neither the run nor the attack says
#: Mean SSIM (wang) an attack must reach on ``plain`` for its positive control to pass.
CONTROL_SSIM = 0.9


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


@dataclass(frozen=True)
class Resolved:
    """A config with the preset merged in and the parameters routed to their component."""

    settings: dict[str, Any]
    cipher_params: dict[str, Any]
    attack_params: dict[str, Any]


#: Preset values that must be positive integers (None: no limit, for the max_* values).
COUNTS = ("image_size", "block_size", "known_pairs", "targets", "max_train", "max_test", "classifier_batch")


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
    attack_accepts = set(accepted_parameters(ATTACKS.get(config.attack))) - {"budget", "seed", "device", "threat"}
    cipher_params: dict[str, Any] = {}
    attack_params: dict[str, Any] = {}
    for name, value in config.params.items():
        target, _, bare = name.rpartition(".")
        if target == "cipher" and bare in cipher_accepts:
            cipher_params[bare] = value
        elif target == "attack" and bare in attack_accepts:
            attack_params[bare] = value
        elif target:
            raise ParameterError(f"parameter '{name}' is not taken by the {target} "
                                 f"(cipher takes: {sorted(cipher_accepts)}; attack takes: {sorted(attack_accepts)})")
        elif name in settings or name in cipher_accepts or name in attack_accepts:
            if name in settings:
                settings[name] = value
            if name in cipher_accepts:
                cipher_params[name] = value
            if name in attack_accepts:
                attack_params[name] = value
        else:
            raise ParameterError(f"no preset value, cipher '{config.cipher}' or attack "
                                 f"'{config.attack}' takes parameter '{name}' (preset values: "
                                 f"{sorted(settings)})")
    for name in COUNTS:  # the harness's own numbers; the components check theirs
        if settings.get(name) is not None:
            settings[name] = parse_int_param(name, settings[name])
    if "block_size" in cipher_accepts:
        cipher_params.setdefault("block_size", settings["block_size"])
    return Resolved(settings, cipher_params, attack_params)


def memory_floor(image_size: int, targets: int, classifier_batch: int | None) -> int:
    """Bytes a run cannot do without at ``image_size``: the ``targets`` images decoded (uint8)
    and held as float32 three times (plain, ciphertext, restored), plus one float32 classifier
    batch when accuracy is measured. A floor, not an estimate: training needs more."""
    pixels = 3 * image_size * image_size
    return targets * pixels * (1 + 3 * 4) + (classifier_batch or 0) * pixels * 4


def device_memory(device: torch.device) -> int:
    """Bytes of memory on ``device`` (the GPU's total, or the machine's physical memory)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(image_size: int, targets: int, classifier_batch: int | None, device: torch.device) -> None:
    """Refuse (ParameterError) sizes whose tensors cannot fit, before any work."""
    need, have = memory_floor(image_size, targets, classifier_batch), device_memory(device)
    if need > have:
        batch = f" and a classifier batch of {classifier_batch}" if classifier_batch else ""
        raise ParameterError(f"image_size={image_size} with {targets} target image(s){batch} needs at least "
                             f"{need / 2 ** 30:.1f} GiB, more than the {have / 2 ** 30:.1f} GiB of {device.type} "
                             "memory: use a smaller image_size, targets (--limit) or classifier_batch")


def role_seed(seed: int, role: str) -> int:
    """The seed of one role in a run ("victim-key", "attack"), derived from the run's seed by
    SHA-256: a run stays reproducible from its seed, and the seed an attack receives tells it
    nothing about the seed of the victim key."""
    digest = hashlib.sha256(f"ppattack run seed|{role}|{int(seed)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 63 bits: any numpy seed or torch seed


def threat_view(threat_model: str, cipher: Cipher, key: Key, ciphertexts: torch.Tensor,
                roles: Roles, *, dataset: str = "unnamed", known_pairs: int = KNOWN_PAIRS,
                model: Any = None, training_ciphertexts: bool = False,
                public_count: int | None = None) -> ThreatView:
    """Build the attacker's view: exactly what ``threat_model`` grants (attacks.md).

    ``dataset`` names the data in the view's ``data_id``; ``known_pairs`` is how many
    (plain, cipher) pairs the kpa model grants (taken from the public images); ``model`` is
    what the model threat grants (:func:`provider_model`); ``training_ciphertexts`` adds the
    victim's encrypted training images (:func:`encrypted_training_images`), which every threat
    model holds; ``public_count`` caps the public images the view carries (the first ones; None:
    the whole public role), so that memory follows what the attack reads
    (:meth:`ppattack.attack.Attack.public_images_wanted`).
    """
    device = ciphertexts.device
    data_id = f"{dataset}|{tuple(key.shape)}|{threat_model}"
    # The attacker gets its own cipher object (the harness's caches compiled plans per key) and
    # copies of its images (slices would share storage with the victim's training images).
    public_cipher = type(cipher)(**cipher.params)
    extra: dict[str, Any] = {"data_id": data_id}
    if training_ciphertexts:
        extra["training_ciphertexts"] = encrypted_training_images(cipher, key, roles.victim_train, device)
        extra["training_labels"] = roles.victim_train_labels.clone()
    if threat_model == "coa":
        return ThreatView(threat_model, public_cipher, key.shape, ciphertexts, **extra)
    granted = roles.public[:public_count] if public_count is not None else roles.public
    public, labels = granted.tensor(device), granted.labels.to(device).clone()
    extra["data_id"] += f"|public={len(public)}:{tensor_digest(public, labels)}"
    # Per-image ciphers number the victim's images: the targets are 0..N-1, the known pairs
    # N..N+k-1, and every image the oracle encrypts takes the next unused number.
    first_free = len(ciphertexts)
    if threat_model == "kpa":
        known = public[:int(known_pairs)]
        numbers = torch.arange(len(known)) + first_free
        extra["known_pairs"] = (known, cipher.encrypt(known, key, indices=numbers))
    elif threat_model == "cpa":
        extra["oracle"] = _numbering_oracle(cipher, key, first_free, device)
    elif threat_model == "model":
        if model is None:
            raise ParameterError("the 'model' threat model needs the provider's model (see provider_model)")
        extra["model"] = model
    return ThreatView(threat_model, public_cipher, key.shape, ciphertexts, public, labels, **extra)


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


def key_recovery_scores(cipher: Cipher, key: Key, recovered: Any, recovered_map: Any) -> dict[str, float] | None:
    """Scores of recovered key material (part by part) and of a recovered map (by decryption);
    a map that decrypts exactly makes the recovery complete even when the material's parts
    differ from the key's (equivalent keys, e.g. le's flip and its complement)."""
    scores = None if recovered is None else score_recovery(cipher, key, recovered)
    if recovered_map is not None:
        by_map = score_map(cipher, key, recovered_map)
        complete = max(by_map["complete"], (scores or {}).get("complete", 0.0))
        scores = {**(scores or {}), **by_map, "complete": complete}
    return scores


def _numbering_oracle(cipher: Cipher, key: Key, first: int, device: torch.device):
    """The cpa encryption oracle: each query's images get fresh image numbers from ``first`` on."""
    issued = first

    def oracle(x: torch.Tensor) -> torch.Tensor:
        nonlocal issued
        numbers = torch.arange(len(x)) + issued
        issued += len(x)
        return cipher.encrypt(x.to(device), key, indices=numbers)

    return oracle


def provider_model(settings: Mapping[str, Any], cipher: Cipher, key: Key, roles: Roles,
                   num_classes: int, *, seed: int, device: torch.device) -> dict[str, Any]:
    """What the 'model' threat grants: ``{"model": m, "parent": p}``.

    ``m`` is the protected classifier the provider trained on its encrypted training images
    (the same cached network the accuracy measurement uses); ``p`` is the public pre-trained
    model it was fine-tuned from, or None when it was trained from scratch.
    """
    from .learning.classifier import build_classifier, configs_from_settings, fit

    model_config, train_config = configs_from_settings(settings, cipher, roles.victim_train.shape, num_classes)
    trained = fit(cipher, key, roles.victim_train, model_config, train_config, seed=seed, device=device)
    parent = build_classifier(model_config).to(device).eval() if model_config.pretrained else None
    return {"model": trained.model, "parent": parent}


def environment(device: torch.device, processes: int = 1) -> Environment:
    """The device, its name and the library versions of this process; ``processes``: the ranks."""
    return Environment(device=str(device),
                       device_name=(torch.cuda.get_device_name(device) if device.type == "cuda"
                                    else platform.processor() or platform.machine()),
                       torch=torch.__version__, cuda=torch.version.cuda, python=platform.python_version(),
                       ppattack=__version__, processes=processes)


def cipher_record(cipher: Cipher, shape: tuple[int, int, int]) -> CipherRecord:
    """The card of ``cipher`` at the image ``shape`` (C, H, W)."""
    return CipherRecord(cipher.name, cipher.params, cipher.key_space_bits(shape), cipher.separable_bits(shape),
                        cipher.key_reuse, cipher.paper)


def config_record(config: RunConfig, settings: Mapping[str, Any], device: torch.device) -> ConfigRecord:
    """``config`` as result.json records it: with its resolved ``settings`` and ``device``."""
    return ConfigRecord(**{**asdict(config), "params": dict(config.params), "device": str(device)},
                        settings=settings)


@dataclass(frozen=True)
class RunResult:
    """The record of a run plus the images it was scored on (uint8, CPU)."""

    record: RunRecord
    plain: torch.Tensor
    encrypted: torch.Tensor
    restored: torch.Tensor

    @property
    def document(self) -> dict[str, Any]:
        """The result.json document: ``record.to_json()``."""
        return self.record.to_json()


@dataclass(frozen=True)
class Victim:
    """The ground truth of a case: the cipher, the victim's key, the data and its roles, and the
    targets' plain images and ciphertexts (on the run's device). Attacks never see it; the
    harness builds their view from it (:func:`threat_view`) and scores against it."""

    cipher: Cipher
    key: Key
    dataset: Dataset
    roles: Roles
    plain: torch.Tensor
    ciphertexts: torch.Tensor


def victim_case(cipher: Cipher, shape: tuple[int, int, int], dataset: Dataset, roles: Roles, *,
                seed: int, device: torch.device) -> Victim:
    """The victim of a run with ``seed``: a key drawn from the run's victim-key seed, and the
    target images encrypted with it."""
    key = cipher.generate_key(shape, seed=role_seed(seed, "victim-key"))
    plain = roles.targets.tensor(device)
    return Victim(cipher, key, dataset, roles, plain, cipher.encrypt(plain, key))


@dataclass(frozen=True)
class Evaluation:
    """An attack evaluated on a victim: its record (facts, timings in seconds, key-recovery
    scores), the scores of its restorations, and the restorations (uint8, on the device)."""

    attack: AttackRecord
    metrics: Scores
    restored: torch.Tensor


def known_pairs_granted(settings: Mapping[str, Any], attack: Attack, cipher: Cipher,
                        shape: tuple[int, int, int]) -> int:
    """How many (plain, cipher) pairs a kpa view of ``cipher`` at ``shape`` holds: the run's
    ``known_pairs`` when given, else what ``attack`` asks for
    (:meth:`ppattack.attack.Attack.known_pairs_wanted`, shown a copy of the cipher without the
    victim's key), else :data:`KNOWN_PAIRS`. Other threat models grant none (0)."""
    if attack.threat_model != "kpa":
        return 0
    if settings.get("known_pairs") is not None:
        return int(settings["known_pairs"])
    wanted = attack.known_pairs_wanted(type(cipher)(**cipher.params), shape)
    return KNOWN_PAIRS if wanted is None else int(wanted)


def evaluate_attack(victim: Victim, attack: Attack, settings: Mapping[str, Any], perceptual: Any, *,
                    model: Any = None) -> Evaluation:
    """Run ``attack`` on the view its threat model grants of ``victim`` and score it.

    ``settings``: the run's resolved settings (dataset name, known pairs:
    :func:`known_pairs_granted`); ``perceptual``: the LPIPS metric or why it is unavailable
    (:func:`ppattack.lpips_metric.prepare`); ``model``: what the model threat grants
    (:func:`provider_model`). Recovered key material is scored here and goes no further: the
    record holds its scores only.
    """
    known_pairs = known_pairs_granted(settings, attack, victim.cipher, tuple(victim.key.shape))
    view = threat_view(attack.threat_model, victim.cipher, victim.key, victim.ciphertexts, victim.roles,
                       dataset=str(settings["dataset"]), known_pairs=known_pairs,
                       model=model, training_ciphertexts=attack.uses_training_ciphertexts,
                       public_count=attack.public_images_wanted())
    log.info("attacking %d %s ciphertexts with %s (%s)", len(victim.plain), victim.cipher.name, attack.name,
             attack.threat_model)
    outcome = attack(view)
    key_recovery = key_recovery_scores(victim.cipher, victim.key, outcome.recovered_key, outcome.recovered_map)
    record = AttackRecord(attack.name, attack.threat_model, attack.params, outcome.facts,
                          outcome.train_seconds, outcome.attack_seconds, key_recovery)
    return Evaluation(record, Scores.from_json(score(outcome.images, victim.plain, perceptual)), outcome.images)


def baseline_scores(victim: Victim, perceptual: Any) -> Baseline:
    """The no-attack baseline: the ciphertexts scored as if they were restorations, when they
    are 8-bit images of the plain shape."""
    plain, ciphertexts = victim.plain, victim.ciphertexts
    if tuple(ciphertexts.shape) != tuple(plain.shape):
        return Baseline(None, f"ciphertexts have shape {tuple(ciphertexts.shape[1:])}, not the plain shape")
    if ciphertexts.dtype != torch.uint8:
        return Baseline(None, f"ciphertexts are {str(ciphertexts.dtype).removeprefix('torch.')}, not 8-bit images")
    return Baseline(Scores.from_json(score(ciphertexts, plain, perceptual)))


def measure_accuracy(settings: Mapping[str, Any], victim: Victim, *, seed: int, device: torch.device) -> Accuracy:
    """The two classifiers of a case: a plain model and the protected model (trained on the
    victim's encrypted training images), each scored on the whole test split. It depends on the
    cipher, the key, the data and the settings only, not on any attack."""
    return Accuracy.from_json(classifier.measure_accuracy(
        settings, victim.cipher, victim.key, victim.roles.victim_train, victim.dataset.test,
        len(victim.dataset.classes), seed=seed, device=device))


def accuracy_inputs(config: RunConfig) -> str:
    """What the classifiers of ``config``'s case depend on, as text (a dict key): the cipher and
    its parameters, the resolved settings, the data, the seed and the device; never the attack.
    Cases with equal inputs have equal :func:`measure_accuracy` results (a bench measures once)."""
    resolved = resolve(config)
    return json.dumps({"cipher": config.cipher, "cipher_params": resolved.cipher_params,
                       "settings": resolved.settings, "data_root": config.data_root, "limit": config.limit,
                       "seed": config.seed, "device": config.device, "accuracy": config.accuracy},
                      sort_keys=True, default=str)


def run(config: RunConfig, *, accuracy: Accuracy | None = None) -> RunResult:
    """Run one case end to end and return its result (nothing is written).

    The case composes three pipelines: the attack (:func:`evaluate_attack`), the provider's
    model when the threat model grants it (:func:`provider_model`) and the classifiers
    (:func:`measure_accuracy`), then the positive control when asked (:func:`positive_control`).
    ``accuracy``: the classifiers' measurement of this case's cipher, key and data when already
    made (a bench measures it once per cipher); None: measured here when ``config.accuracy``.
    """
    started = time.time()
    init_from_env()  # under torchrun: join the process group (training is then data parallel)
    resolved = resolve(config)
    settings = resolved.settings
    device = resolve_device(config.device)
    if device.type == "cuda":  # every network of a run sees one input shape: let cuDNN pick its kernels
        torch.backends.cudnn.benchmark = True
    cipher: Cipher = CIPHERS.create(config.cipher, **resolved.cipher_params)
    attack = create_case_attack(config, resolved, device)
    size = int(settings["image_size"])
    shape = (3, size, size)
    cipher.check_shape(shape)  # fail before loading any data
    batch = settings.get("classifier_batch") if config.accuracy else None
    check_memory(size, 1, batch, device)  # before loading: the dataset's size is not known yet
    perceptual = prepare_lpips(config.lpips_weights, device)  # LPIPS, or why it is unavailable

    dataset, roles = case_data(config, settings, attack)
    check_memory(size, len(roles.targets), batch, device)  # the targets there are
    victim = victim_case(cipher, shape, dataset, roles, seed=config.seed, device=device)
    model = (provider_model(settings, cipher, victim.key, roles, len(dataset.classes), seed=config.seed,
                            device=device) if attack.threat_model == "model" else None)
    evaluation = evaluate_attack(victim, attack, settings, perceptual, model=model)
    baseline = baseline_scores(victim, perceptual)
    if accuracy is None:  # victim-train images train the classifiers; the whole test split scores them
        accuracy = (measure_accuracy(settings, victim, seed=config.seed, device=device) if config.accuracy
                    else Accuracy.not_measured("skipped (--no-accuracy)"))
    images = (victim.plain.cpu(), victim.ciphertexts.cpu(), evaluation.restored.cpu())
    # the control attacks again: free this case's networks and device tensors first
    attack_record, metrics = evaluation.attack, evaluation.metrics
    del victim, evaluation, model, attack
    if device.type == "cuda":
        torch.cuda.empty_cache()
    control = positive_control(config, resolved, cipher, metrics, dataset, roles, perceptual, device)
    record = RunRecord(
        schema_version=RESULT_SCHEMA_VERSION, ppattack_version=__version__, git_commit=_git_commit(),
        config=config_record(config, settings, device),
        dataset=DatasetRecord(settings["dataset"], shape, len(dataset.classes),
                              {**roles.sizes(), "test": len(dataset.test)}),
        cipher=cipher_record(cipher, shape), attack=attack_record, metrics=metrics, baseline=baseline,
        metric_conventions=conventions(perceptual), accuracy=accuracy,
        environment=environment(device, world().size), control=control, seconds=time.time() - started)
    return RunResult(record, *images)


def case_data(config: RunConfig, settings: Mapping[str, Any], attack: Attack) -> tuple[Dataset, Roles]:
    """The dataset and roles of a case, with every image the run will read decoded into the
    cache and nothing else (:func:`prepare_reads`). Under torchrun rank 0 decodes first and the
    other ranks then map its cache."""
    dataset = load_dataset(settings["dataset"], int(settings["image_size"]), data_root=config.data_root,
                           max_train=settings.get("max_train"), max_test=settings.get("max_test"))
    roles = assign_roles(dataset, settings.get("targets") if config.limit is None else config.limit)
    prepare_reads(dataset, roles, attack, config.accuracy)
    return dataset, roles


def prepare_reads(dataset: Dataset, roles: Roles, attack: Attack, accuracy: bool) -> None:
    """Decode into the cache the images a case with ``attack`` reads (:func:`_roles_read`),
    and the test split when the classifiers are scored; rank 0 first under torchrun."""
    with main_first():
        for used in _roles_read(roles, attack, accuracy, attack.public_images_wanted()):
            used.prepare()
        if accuracy:  # the whole test split scores the classifiers
            dataset.test.prepare()


def prepare_data(config: RunConfig) -> None:
    """Decode into the cache what ``run(config)`` will read (a bench does this for every cell
    while its processes are still one group, before the cells spread over them)."""
    resolved = resolve(config)
    case_data(config, resolved.settings, create_case_attack(config, resolved, torch.device("cpu")))


def create_case_attack(config: RunConfig, resolved: Resolved, device: torch.device) -> Attack:
    """The attack of a case: its registered class with the run's attack budget (the preset's
    name unless an audit's budget says otherwise), threat model (the attack's default when none
    is given) and parameters, seeded from the run's seed."""
    threat = config.threat if config.threat is not None else default_threat(ATTACKS.get(config.attack).threat_models)
    return ATTACKS.create(config.attack, budget=config.attack_budget or config.preset, seed=role_seed(config.seed, "attack"),
                          device=device, threat=threat, **resolved.attack_params)


def _roles_read(roles: Roles, attack: Attack, accuracy: bool, public_count: int | None) -> list[ImageSet]:
    """The image sets this run reads: the targets, the public images the attack asks for, and
    the victim's training images when a classifier trains or the attack reads their ciphertexts."""
    used = [roles.targets]
    if attack.threat_model != "coa":
        used.append(roles.public[:public_count] if public_count is not None else roles.public)
    if accuracy or attack.uses_training_ciphertexts or attack.threat_model == "model":
        used.append(roles.victim_train)
    return used


def control_config(config: RunConfig, resolved: Resolved, cipher: Cipher) -> RunConfig:
    """The positive control of ``config``: the same attack, data, preset, seed and threat model
    on ``plain``. Preset values and attack parameters carry over, cipher parameters do not; an
    attack that takes a block size gets the cipher's (``plain`` has none), so that the control
    trains the same network that attacked the cipher."""
    params: dict[str, Any] = {name: value for name, value in config.params.items()
                              if "." not in name and name in resolved.settings}
    params.update({f"attack.{name}": value for name, value in resolved.attack_params.items()})
    if (cipher.block_size and "attack.block_size" not in params
            and "block_size" in accepted_parameters(ATTACKS.get(config.attack))):
        params["attack.block_size"] = cipher.block_size
    return replace(config, cipher="plain", params=params, accuracy=False, control=False)


def evaluate_control(control: RunConfig, dataset: Dataset, roles: Roles, perceptual: Any,
                     device: torch.device) -> Evaluation:
    """The attack of ``control`` (a :func:`control_config`) evaluated on ``plain``, on the same
    data and roles as the case it controls, with a victim key drawn from the same seed."""
    resolved = resolve(control)
    settings = resolved.settings
    plain_cipher: Cipher = CIPHERS.create(control.cipher, **resolved.cipher_params)
    attack = create_case_attack(control, resolved, device)
    size = int(settings["image_size"])
    shape = (3, size, size)
    plain_cipher.check_shape(shape)
    prepare_reads(dataset, roles, attack, accuracy=False)
    victim = victim_case(plain_cipher, shape, dataset, roles, seed=control.seed, device=device)
    model = (provider_model(settings, plain_cipher, victim.key, roles, len(dataset.classes), seed=control.seed,
                            device=device) if attack.threat_model == "model" else None)
    return evaluate_attack(victim, attack, settings, perceptual, model=model)


def positive_control(config: RunConfig, resolved: Resolved, cipher: Cipher, metrics: Scores,
                     dataset: Dataset, roles: Roles, perceptual: Any, device: torch.device) -> Control:
    """result.json's ``control``: the attack's mean SSIM on ``plain`` and whether it reaches
    :data:`CONTROL_SSIM` (attacks.md: an attack that cannot restore unencrypted images proves
    nothing by failing on a cipher). ``metrics``: the case's own scores, which are the control's
    when the cipher is ``plain``; otherwise the control is a second evaluation on ``plain``
    (:func:`evaluate_control`)."""
    if not config.control:
        return Control.not_run("not requested (--control runs the same attack on plain)")
    if cipher.name == "plain":
        params, seconds = dict(config.params), 0.0
    else:
        control = control_config(config, resolved, cipher)
        log.info("positive control: %s on plain", config.attack)
        started = time.time()
        try:
            metrics = evaluate_control(control, dataset, roles, perceptual, device).metrics
        except PPAttackError as e:  # an attack that cannot take plain: say so, keep the result
            return Control.not_run(f"the control on plain failed: {e}")
        params, seconds = dict(control.params), time.time() - started
    ssim = float(metrics.ssim.mean)
    return Control(True, params=params, ssim=ssim, psnr=metrics.psnr.mean, threshold=CONTROL_SSIM,
                   passed=ssim >= CONTROL_SSIM, seconds=seconds)


def _git_commit() -> str | None:
    import subprocess
    from pathlib import Path

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None
