"""Attack ciphertext files that any implementation of a cipher wrote (a real audit's input).

The attacker's view is built from files alone: the ciphertexts (lossless images of one size)
and a folder of the attacker's own public plain images of the same size (threat model
coa+public, or coa for attacks that take it). Nothing of ppattack's own encryption is used on
the victim side. With plain ``truth`` images (same file names) the restorations are scored and
the report files of ``ppattack run`` are written.

    result = restore_files("keyrec", "proposed", Path("ct"), Path("public"), Path("out"))
"""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from .version import __version__
from .attack import AttackResult, resolve_device
from .learning.cache import tensor_digest
from .errors import DataError, ParameterError, ShapeError
from .harness import (RESULT_SCHEMA_VERSION, RunConfig, RunResult, _git_commit, cipher_record, config_record,
                      environment, resolve)
from .records import Accuracy, AttackRecord, Baseline, Control, DatasetRecord, RunRecord, Scores
from .file_io import IMAGE_SUFFIXES, read_image, write_png
from .lpips_metric import prepare as prepare_lpips
from .metrics import conventions, score
from .registry import ATTACKS, CIPHERS
from .report import write_run
from .threat import ThreatView

#: Suffixes of formats that may be lossy: a ciphertext that went through one is not the ciphertext.
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp")
#: Threat models whose view files alone can build, strongest first.
FILE_THREATS = ("coa+public", "coa")


@dataclass(frozen=True)
class RestoreResult:
    """The restored files, and the scored result when truth images were given."""

    written: list[Path]
    result: RunResult | None


def image_files(folder: Path, what: str) -> list[Path]:
    """The image files directly or below ``folder``, sorted by their path inside it."""
    if not folder.is_dir():
        raise DataError(f"{what} folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{what} folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_batch(files: list[Path], what: str, *, lossless: bool = False) -> torch.Tensor:
    """Decode ``files`` (all one size) into a uint8 batch ``(N, 3, H, W)``."""
    if lossless:
        lossy = [p for p in files if p.suffix.lower() in LOSSY_SUFFIXES]
        if lossy:
            raise DataError(f"{what} {lossy[0]} is in a lossy format ({lossy[0].suffix}): give the "
                            "ciphertexts as PNG (or another lossless format); a lossy copy is not the ciphertext")
    images = [read_image(p) for p in files]
    sizes = {tuple(image.shape[1:]) for image in images}
    if len(sizes) > 1:
        first = next(p for p, im in zip(files, images) if tuple(im.shape[1:]) != tuple(images[0].shape[1:]))
        raise ShapeError(f"{what} images have different sizes ({files[0].name} "
                         f"{'x'.join(map(str, images[0].shape[1:]))}, {first.name} "
                         f"{'x'.join(map(str, read_image(first).shape[1:]))}): give one size")
    return torch.stack(images)


def restore_files(attack_name: str, cipher_name: str, ciphertexts_dir: Path, public_dir: Path, out_dir: Path, *,
                  params: Mapping[str, Any] | None = None, truth_dir: Path | None = None, preset: str = "quick",
                  seed: int = 0, device: str = "auto", lpips_weights: str | None = None) -> RestoreResult:
    """Attack the ciphertext files and write the restorations to ``out_dir`` under the same
    relative names (as PNG); every input is checked before anything is written."""
    started = time.time()
    attack_class = ATTACKS.get(attack_name)
    threat = next((t for t in FILE_THREATS if t in attack_class.threat_models), None)
    if threat is None:
        raise ParameterError(f"attack '{attack_name}' needs threat model {', '.join(attack_class.threat_models)}, "
                             "which files alone cannot grant: restore takes attacks under coa+public or coa")
    config = RunConfig(cipher=cipher_name, attack=attack_name, preset=preset, params=dict(params or {}),
                       device=device, seed=seed, threat=threat, accuracy=False, lpips_weights=lpips_weights)
    resolved = resolve(config)
    cipher = CIPHERS.create(cipher_name, **resolved.cipher_params)
    if cipher.ciphertext_dtype != torch.uint8:
        raise ParameterError(f"cipher {cipher_name} makes non-image ciphertexts; restore reads image files")
    files = image_files(ciphertexts_dir, "ciphertexts")
    ciphertexts = read_batch(files, "ciphertext", lossless=True)
    shape = tuple(ciphertexts.shape[1:])
    cipher.check_shape(shape)
    if tuple(cipher.encrypted_shape(shape)) != shape:
        raise ShapeError(f"cipher {cipher_name} changes the image shape; restore takes ciphers whose "
                         "ciphertexts have the plain shape")
    public = None
    if threat == "coa+public":
        public = read_batch(image_files(public_dir, "public"), "public")
        if tuple(public.shape[1:]) != shape:
            raise ShapeError(f"public images are {public.shape[2]}x{public.shape[3]} but the ciphertexts "
                             f"{shape[1]}x{shape[2]}: resize the public images to the ciphertexts' size")
    truth = None
    if truth_dir is not None:
        truth_files = [truth_dir / p.relative_to(ciphertexts_dir) for p in files]
        missing = [p for p in truth_files if not p.is_file()]
        if missing:
            raise DataError(f"no truth image {missing[0]} for ciphertext {files[truth_files.index(missing[0])]}: "
                            "give the plain images under the ciphertexts' names")
        truth = read_batch(truth_files, "truth", lossless=True)
        if tuple(truth.shape[1:]) != shape:
            raise ShapeError(f"truth images are {truth.shape[2]}x{truth.shape[3]}, the ciphertexts {shape[1]}x{shape[2]}")
    targets = [out_dir / p.relative_to(ciphertexts_dir).with_suffix(".png") for p in files]
    if len(set(targets)) != len(targets):
        raise DataError("two ciphertexts differ only in their suffix and would be restored to one PNG: rename one")

    run_device = resolve_device(device)
    attack = ATTACKS.create(attack_name, budget=preset, seed=seed, device=run_device, threat=threat,
                            **resolved.attack_params)
    data_id = f"restore|{tuple(shape)}|{threat}|" + (tensor_digest(public) if public is not None else "-")
    labels = None if public is None else torch.zeros(len(public), dtype=torch.long, device=run_device)
    view = ThreatView(threat, type(cipher)(**cipher.params), shape, ciphertexts.to(run_device),
                      None if public is None else public.to(run_device), labels, data_id=data_id)
    outcome = attack(view)  # recovered key material stays in its fields: no record takes it
    restored = outcome.images.cpu()

    # Stage every file, then move them into place together.
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".ppattack-staging-", dir=out_dir))
    try:
        staged = [(write_png(staging / target.relative_to(out_dir), image), target)
                  for image, target in zip(restored, targets)]
        for path, target in staged:
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()
        raise
    shutil.rmtree(staging, ignore_errors=True)
    result = None
    if truth is not None:
        result = scored_result(config, resolved.settings, cipher, attack, outcome, truth, ciphertexts, restored,
                               started, run_device)
        write_run(result, out_dir / "report")
    return RestoreResult(targets, result)


def scored_result(config: RunConfig, settings: dict[str, Any], cipher, attack, outcome: AttackResult,
                  truth: torch.Tensor, ciphertexts: torch.Tensor, restored: torch.Tensor, started: float,
                  device: torch.device) -> RunResult:
    """The record of a run (result.json's schema) for restored files scored against the truth;
    the attack's recovered key, if any, is not scored (there is no key to score it against)."""
    perceptual = prepare_lpips(config.lpips_weights, device)
    shape = tuple(truth.shape[1:])
    record = RunRecord(
        schema_version=RESULT_SCHEMA_VERSION, ppattack_version=__version__, git_commit=_git_commit(),
        config=config_record(config, settings, device),
        dataset=DatasetRecord("files", shape, 0, {"targets": len(truth), "public": 0, "victim_train": 0, "test": 0}),
        cipher=cipher_record(cipher, shape),
        attack=AttackRecord(attack.name, attack.threat_model, attack.params, outcome.facts,
                            outcome.train_seconds, outcome.attack_seconds),
        metrics=Scores.from_json(score(restored, truth, perceptual)),
        baseline=Baseline(Scores.from_json(score(ciphertexts, truth, perceptual))),
        metric_conventions=conventions(perceptual),
        accuracy=Accuracy.not_measured("restore attacks files; no classifier is trained"),
        environment=environment(device),
        control=Control.not_run("restore attacks given files; run `ppattack run --control` for the control"),
        seconds=time.time() - started)
    return RunResult(record, truth, ciphertexts, restored)
