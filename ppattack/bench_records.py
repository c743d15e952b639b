"""Typed, frozen records of a bench (bench.json, ``schemas/bench.schema.json``): its cells, the
leaderboard's rows and each row's entry per attack, and the document holding them. Their JSON
is generic over their fields (:mod:`ppattack.record_json`): a field per key, in order.

    document = BenchDocument.from_json(json.loads(Path("bench.json").read_text()))
    document.leaderboard[0].verdict, document.cells[0].result.metrics.ssim.mean
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .record_json import from_json, per_metric, read_as, read_each, read_values, to_json
from .records import Accuracy, RunRecord, Statistic
from .verdict import AttackScore

BENCH_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class BenchCell:
    """One cipher attacked by one attack: the torchrun rank that ran it, its result folder,
    the ``K=V`` parameters it did not take, its status ("ok"; "n/a": the attack cannot take the
    cipher, ``reason`` says why; "error": a crash or bad input, ``error`` says what) and its
    run's record (None unless "ok")."""

    cipher: str
    attack: str
    process: int
    folder: str | None
    ignored_params: tuple[str, ...] = field(metadata=read_each())
    status: str
    error: str | None
    reason: str | None
    result: RunRecord | None = field(metadata=read_as(RunRecord))

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> BenchCell:
        return from_json(cls, document)


@dataclass(frozen=True, kw_only=True)
class AttackEntry:
    """One attack's cell in a leaderboard row: its status, threat model, the mean of each
    metric (None: not measured), its error or reason, and whether it recovered the key (None:
    it did not run)."""

    status: str
    threat_model: str | None
    means: Mapping[str, Statistic] = field(metadata=per_metric())
    error: str | None
    reason: str | None
    key_recovered: bool | None

    def score(self, attack: str) -> AttackScore:
        """What the worst case (:func:`ppattack.verdict.worst_case`) reads of this entry."""
        return AttackScore(attack, self.means["ssim"], self.means.get("ssim_up_to_mirror"), self.means.get("lpips"),
                           bool(self.key_recovered))

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> AttackEntry:
        return from_json(cls, document)


@dataclass(frozen=True, kw_only=True)
class LeaderboardRow:
    """A cipher's row: the verdict of its worst case (:func:`ppattack.verdict.worst_case`), key
    space and its separable part (bits), key reuse, accuracy, the no-attack baseline's mean SSIM
    and LPIPS, the best attack with its SSIM and LPIPS, the best SSIM up to a left-right mirror
    and its attack, why LPIPS is missing, and every attack's entry."""

    cipher: str
    verdict: str
    key_space_bits: float | None
    separable_bits: float | None
    key_reuse: str | None
    accuracy: Accuracy | None = field(metadata=read_as(Accuracy))
    baseline_ssim: Statistic
    baseline_lpips: Statistic
    best_attack: str | None
    best_ssim: float | None
    best_lpips: Statistic
    best_attack_up_to_mirror: str | None = None
    best_ssim_up_to_mirror: float | None = None
    lpips_unavailable: str | None
    attacks: Mapping[str, AttackEntry] = field(metadata=read_values(AttackEntry))

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> LeaderboardRow:
        return from_json(cls, document)


@dataclass(frozen=True, kw_only=True)
class BenchDocument:
    """bench.json: the ciphers and attacks, the run options every cell shared, the leaderboard
    (rows sorted by verdict), every cell and the bench's time (seconds)."""

    schema_version: int = BENCH_SCHEMA_VERSION
    kind: str = "ppattack-bench"
    ppattack_version: str
    git_commit: str | None
    ciphers: tuple[str, ...] = field(metadata=read_each())
    attacks: tuple[str, ...] = field(metadata=read_each())
    options: Mapping[str, Any]
    leaderboard: tuple[LeaderboardRow, ...] = field(metadata=read_each(LeaderboardRow))
    cells: tuple[BenchCell, ...] = field(metadata=read_each(BenchCell))
    seconds: float

    @property
    def failures(self) -> list[BenchCell]:
        """Cells that crashed or failed on bad input (not those whose attack does not apply)."""
        return [cell for cell in self.cells if cell.status == "error"]

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> BenchDocument:
        return from_json(cls, document)
