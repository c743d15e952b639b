"""Typed, frozen records of a run's result: what crosses module boundaries instead of a dict.

The harness builds a :class:`RunRecord`; report, cli, bench, audit, check and restore read its
fields; ``to_json()`` writes it as the result.json document at the edge (``schemas/result.schema.json``)
and ``from_json()`` reads such a document back. A recovered key is never a field of any record
here: the attack's record holds only the scores of the recovery (:class:`AttackRecord`).

    record = run(RunConfig(cipher="proposed", attack="fr")).record
    record.metrics.ssim.mean, record.accuracy.protected_model_on_encrypted, record.control.passed
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from .metrics import METRICS

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
    values: tuple[float | str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "median": self.median, "std": self.std, "values": list(self.values)}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Summary:
        return cls(document["mean"], document["median"], document["std"], tuple(document["values"]))


@dataclass(frozen=True)
class MirrorSummary(Summary):
    """SSIM (wang) up to a left-right mirror (:func:`ppattack.metrics.ssim_up_to_mirror`): the
    summary of every image's SSIM in the one orientation, as restored or all mirrored, whose
    mean is higher, and ``mirrored``: whether that is the mirrored one."""

    mirrored: bool

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "mirrored": self.mirrored}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> MirrorSummary:
        return cls(document["mean"], document["median"], document["std"], tuple(document["values"]),
                   bool(document["mirrored"]))


@dataclass(frozen=True)
class Scores:
    """Images scored against the plain images (:func:`ppattack.metrics.score`): the summary of
    each metric of :data:`ppattack.metrics.METRICS` by name, None where it was not measured
    (LPIPS without its network, ``lpips_unavailable`` then says why; a metric newer than the
    result.json read). ``scores["psnr"]`` reads one; the properties name the ones code reads."""

    summaries: Mapping[str, Summary | None]
    lpips_unavailable: str | None

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
        return {**{name: None if summary is None else summary.to_json() for name, summary in self.summaries.items()},
                "lpips_unavailable": self.lpips_unavailable}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Scores:
        """Read scores for every metric of the table (a metric the document lacks reads None)."""
        summaries: dict[str, Summary | None] = {}
        for metric in METRICS:
            summary = document.get(metric.name)
            reader = MirrorSummary if metric.up_to_mirror else Summary
            summaries[metric.name] = None if summary is None else reader.from_json(summary)
        return cls(summaries, document.get("lpips_unavailable"))


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
    image_shape: tuple[int, int, int]
    classes: int
    splits: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "image_shape": list(self.image_shape), "classes": self.classes,
                "splits": dict(self.splits)}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> DatasetRecord:
        return cls(document["name"], tuple(document["image_shape"]), document["classes"], dict(document["splits"]))


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
        return {"name": self.name, "params": self.params, "key_space_bits": self.key_space_bits,
                "separable_bits": self.separable_bits, "key_reuse": self.key_reuse, "paper": self.paper}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> CipherRecord:
        return cls(document["name"], document["params"], document["key_space_bits"], document["separable_bits"],
                   document["key_reuse"], document["paper"])


@dataclass(frozen=True)
class AttackRecord:
    """What an attack did: its name, threat model, resolved parameters, its own facts (JSON
    values), training and reconstruction time (seconds), and the scores of any key recovery
    (fractions in [0, 1], :func:`ppattack.harness.key_recovery_scores`; None: it recovered none).
    The recovered key itself is not here and cannot be: only its scores are."""

    name: str
    threat_model: str
    params: Mapping[str, Any]
    facts: Mapping[str, Any]
    train_seconds: float
    attack_seconds: float
    key_recovery: Mapping[str, float] | None = None

    @property
    def key_recovered(self) -> bool:
        """Whether the recovered key or map decrypts every ciphertext (``complete`` is 1)."""
        return float((self.key_recovery or {}).get("complete", 0.0)) >= 1.0

    def to_json(self) -> dict[str, Any]:
        document = {"name": self.name, "threat_model": self.threat_model, "params": self.params,
                    "facts": self.facts, "train_seconds": self.train_seconds,
                    "attack_seconds": self.attack_seconds}
        if self.key_recovery is not None:
            document["key_recovery"] = dict(self.key_recovery)
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> AttackRecord:
        """Read a result.json ``attack``; the budget of one written before it was called
        ``budget`` (its key was ``preset``) is read under its new name."""
        return cls(document["name"], document["threat_model"], budget_named(document["params"]),
                   document["facts"], document["train_seconds"], document["attack_seconds"],
                   document.get("key_recovery"))


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
class Accuracy:
    """The two classifiers (:func:`ppattack.harness.measure_accuracy`): a plain model on plain
    test images and the protected model on encrypted test images, as fractions in [0, 1] (None:
    not measured, ``reason`` says why). When measured: the test and training image counts, the
    classifier's configuration, each model's training time (seconds) and whether it came from
    the cache, per role ("plain", "protected")."""

    plain_model_on_plain: float | None
    protected_model_on_encrypted: float | None
    reason: str | None
    test_images: int | None = None
    train_images: int | None = None
    classifier: Mapping[str, Any] | None = None
    train_seconds: Mapping[str, float] | None = None
    cache_hit: Mapping[str, bool] | None = None

    @classmethod
    def not_measured(cls, reason: str) -> Accuracy:
        return cls(None, None, reason)

    @property
    def measured(self) -> bool:
        """Whether either classifier was scored."""
        return self.plain_model_on_plain is not None or self.protected_model_on_encrypted is not None

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"plain_model_on_plain": self.plain_model_on_plain,
                                    "protected_model_on_encrypted": self.protected_model_on_encrypted,
                                    "reason": self.reason}
        if self.test_images is not None:
            document.update(test_images=self.test_images, train_images=self.train_images,
                            classifier=self.classifier, train_seconds=self.train_seconds,
                            cache_hit=self.cache_hit)
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Accuracy:
        return cls(document.get("plain_model_on_plain"), document.get("protected_model_on_encrypted"),
                   document.get("reason"), document.get("test_images"), document.get("train_images"),
                   document.get("classifier"), document.get("train_seconds"), document.get("cache_hit"))


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


@dataclass(frozen=True)
class Environment:
    """Where a run ran: the torch device, its name, library versions, and the processes
    (torchrun ranks) that took part."""

    device: str
    device_name: str | None
    torch: str
    cuda: str | None
    python: str
    ppattack: str
    processes: int = 1

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Environment:
        return cls(document["device"], document.get("device_name"), document["torch"], document.get("cuda"),
                   document["python"], document["ppattack"], document.get("processes", 1))


@dataclass(frozen=True)
class ConfigRecord:
    """The run's configuration as result.json records it: the :class:`~ppattack.harness.RunConfig`
    fields (``device`` the device it resolved to) and ``settings``, the preset merged with the
    user's values. ``params`` are the user's ``K=V`` overrides."""

    cipher: str
    attack: str
    dataset: str | None
    data_root: str | None
    preset: str
    params: Mapping[str, Any]
    device: str
    seed: int
    limit: int | None
    accuracy: bool
    threat: str | None
    control: bool
    lpips_weights: str | None
    attack_budget: str | None
    settings: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "params": dict(self.params), "settings": self.settings}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ConfigRecord:
        """Read a result.json ``config``; the fields the schema leaves optional default as in RunConfig."""
        return cls(document["cipher"], document["attack"], document.get("dataset"), document.get("data_root"),
                   document.get("preset", "quick"), dict(document.get("params", {})), document["device"],
                   document.get("seed", 0), document.get("limit"), document.get("accuracy", True),
                   document.get("threat"), document.get("control", False), document.get("lpips_weights"),
                   document.get("attack_budget"), dict(document.get("settings", {})))


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

