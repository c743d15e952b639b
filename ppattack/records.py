"""Typed, frozen records of a run's result: what crosses module boundaries instead of a dict.

The harness builds a :class:`RunRecord`; report, cli, bench, audit, check and restore read its
fields; ``to_json()`` writes it as the result.json document at the edge (``schemas/result.schema.json``)
and ``from_json()`` reads such a document back: generic over the fields (:mod:`ppattack.record_json`,
a key per field, in order) except where result.json is not one key per field (:class:`Baseline`,
:class:`Control`, :class:`RunRecord`). A recovered key is never a field of any record
here: the attack's record holds only the scores of the recovery (:class:`AttackRecord`).

    record = run(RunConfig(cipher="proposed", attack="fr")).record
    record.metrics.ssim.mean, record.accuracy.protected_model_on_encrypted, record.control.passed
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .metrics import METRICS
from .record_json import from_json, omitted_if_none, read_each, read_with, spread, to_json

#: One summary statistic as result.json holds it: a float, "inf"/"-inf" (JSON has no infinity)
#: or None (no images, or a std over infinite values).
Statistic = float | str | None


@dataclass(frozen=True)
class Summary:
    """One metric over the target images: mean, median, std and every image's value, in the
    metric's unit (SSIM: unitless in [-1, 1]; PSNR: dB; LPIPS: unitless distance)."""

    mean: Statistic
    median: Statistic
    std: Statistic
    values: tuple[float | str, ...] = field(metadata=read_each())

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Summary:
        return from_json(cls, document)


@dataclass(frozen=True)
class MirrorSummary(Summary):
    """SSIM (wang) up to a left-right mirror (:func:`ppattack.metrics.ssim_up_to_mirror`): the
    summary of every image's SSIM in the one orientation, as restored or all mirrored, whose
    mean is higher, and ``mirrored``: whether that is the mirrored one."""

    mirrored: bool

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> MirrorSummary:
        return from_json(cls, document)


def read_summaries(document: Mapping[str, Any]) -> dict[str, Summary | None]:
    """The summary of every metric of the table in a scores object (a metric the document lacks
    reads None; one up to a mirror is a :class:`MirrorSummary`)."""
    summaries: dict[str, Summary | None] = {}
    for metric in METRICS:
        summary = document.get(metric.name)
        reader = MirrorSummary if metric.up_to_mirror else Summary
        summaries[metric.name] = None if summary is None else reader.from_json(summary)
    return summaries


@dataclass(frozen=True)
class Scores:
    """Images scored against the plain images (:func:`ppattack.metrics.score`): the summary of
    each metric of :data:`ppattack.metrics.METRICS` by name, None where it was not measured
    (LPIPS without its network, ``lpips_unavailable`` then says why; a metric newer than the
    result.json read). ``scores["psnr"]`` reads one; the properties name the ones code reads."""

    summaries: Mapping[str, Summary | None] = field(metadata=spread(read_summaries))
    lpips_unavailable: str | None = None

    def __getitem__(self, name: str) -> Summary | None:
        return self.summaries.get(name)

    @property
    def ssim(self) -> Summary:
        return self.summaries["ssim"]

    @property
    def ssim_up_to_mirror(self) -> MirrorSummary | None:
        """None only in a result.json written before it was measured."""
        return self.summaries.get("ssim_up_to_mirror")

    @property
    def ssim_skimage_legacy(self) -> Summary:
        return self.summaries["ssim_skimage_legacy"]

    @property
    def psnr(self) -> Summary:
        return self.summaries["psnr"]

    @property
    def lpips(self) -> Summary | None:
        return self.summaries.get("lpips")

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Scores:
        return from_json(cls, document)


@dataclass(frozen=True)
class Baseline:
    """The no-attack baseline: the ciphertexts themselves scored against the plain images, or,
    when they cannot be (another shape or dtype), why not (``scores`` is then None)."""

    scores: Scores | None
    unavailable: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"unavailable": self.unavailable} if self.scores is None else self.scores.to_json()

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Baseline:
        if "unavailable" in document:
            return cls(None, document["unavailable"])
        return cls(Scores.from_json(document))


@dataclass(frozen=True)
class DatasetRecord:
    """The data of a run: its name, one image's shape (C, H, W), the number of classes and the
    size of each split or role (images)."""

    name: str
    image_shape: tuple[int, int, int] = field(metadata=read_each())
    classes: int
    splits: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> DatasetRecord:
        return from_json(cls, document)


@dataclass(frozen=True)
class CipherRecord:
    """The attacked cipher's card at the run's image shape: key space and its separable part
    (bits), how keys are reused, and the paper."""

    name: str
    params: Mapping[str, Any]
    key_space_bits: float
    separable_bits: float
    key_reuse: str
    paper: str

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> CipherRecord:
        return from_json(cls, document)


def budget_named(params: Mapping[str, Any]) -> dict[str, Any]:
    """An attack's recorded parameters with its budget under the key ``budget``, where an older
    result.json recorded it as ``preset`` (in the same place).

        >>> budget_named({"preset": "quick", "seed": 0})
        {'budget': 'quick', 'seed': 0}
    """
    if "budget" in params:
        return dict(params)
    return {"budget" if name == "preset" else name: value for name, value in params.items()}


@dataclass(frozen=True)
class AttackRecord:
    """What an attack did: its name, threat model, resolved parameters, its own facts (JSON
    values), training and reconstruction time (seconds), and the scores of any key recovery
    (fractions in [0, 1], :func:`ppattack.harness.key_recovery_scores`; None: it recovered none).
    The recovered key itself is not here and cannot be: only its scores are."""

    name: str
    threat_model: str
    params: Mapping[str, Any] = field(metadata=read_with(budget_named))
    facts: Mapping[str, Any]
    train_seconds: float
    attack_seconds: float
    key_recovery: Mapping[str, float] | None = field(default=None, metadata=omitted_if_none())

    @property
    def key_recovered(self) -> bool:
        """Whether the recovered key or map decrypts every ciphertext (``complete`` is 1)."""
        return float((self.key_recovery or {}).get("complete", 0.0)) >= 1.0

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> AttackRecord:
        """Read a result.json ``attack``; the budget of one written before it was called
        ``budget`` (its key was ``preset``) is read under its new name."""
        return from_json(cls, document)


@dataclass(frozen=True)
class Accuracy:
    """The two classifiers (:func:`ppattack.harness.measure_accuracy`): a plain model on plain
    test images and the protected model on encrypted test images, as fractions in [0, 1] (None:
    not measured, ``reason`` says why). When measured: the test and training image counts, the
    classifier's configuration, each model's training time (seconds) and whether it came from
    the cache, per role ("plain", "protected")."""

    plain_model_on_plain: float | None
    protected_model_on_encrypted: float | None
    reason: str | None
    test_images: int | None = field(default=None, metadata=omitted_if_none())
    train_images: int | None = field(default=None, metadata=omitted_if_none())
    classifier: Mapping[str, Any] | None = field(default=None, metadata=omitted_if_none())
    train_seconds: Mapping[str, float] | None = field(default=None, metadata=omitted_if_none())
    cache_hit: Mapping[str, bool] | None = field(default=None, metadata=omitted_if_none())

    @classmethod
    def not_measured(cls, reason: str) -> Accuracy:
        return cls(None, None, reason)

    @property
    def measured(self) -> bool:
        """Whether either classifier was scored."""
        return self.plain_model_on_plain is not None or self.protected_model_on_encrypted is not None

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Accuracy:
        return from_json(cls, document)


@dataclass(frozen=True)
class Control:
    """The positive control: the same attack on ``plain``. When it ran: the parameters it ran
    with, its mean SSIM (wang) and PSNR (dB), the SSIM it had to reach, whether it did, and
    its time (seconds); when not, only ``reason``."""

    ran: bool
    reason: str | None = None
    params: Mapping[str, Any] | None = None
    ssim: float | None = None
    psnr: Statistic = None
    threshold: float | None = None
    passed: bool | None = None
    seconds: float | None = None

    @classmethod
    def not_run(cls, reason: str) -> Control:
        return cls(False, reason)

    def to_json(self) -> dict[str, Any]:
        if not self.ran:
            return {"run": False, "reason": self.reason}
        return {"run": True, "cipher": "plain", "params": self.params, "ssim": self.ssim, "psnr": self.psnr,
                "threshold": self.threshold, "passed": self.passed, "seconds": self.seconds}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Control:
        if not document["run"]:
            return cls.not_run(document["reason"])
        return cls(True, None, document["params"], document["ssim"], document["psnr"], document["threshold"],
                   document["passed"], document["seconds"])


@dataclass(frozen=True, kw_only=True)
class Environment:
    """Where a run ran: the torch device, its name, library versions, and the processes
    (torchrun ranks) that took part."""

    device: str
    device_name: str | None = None
    torch: str
    cuda: str | None = None
    python: str
    ppattack: str
    processes: int = 1

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Environment:
        return from_json(cls, document)


@dataclass(frozen=True, kw_only=True)
class ConfigRecord:
    """The run's configuration as result.json records it: the :class:`~ppattack.harness.RunConfig`
    fields (``device`` the device it resolved to) and ``settings``, the preset merged with the
    user's values. ``params`` are the user's ``K=V`` overrides. The fields the schema leaves
    optional default as in RunConfig."""

    cipher: str
    attack: str
    dataset: str | None = None
    data_root: str | None = None
    preset: str = "quick"
    params: Mapping[str, Any] = field(default_factory=dict)
    device: str
    seed: int = 0
    limit: int | None = None
    accuracy: bool = True
    threat: str | None = None
    control: bool = False
    lpips_weights: str | None = None
    attack_budget: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ConfigRecord:
        return from_json(cls, document)


@dataclass(frozen=True)
class RunRecord:
    """The result of one run (result.json): configuration, data, cipher card, the attack's
    record, its restorations' scores, the no-attack baseline, the metric conventions, the
    classifiers' accuracy, the environment, the positive control and the run's time (seconds)."""

    schema_version: int
    ppattack_version: str
    git_commit: str | None
    config: ConfigRecord
    dataset: DatasetRecord
    cipher: CipherRecord
    attack: AttackRecord
    metrics: Scores
    baseline: Baseline
    metric_conventions: Mapping[str, Any]
    accuracy: Accuracy
    environment: Environment
    control: Control
    seconds: float

    @property
    def seed(self) -> int:
        return self.config.seed

    def to_json(self) -> dict[str, Any]:
        """The result.json document (before :func:`ppattack.report.finite` turns inf into text)."""
        return {"schema_version": self.schema_version, "ppattack_version": self.ppattack_version,
                "git_commit": self.git_commit, "config": self.config.to_json(), "seed": self.seed,
                "dataset": self.dataset.to_json(), "cipher": self.cipher.to_json(),
                "attack": self.attack.to_json(), "metrics": self.metrics.to_json(),
                "baseline": self.baseline.to_json(), "metric_conventions": self.metric_conventions,
                "accuracy": self.accuracy.to_json(), "environment": self.environment.to_json(),
                "seconds": self.seconds, "control": self.control.to_json()}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> RunRecord:
        """Read a result.json document (one the result schema validates) back."""
        return cls(document["schema_version"], document["ppattack_version"], document.get("git_commit"),
                   ConfigRecord.from_json(document["config"]), DatasetRecord.from_json(document["dataset"]),
                   CipherRecord.from_json(document["cipher"]), AttackRecord.from_json(document["attack"]),
                   Scores.from_json(document["metrics"]), Baseline.from_json(document["baseline"]),
                   document["metric_conventions"], Accuracy.from_json(document["accuracy"]),
                   Environment.from_json(document["environment"]), Control.from_json(document["control"]),
                   document["seconds"])

