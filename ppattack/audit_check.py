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
from typing import TYPE_CHECKING, Any, Mapping

from .check import unit_limit
from .errors import ParameterError
from .registry import CIPHERS
from .threat import THREAT_MODELS

if TYPE_CHECKING:
    from .audit_records import ThreatSummary

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
    from .check import BOUND_KEYS, CASE_KEYS, SEEDS_KEY

    document = _read(path)
    if not isinstance(document.get("defaults", {}), dict):
        raise ParameterError(f"baseline {path}: [defaults] must be a table")
    known = OPTION_KEYS | CASE_KEYS | BOUND_KEYS | {SEEDS_KEY}  # [defaults] serve [[bound]] entries too
    unknown = sorted(set(document.get("defaults", {})) - known)
    if unknown:
        raise ParameterError(f"baseline {path}: [defaults] has an unknown key '{unknown[0]}' "
                             f"(known: {', '.join(sorted(known))})")
    defaults = {k: v for k, v in document.get("defaults", {}).items() if k in OPTION_KEYS}
    if not isinstance(document.get("audit", []), list):
        raise ParameterError(f"baseline {path}: audit entries are written [[audit]]")
    bounds = []
    for number, entry in enumerate(document.get("audit", []), 1):
        where = f"baseline {path}, audit {number}"
        if not isinstance(entry, dict) or not isinstance(entry.get("cipher"), str):
            raise ParameterError(f"{where}: an [[audit]] needs cipher = \"NAME\"")
        if entry["cipher"] not in CIPHERS.names():  # before any audit runs, not when its turn comes
            raise ParameterError(f"{where}: no cipher named '{entry['cipher']}' is registered "
                                 "(see `ppattack list ciphers`)")
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
            for threat, value in table.items():
                if kind == "key_recovered":
                    if not isinstance(value, bool):
                        raise ParameterError(f"{where}: {kind} values must be true or false, got {value!r}")
                    continue
                try:
                    table[threat] = unit_limit(f"{kind} {threat}", value)
                except ValueError as e:
                    raise ParameterError(f"{where}: {e}") from None
        for threat in set(limits.get("min_ssim", {})) & set(limits.get("max_ssim", {})):
            low, high = limits["min_ssim"][threat], limits["max_ssim"][threat]
            if low >= high:
                raise ParameterError(f"{where}: min_ssim {threat} {low} is not below max_ssim {threat} {high}: "
                                     "no audit could hold both")
        options = {**defaults, **{k: entry[k] for k in OPTION_KEYS if k in entry}}
        problem = _option_problem(options) or (None if isinstance(entry.get("attacks", "*"), str) else
                                               f"attacks must be a string, e.g. \"fr,keyrec\", got {entry['attacks']!r}")
        if problem:
            raise ParameterError(f"{where}: {problem}")
        bounds.append(AuditBound(entry["cipher"], entry.get("attacks", "*"), options, limits))
    return bounds


def _option_problem(options: dict[str, Any]) -> str | None:
    """What is wrong with an audit's run options (merged with the defaults), or None."""
    from .audit import AUDIT_BUDGETS

    for name, value in options.items():
        if name in ("seed", "limit"):
            least = 0 if name == "seed" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                return f"{name} must be an integer >= {least}, got {value!r}"
        elif name == "params":
            if not isinstance(value, dict) or any(isinstance(v, (list, dict)) for v in value.values()):
                return "params must be a table of single values, e.g. params = { block_size = 4 }"
        elif name == "budget":
            if value not in AUDIT_BUDGETS:
                return f"budget must be one of {', '.join(AUDIT_BUDGETS)}, got {value!r}"
        elif not isinstance(value, str):
            return f"{name} must be a string, got {value!r}"
    return None


def compare(bound: AuditBound, threat_models: Mapping[str, ThreatSummary]) -> list[AuditVerdict]:
    """Every limit of ``bound`` against an audit's worst cases per threat model."""
    verdicts = []
    for kind, table in bound.limits.items():
        for threat, limit in table.items():
            worst = threat_models[threat]
            if kind == "key_recovered":
                measured = worst.key_recovered
                ok = measured == limit
            else:
                measured = worst.best_ssim
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
    from .harness import RunConfig

    verdicts = []
    for index, bound in enumerate(bounds):
        options = dict(bound.options)
        budget = options.pop("budget", "quick")
        options["params"] = dict(options.get("params", {}))
        template = RunConfig(cipher=bound.cipher, attack="*", accuracy=False, **options)
        with tempfile.TemporaryDirectory() as scratch:
            folder = (out_dir / f"audit-{index}-{bound.cipher}") if out_dir else Path(scratch)
            result = run_audit(bound.cipher, folder, template, budget=budget, attacks=split_names(bound.attacks),
                               recorded=tuple(options))
        verdicts += compare(bound, result.record.threat_models)
    return verdicts
