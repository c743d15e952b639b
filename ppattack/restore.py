"""Attack ciphertext files that any implementation of a cipher wrote (a real audit's input).

The attacker's view is built from files alone: the ciphertexts (lossless images of one size)
and a folder of the attacker's own public plain images of the same size (threat model
coa+public, or coa for attacks that take it). Nothing of ppattack's own encryption is used on
the victim side. With plain ``truth`` images (same file names) the restorations are scored and
the report files of ``ppattack run`` are written.

    result = restore_files("keyrec", "my-cipher", Path("ct"), Path("public"), Path("out"))
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from .attack import AttackResult, resolve_device
from .case import Case, RunConfig, build_case, resolve
from .errors import DataError, ParameterError, ShapeError
from .harness import RunResult, run_record
from .records import Accuracy, AttackRecord, Baseline, Control, DatasetRecord, Scores
from .file_io import (IMAGE_SUFFIXES, check_apart, check_placeable, files_below, lossy_format, read_image,
                      read_image_exact, staged_output, write_png)
from .lpips_metric import prepare as prepare_lpips
from .metrics import score
from .registry import ATTACKS, CIPHERS
from .report import RUN_FILES, write_run
from .views import files_view

#: The folder below the output folder that receives the report (with --truth).
REPORT_FOLDER = "report"
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
    files = files_below(folder, suffixes=IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{what} folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_batch(files: list[Path], what: str, *, exact: bool = False, as_displayed: bool = True) -> torch.Tensor:
    """Decode ``files`` (all one size) into a uint8 batch ``(N, 3, H, W)``.

    ``exact``: the files must hold exactly the pixels to use (ciphertexts, truth): a lossy
    format (JPEG, WebP; told by content, not by name) is refused, and so is anything
    :func:`~ppattack.file_io.read_image_exact` refuses (16-bit samples, transparency,
    animation). Otherwise (the attacker's own images) any image converts to RGB.
    ``as_displayed`` (exact reads): False for ciphertexts, read as stored (an EXIF orientation
    tag is not applied); the other images are plain, read as displayed."""
    if exact:
        for path in files:
            kind = lossy_format(path)
            if kind:
                raise DataError(f"{what} {path} is {kind} data, a lossy format: give the {what}s as PNG "
                                "(or another lossless format); a lossy copy does not hold the exact pixels")
    images = [read_image_exact(p, 3, as_displayed=as_displayed) if exact else read_image(p) for p in files]
    sizes = {tuple(image.shape[1:]) for image in images}
    if len(sizes) > 1:
        other = next(i for i, im in enumerate(images) if tuple(im.shape[1:]) != tuple(images[0].shape[1:]))
        raise ShapeError(f"{what} images have different sizes ({files[0].name} "
                         f"{'x'.join(map(str, images[0].shape[1:]))}, {files[other].name} "
                         f"{'x'.join(map(str, images[other].shape[1:]))}): give one size")
    return torch.stack(images)


def check_plain_apart(ciphertexts_dir: Path, public_dir: Path, truth_dir: Path | None) -> None:
    """Raise :class:`DataError` when a folder of plain images is or lies inside the ciphertexts
    folder, or the public folder holds it (compared resolved): the folder scans would read
    plain images as ciphertexts, or ciphertexts as public images (truth images are looked up
    by name, so a truth folder may hold the ciphertexts folder)."""
    ciphertexts = ciphertexts_dir.resolve()
    for what, folder, scanned in (("public", public_dir, True), ("truth", truth_dir, False)):
        where = folder.resolve() if folder is not None else None
        if where is not None and (where == ciphertexts or ciphertexts in where.parents
                                  or (scanned and where in ciphertexts.parents)):
            raise DataError(f"the {what} folder {folder} overlaps the ciphertexts folder {ciphertexts_dir}: "
                            f"the {what} images are plain images; give them in a folder apart from the ciphertexts")


def restore_files(attack_name: str, cipher_name: str, ciphertexts_dir: Path, public_dir: Path, out_dir: Path, *,
                  params: Mapping[str, Any] | None = None, truth_dir: Path | None = None, preset: str = "quick",
                  seed: int = 0, device: str = "auto", lpips_weights: str | None = None) -> RestoreResult:
    """Attack the ciphertext files and write the restorations to ``out_dir`` under the same
    relative names (as PNG), and with ``truth_dir`` the report to ``out_dir/report``.

    Every input and output name is checked before the attack runs; ``out_dir`` must lie apart
    from the input folders. The files are staged and appear together only when everything
    succeeded (:func:`~ppattack.file_io.staged_output`)."""
    started = time.time()
    check_apart(out_dir, {"ciphertexts": ciphertexts_dir, "public": public_dir, "truth": truth_dir})
    check_plain_apart(ciphertexts_dir, public_dir, truth_dir)
    attack_class = ATTACKS.get(attack_name)
    threat = next((t for t in FILE_THREATS if t in attack_class.threat_models), None)
    if threat is None:
        raise ParameterError(f"attack '{attack_name}' needs threat model {', '.join(attack_class.threat_models)}, "
                             "which files alone cannot grant: restore takes attacks under coa+public or coa")
    config = RunConfig(cipher=cipher_name, attack=attack_name, preset=preset, params=dict(params or {}),
                       device=device, seed=seed, threat=threat, accuracy=False, lpips_weights=lpips_weights)
    resolved = resolve(config)
    if CIPHERS.get(cipher_name).ciphertext_dtype != torch.uint8:
        raise ParameterError(f"cipher {cipher_name} makes non-image ciphertexts; restore reads image files")
    files = image_files(ciphertexts_dir, "ciphertexts")
    ciphertexts = read_batch(files, "ciphertext", exact=True, as_displayed=False)  # as stored
    shape = tuple(ciphertexts.shape[1:])
    run_device = resolve_device(device)
    # the cipher and the attack (seeded as `run` seeds it) of the case; the cipher takes the files' shape
    case = build_case(config, resolved, run_device, shape=shape)
    if tuple(case.cipher.encrypted_shape(shape)) != shape:
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
        truth = read_batch(truth_files, "truth", exact=True)
        if tuple(truth.shape[1:]) != shape:
            raise ShapeError(f"truth images are {truth.shape[2]}x{truth.shape[3]}, the ciphertexts {shape[1]}x{shape[2]}")
    names = [p.relative_to(ciphertexts_dir).with_suffix(".png") for p in files]
    if len(set(names)) != len(names):
        first = next(i for i, name in enumerate(names) if names.index(name) != i)
        raise DataError(f"ciphertexts {files[names.index(names[first])].name} and {files[first].name} differ "
                        f"only in their suffix and would be restored to one PNG: rename one")
    report_names: list[Path] = []
    if truth is not None:  # the report goes to out_dir/report: no restoration may go there
        clash = next((name for name in names if name.parts[0] == REPORT_FOLDER), None)
        if clash:
            raise DataError(f"the ciphertext {ciphertexts_dir / clash} would be restored into "
                            f"{out_dir / REPORT_FOLDER}, where the report goes: move it out of its folder "
                            f"'{REPORT_FOLDER}'")
        report_names = [Path(REPORT_FOLDER, name) for name in RUN_FILES]
    check_apart(out_dir, {"ciphertexts": ciphertexts_dir, "public": public_dir, "truth": truth_dir},
                names + report_names)
    check_placeable(out_dir, names + report_names)
    # a bad --lpips-weights fails now, not after the attack
    perceptual = prepare_lpips(config.lpips_weights, run_device) if truth is not None else None
    view = files_view(threat, case.cipher, shape, ciphertexts.to(run_device),
                      None if public is None else public.to(run_device))
    outcome = case.attack(view)  # recovered key material stays in its fields: no record takes it
    restored = outcome.images.cpu()

    result = None
    if truth is not None:
        result = scored_result(case, outcome, truth, ciphertexts, restored, started, perceptual)
    with staged_output(out_dir) as staging:
        for image, name in zip(restored, names):
            write_png(staging / name, image)
        if result is not None:
            write_run(result, staging / REPORT_FOLDER)
    return RestoreResult([out_dir / name for name in names], result)


def scored_result(case: Case, outcome: AttackResult, truth: torch.Tensor, ciphertexts: torch.Tensor,
                  restored: torch.Tensor, started: float, perceptual: Any) -> RunResult:
    """The record of a run (result.json's schema) for restored files scored against the truth
    (``perceptual``: :func:`~ppattack.lpips_metric.prepare`'s answer); the attack's recovered
    key, if any, is not scored (there is no key to score it against)."""
    attack = case.attack
    record = run_record(
        case.config, case.settings, case.cipher, case.shape, case.device, started=started, perceptual=perceptual,
        dataset=DatasetRecord("files", case.shape, 0,
                              {"targets": len(truth), "public": 0, "victim_train": 0, "test": 0}),
        attack=AttackRecord(attack.name, attack.threat_model, attack.params, outcome.facts,
                            outcome.train_seconds, outcome.attack_seconds),
        metrics=Scores.from_json(score(restored, truth, perceptual)),
        baseline=Baseline(Scores.from_json(score(ciphertexts, truth, perceptual))),
        accuracy=Accuracy.not_measured("restore attacks files; no classifier is trained"),
        control=Control.not_run("restore attacks given files; run `ppattack run --control` for the control"))
    return RunResult(record, truth, ciphertexts, restored)
