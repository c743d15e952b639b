"""The harness: one case (data, cipher, victim key) attacked under a threat model, then scored.

Following breaching's split, the case holds the ground truth and the attacker gets only a
:class:`ThreatView`; plaintexts and the key reach nothing but :func:`ppattack.metrics.score`.

    config = RunConfig(cipher="proposed", attack="fr")
    result = run(config)            # result.record: a RunRecord (ppattack.records)
    result.record.metrics.ssim.mean, result.record.to_json()   # a field; the result.json document
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterator, Mapping

import torch

from .version import __version__
from .attack import Attack, resolve_device
# the case's configuration, parts and view are built in ppattack.case and ppattack.views; their
# names stay importable from here
from .case import (COUNTS, Case, Resolved, RunConfig, Victim, build_case, case_view, known_pairs_granted,  # noqa: F401
                   resolve, role_seed, victim_case)
from .cipher import Cipher
from .learning import classifier
from .data import Dataset, Roles, assign_roles, load_dataset
from .runtime.distributed import init_from_env, launched, main_first, world
from .runtime.side_process import SideProcess, SideProcessLost, can_split_threads
from .errors import MemoryNeedError, PPAttackError
from .images.image_set import ImageSet
from .keys import Key
from .solvers.keyscore import score_map, score_recovery
from .lpips_metric import prepare as prepare_lpips
from .metrics import conventions, score
from .params import accepted_parameters
from .records import (Accuracy, AttackRecord, Baseline, CipherRecord, ConfigRecord, Control, DatasetRecord,
                      Environment, RunRecord, Scores)
from .registry import ATTACKS
from .views import KNOWN_PAIRS, encrypted_training_images, threat_view  # noqa: F401

log = logging.getLogger(__name__)
RESULT_SCHEMA_VERSION = 1
#: Mean SSIM (wang) an attack must reach on ``plain`` for its positive control to pass.
CONTROL_SSIM = 0.9


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
    """Refuse (MemoryNeedError) sizes whose tensors cannot fit, before any work."""
    need, have = memory_floor(image_size, targets, classifier_batch), device_memory(device)
    if need > have:
        batch = f" and a classifier batch of {classifier_batch}" if classifier_batch else ""
        size = image_size if image_size < 10 ** 20 else f"(an integer of {len(str(image_size))} digits)"
        gib = need >> 30  # an integer: a huge size overflows a float
        needed = f"{need / 2 ** 30:.1f}" if gib < 10 ** 15 else f"10^{len(str(gib)) - 1}"
        raise MemoryNeedError(f"image_size={size} with {targets} target image(s){batch} needs at least "
                             f"{needed} GiB, more than the {have / 2 ** 30:.1f} GiB of {device.type} "
                             "memory: use a smaller image_size, targets (--limit) or classifier_batch")


def check_run_memory(config: RunConfig) -> None:
    """Refuse (MemoryNeedError) ``config`` when one target image at its ``image_size`` cannot
    fit in its device's memory: the check :func:`run` makes first, before any data is read."""
    resolved = resolve(config)
    batch = resolved.settings.get("classifier_batch") if config.accuracy else None
    check_memory(int(resolved.settings["image_size"]), 1, batch, resolve_device(config.device))


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


def run_record(config: RunConfig, settings: Mapping[str, Any], cipher: Cipher, shape: tuple[int, int, int],
               device: torch.device, *, started: float, perceptual: Any, dataset: DatasetRecord,
               attack: AttackRecord, metrics: Scores, baseline: Baseline, accuracy: Accuracy, control: Control,
               processes: int = 1) -> RunRecord:
    """The record (result.json) of a case of ``config`` (``settings``: its resolved settings)
    with ``cipher`` at the plain ``shape`` on ``device``, started at ``started`` (``time.time()``)
    and scored with ``perceptual`` (:func:`ppattack.lpips_metric.prepare`'s answer): what
    ``run`` and ``restore`` both write. ``processes``: the ranks that ran it."""
    return RunRecord(
        schema_version=RESULT_SCHEMA_VERSION, ppattack_version=__version__, git_commit=_git_commit(),
        config=config_record(config, settings, device), dataset=dataset, cipher=cipher_record(cipher, shape),
        attack=attack, metrics=metrics, baseline=baseline, metric_conventions=conventions(perceptual),
        accuracy=accuracy, environment=environment(device, processes), control=control,
        seconds=time.time() - started)


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
class Evaluation:
    """An attack evaluated on a victim: its record (facts, timings in seconds, key-recovery
    scores), the scores of its restorations, and the restorations (uint8, on the device)."""

    attack: AttackRecord
    metrics: Scores
    restored: torch.Tensor


def evaluate_attack(case: Case, victim: Victim, perceptual: Any, *, model: Any = None) -> Evaluation:
    """Run the case's attack on the view its threat model grants of ``victim``
    (:func:`~ppattack.case.case_view`) and score it.

    ``perceptual``: the LPIPS metric or why it is unavailable
    (:func:`ppattack.lpips_metric.prepare`); ``model``: what the model threat grants
    (:func:`provider_model`). Recovered key material is scored here and goes no further: the
    record holds its scores only.
    """
    attack = case.attack
    view = case_view(case, victim, model=model)
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


def run(config: RunConfig, *, accuracy: Accuracy | None = None, control_beside: bool = False) -> RunResult:
    """Run one case end to end and return its result (nothing is written).

    The case composes three pipelines: the attack (:func:`evaluate_attack`), the provider's
    model when the threat model grants it (:func:`provider_model`) and the classifiers
    (:func:`measure_accuracy`), then the positive control when asked (:func:`positive_control`).
    ``accuracy``: the classifiers' measurement of this case's cipher, key and data when already
    made (a bench measures it once per cipher); None: measured here when ``config.accuracy``.
    ``control_beside``: evaluate the control in a second process while this one attacks, the
    CPU threads split between them (:func:`beside_control`; ``audit --budget cpu`` asks for it).
    """
    started = time.time()
    init_from_env()  # under torchrun: join the process group (training is then data parallel)
    resolved = resolve(config)
    device = resolve_device(config.device)
    if device.type == "cuda":  # every network of a run sees one input shape: let cuDNN pick its kernels
        torch.backends.cudnn.benchmark = True
    case = build_case(config, resolved, device)  # fails before loading any data
    settings, shape, cipher = case.settings, case.shape, case.cipher
    size = shape[-1]
    batch = settings.get("classifier_batch") if config.accuracy else None
    check_run_memory(config)  # before loading: the dataset's size is not known yet
    perceptual = prepare_lpips(config.lpips_weights, device)  # LPIPS, or why it is unavailable

    dataset, roles = case_data(config, settings, case.attack)
    check_memory(size, len(roles.targets), batch, device)  # the targets there are
    victim = victim_case(case, dataset, roles)
    with beside_control(config, resolved, cipher, device, wanted=control_beside) as side:
        model = (provider_model(settings, cipher, victim.key, roles, len(dataset.classes), seed=config.seed,
                                device=device) if case.attack.threat_model == "model" else None)
        evaluation = evaluate_attack(case, victim, perceptual, model=model)
        baseline = baseline_scores(victim, perceptual)
        if accuracy is None:  # victim-train images train the classifiers; the whole test split scores them
            accuracy = (measure_accuracy(settings, victim, seed=config.seed, device=device) if config.accuracy
                        else Accuracy.not_measured("skipped (--no-accuracy)"))
        images = (victim.plain.cpu(), victim.ciphertexts.cpu(), evaluation.restored.cpu())
        # the control attacks again: free this case's networks and device tensors first
        attack_record, metrics = evaluation.attack, evaluation.metrics
        del victim, evaluation, model, case
        if device.type == "cuda":
            torch.cuda.empty_cache()
        control = positive_control(config, resolved, cipher, metrics, dataset, roles, perceptual, device, side)
    record = run_record(config, settings, cipher, shape, device, started=started, perceptual=perceptual,
                        dataset=DatasetRecord(settings["dataset"], shape, len(dataset.classes),
                                              {**roles.sizes(), "test": len(dataset.test)}),
                        attack=attack_record, metrics=metrics, baseline=baseline, accuracy=accuracy,
                        control=control, processes=world().size)
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
    case_data(config, resolved.settings, build_case(config, resolved, torch.device("cpu")).attack)


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
    case = build_case(control, resolve(control), device)
    prepare_reads(dataset, roles, case.attack, accuracy=False)
    victim = victim_case(case, dataset, roles)
    model = (provider_model(case.settings, case.cipher, victim.key, roles, len(dataset.classes), seed=control.seed,
                            device=device) if case.attack.threat_model == "model" else None)
    return evaluate_attack(case, victim, perceptual, model=model)


def evaluate_control_apart(control: RunConfig) -> Scores:
    """:func:`evaluate_control` in a process of its own (:func:`beside_control`): the control's
    scores, on the data and roles that ``control``'s settings and limit give, as the case's."""
    resolved = resolve(control)
    device = resolve_device(control.device)
    case = build_case(control, resolved, device)
    dataset, roles = case_data(control, case.settings, case.attack)
    perceptual = prepare_lpips(control.lpips_weights, device)
    return evaluate_control(control, dataset, roles, perceptual, device).metrics


@contextlib.contextmanager
def beside_control(config: RunConfig, resolved: Resolved, cipher: Cipher, device: torch.device, *,
                   wanted: bool) -> Iterator[SideProcess | None]:
    """The positive control of ``config`` evaluated in a second process for the duration of the
    block, when ``wanted`` and it can help: a control is asked of a cipher other than ``plain``,
    on the CPU, outside torchrun, with two or more threads to split. Yields the side process
    (:func:`positive_control` takes its result) or None (the control then runs after the attack)."""
    if not (wanted and config.control and cipher.name != "plain" and device.type == "cpu"
            and not launched() and can_split_threads()):
        yield None
        return
    control = control_config(config, resolved, cipher)
    log.info("positive control: %s on plain, in a second process", config.attack)
    with SideProcess(evaluate_control_apart, (control,)) as side:
        yield side


def side_scores(side: SideProcess | None) -> Scores | None:
    """The control's scores from ``side``; None when there is no side process or it was lost
    (a warning: the control then runs in this process)."""
    if side is None:
        return None
    try:
        return side.result()
    except SideProcessLost as e:
        log.warning("%s: the positive control runs after the attack instead", e)
        return None


def positive_control(config: RunConfig, resolved: Resolved, cipher: Cipher, metrics: Scores,
                     dataset: Dataset, roles: Roles, perceptual: Any, device: torch.device,
                     side: SideProcess | None = None) -> Control:
    """result.json's ``control``: the attack's mean SSIM on ``plain`` and whether it reaches
    :data:`CONTROL_SSIM` (docs/attacks.md, "Positive controls": an attack that cannot restore
    unencrypted images proves nothing by failing on a cipher). ``metrics``: the case's own
    scores, which are the control's when the cipher is ``plain``; otherwise the control is a
    second evaluation on ``plain`` (:func:`evaluate_control`), or the one ``side`` made
    (:func:`beside_control`)."""
    if not config.control:
        return Control.not_run("not requested (--control runs the same attack on plain)")
    if cipher.name == "plain":
        params, seconds = dict(config.params), 0.0
    else:
        control = control_config(config, resolved, cipher)
        started = time.time()
        try:
            metrics = side_scores(side)
            if metrics is None:
                log.info("positive control: %s on plain", config.attack)
                metrics = evaluate_control(control, dataset, roles, perceptual, device).metrics
        except PPAttackError as e:  # an attack that cannot take plain: say so, keep the result
            return Control.not_run(f"the control on plain failed: {e}")
        params = dict(control.params)
        seconds = time.time() - started if side is None or side.seconds is None else side.seconds
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
