"""Audit baselines: a cipher's verdict per threat model guarded in CI, not one cell.

A baseline file may hold ``[[audit]]`` entries beside (or instead of) ``[[bound]]`` ones; each
runs :func:`ppattack.audit.run_audit` and compares its worst cases per threat model::

    [[audit]]
    cipher = "my-cipher"
    attacks = "fr,keyrec,kpa,cpa"          # the ensemble (default: every registered attack)
    max_ssim = { coa = 0.30 }               # the cipher must stay at least this strong
    min_ssim = { "coa+public" = 0.99 }      # the attacks must keep reaching this
    key_recovered = { "coa+public" = true, coa = false }   # must (not) be recovered

``[defaults]`` (dataset, preset, seed, limit, data_root) apply as to ``[[bound]]`` entries.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ParameterError
from .threat import THREAT_MODELS

OPTION_KEYS = {"dataset", "preset", "seed", "limit", "params", "data_root", "budget"}
LIMIT_KEYS = {"max_ssim", "min_ssim", "key_recovered"}


@dataclass(frozen=True)
class AuditBound:
    """One ``[[audit]]`` entry: the cipher, the ensemble, run options and the limits."""

    cipher: str
    attacks: str = "*"
    options: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, dict[str, Any]] = field(default_factory=dict)

    def label(self) -> str:
        return f"audit {self.cipher} [{self.options.get('preset', 'quick')}]"


@dataclass(frozen=True)
class AuditVerdict:
    """One limit of one threat model against the audit's worst case."""

    bound: AuditBound
    threat: str
    kind: str
    limit: Any
    measured: Any
    ok: bool


def _read(path: str | Path) -> dict[str, Any]:
    from .check import _load_toml  # one TOML reader, with check's error messages

    return _load_toml(Path(path))


def has_case_bounds(path: str | Path) -> bool:
    """Whether the baseline holds ``[[bound]]`` entries (else it may be audits only)."""
    return bool(_read(path).get("bound"))


def load_audit_bounds(path: str | Path) -> list[AuditBound]:
    """The ``[[audit]]`` entries of a baseline, checked (one-line ParameterError naming the entry)."""
    document = _read(path)
    if not isinstance(document.get("defaults", {}), dict):
        raise ParameterError(f"baseline {path}: [defaults] must be a table")
    defaults = {k: v for k, v in document.get("defaults", {}).items() if k in OPTION_KEYS}
    bounds = []
    for number, entry in enumerate(document.get("audit", []), 1):
        where = f"baseline {path}, audit {number}"
        if not isinstance(entry, dict) or not isinstance(entry.get("cipher"), str):
            raise ParameterError(f"{where}: an [[audit]] needs cipher = \"NAME\"")
        unknown = sorted(set(entry) - OPTION_KEYS - LIMIT_KEYS - {"cipher", "attacks"})
        if unknown:
            raise ParameterError(f"{where}: unknown key '{unknown[0]}' (known: cipher, attacks, "
                                 f"{', '.join(sorted(OPTION_KEYS | LIMIT_KEYS))})")
        limits = {kind: entry[kind] for kind in LIMIT_KEYS if kind in entry}
        if not limits:
            raise ParameterError(f"{where}: give at least one of {', '.join(sorted(LIMIT_KEYS))}")
        for kind, table in limits.items():
            if not isinstance(table, dict) or not set(table) <= set(THREAT_MODELS):
                raise ParameterError(f"{where}: {kind} must be a table of threat models "
                                     f"({', '.join(THREAT_MODELS)}), e.g. {kind} = {{ coa = ... }}")
            for value in table.values():
                wanted = bool if kind == "key_recovered" else (int, float)
                if not isinstance(value, wanted) or (kind != "key_recovered" and isinstance(value, bool)):
                    raise ParameterError(f"{where}: {kind} values must be "
                                         f"{'true or false' if kind == 'key_recovered' else 'numbers'}, got {value!r}")
        options = {**defaults, **{k: entry[k] for k in OPTION_KEYS if k in entry}}
        bounds.append(AuditBound(entry["cipher"], str(entry.get("attacks", "*")), options, limits))
    return bounds


def compare(bound: AuditBound, document: dict[str, Any]) -> list[AuditVerdict]:
    """Every limit of ``bound`` against an audit.json document."""
    verdicts = []
    for kind, table in bound.limits.items():
        for threat, limit in table.items():
            worst = document["threat_models"][threat]
            if kind == "key_recovered":
                measured = worst["key_recovered"]
                ok = measured == limit
            else:
                measured = worst["best_ssim"]
                if measured is None:  # no attack applies: nothing restored, nothing reached
                    ok = kind == "max_ssim"
                else:
                    ok = measured <= limit if kind == "max_ssim" else measured >= limit
            verdicts.append(AuditVerdict(bound, threat, kind, limit, measured, ok))
    return verdicts


def check_audits(bounds: list[AuditBound], out_dir: Path | None = None) -> list[AuditVerdict]:
    """Run each audit (into ``out_dir/audit-<cipher>`` when given) and compare its limits."""
    from .audit import run_audit
    from .bench import split_names

    verdicts = []
    for index, bound in enumerate(bounds):
        options = dict(bound.options)
        budget = options.pop("budget", "quick")
        options["params"] = dict(options.get("params", {}))
        with tempfile.TemporaryDirectory() as scratch:
            folder = (out_dir / f"audit-{index}-{bound.cipher}") if out_dir else Path(scratch)
            result = run_audit(bound.cipher, folder, budget=budget, attacks=split_names(bound.attacks),
                               accuracy=False, **options)
        verdicts += compare(bound, result.document)
    return verdicts
