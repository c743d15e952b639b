"""Typed, frozen records of an audit (audit.json, ``schemas/audit.schema.json``): its cases, the
worst case per threat model and the document holding them. Their JSON is generic over their
fields (:mod:`ppattack.record_json`): a field per key, in order.

    document = AuditDocument.from_json(json.loads(Path("audit.json").read_text()))
    document.threat_models["kpa"].verdict, document.cases[0].control.passed
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .record_json import from_json, per_metric, read_as, read_each, read_values, to_json
from .records import Accuracy, CipherRecord, Control, DatasetRecord, Statistic
from .verdict import AttackScore

AUDIT_SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class AuditCase:
    """One attack under one threat model: its result folder, status ("ok"; "n/a" or "error"
    with ``reason``), the mean of each metric (None: not measured), whether the SSIM up to a
    left-right mirror took the mirrored restorations, whether the key was recovered (None: no
    key recovery) and the positive control (None: the case did not run)."""

    attack: str
    threat_model: str
    folder: str | None
    status: str
    reason: str | None
    means: Mapping[str, Statistic] = field(metadata=per_metric())
    mirrored: bool | None = None
    key_recovered: bool | None
    control: Control | None = field(metadata=read_as(Control))

    def score(self) -> AttackScore:
        """What the worst case (:func:`ppattack.verdict.worst_case`) reads of this case."""
        return AttackScore(self.attack, self.means["ssim"], self.means.get("ssim_up_to_mirror"),
                           self.means.get("lpips"), bool(self.key_recovered),
                           None if self.control is None else self.control.passed)

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> AuditCase:
        return from_json(cls, document)


@dataclass(frozen=True, kw_only=True)
class ThreatSummary:
    """The worst case of one threat model (:func:`ppattack.verdict.worst_case`): the verdict,
    the best attack with its SSIM and LPIPS, the best SSIM up to a left-right mirror and its
    attack, the attacks that recovered the key, whether the best attack's control passed, and
    the attacks that ran, did not apply and crashed (attack -> reason)."""

    verdict: str
    best_attack: str | None
    best_ssim: float | None
    best_lpips: Statistic
    best_attack_up_to_mirror: str | None = None
    best_ssim_up_to_mirror: float | None = None
    key_recovered: bool
    key_recovered_by: tuple[str, ...] = field(metadata=read_each())
    control_passed: bool | None
    attacks_run: tuple[str, ...] = field(metadata=read_each())
    not_applicable: Mapping[str, str]
    errors: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ThreatSummary:
        return from_json(cls, document)


@dataclass(frozen=True)
class BaselineMeans:
    """The no-attack baseline of an audit: the ciphertexts' own mean SSIM and LPIPS."""

    ssim: Statistic
    lpips: Statistic

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> BaselineMeans:
        return from_json(cls, document)


@dataclass(frozen=True, kw_only=True)
class AuditDocument:
    """audit.json: the cipher's card and the data, the audit's budget, the ensemble, the run
    options, the no-attack baseline, the accuracy (measured once), the worst case per threat
    model, every case and the audit's time (seconds)."""

    schema_version: int = AUDIT_SCHEMA_VERSION
    kind: str = "ppattack-audit"
    ppattack_version: str
    git_commit: str | None
    cipher: CipherRecord = field(metadata=read_as(CipherRecord))
    dataset: DatasetRecord = field(metadata=read_as(DatasetRecord))
    budget: str
    attacks: tuple[str, ...] = field(metadata=read_each())
    options: Mapping[str, Any]
    baseline: BaselineMeans = field(metadata=read_as(BaselineMeans))
    accuracy: Accuracy | None = field(metadata=read_as(Accuracy))
    threat_models: Mapping[str, ThreatSummary] = field(metadata=read_values(ThreatSummary))
    cases: tuple[AuditCase, ...] = field(metadata=read_each(AuditCase))
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> AuditDocument:
        return from_json(cls, document)
