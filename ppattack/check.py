"""Security regression check: measured results against the bounds of a baseline file.

A baseline (TOML) lists bounds per cipher, attack and preset::

    [defaults]                 # applied to every bound (each bound may override)
    dataset = "samples"
    preset = "quick"
    limit = 32

    [[bound]]                  # the cipher must stay at least this strong
    cipher = "proposed"
    attack = "fr"
    max_ssim = 0.30

    [[bound]]                  # positive control: the attack must keep working
    cipher = "plain"
    attack = "itn"
    min_ssim = 0.90
    min_accuracy = 0.50

``max_ssim`` / ``min_ssim`` bound the mean SSIM ("wang") of the restorations; ``min_accuracy``
bounds the protected model's accuracy on encrypted images. A bound whose result is not among
the given result folders is produced by running it (trained networks come from the cache).
"""
from __future__ import annotations

import json
import logging
import sys
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from .errors import DataError, ParameterError

log = logging.getLogger(__name__)

BOUND_KEYS = {"max_ssim", "min_ssim", "min_accuracy"}
CASE_KEYS = {"cipher", "attack", "dataset", "preset", "seed", "limit", "threat", "params", "data_root"}


@dataclass(frozen=True)
class Case:
    """What identifies a run: cipher, attack and the options that change its result."""

    cipher: str
    attack: str
    dataset: str | None = None
    preset: str = "quick"
    seed: int = 0
    limit: int | None = None
    threat: str | None = None
    params: tuple[tuple[str, Any], ...] = ()
    data_root: str | None = None

    def normalized(self) -> "Case":
        """Fill the defaults a run would use (the preset's dataset, the attack's threat model)."""
        from .presets import get_preset
        from .registry import ATTACKS
        from .threat import default_threat

        dataset = self.dataset or get_preset(self.preset)["dataset"]
        threat = self.threat or default_threat(ATTACKS.get(self.attack).threat_models)
        return replace(self, dataset=dataset, threat=threat)

    def label(self) -> str:
        extras = "".join(f" {k}={v}" for k, v in self.params)
        return f"{self.cipher} / {self.attack} [{self.preset}]{extras}"


@dataclass(frozen=True)
class Bound:
    case: Case
    limits: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """One bound compared with its measured value. ``margin`` > 0 means room to spare."""

    case: Case
    bound: str
    limit: float
    measured: float | None
    ok: bool

    @property
    def margin(self) -> float | None:
        if self.measured is None:
            return None
        return self.limit - self.measured if self.bound.startswith("max") else self.measured - self.limit


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise DataError(f"baseline file {path} does not exist") from None
    except OSError as e:
        raise DataError(f"cannot read baseline file {path}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"baseline file {path} is not valid TOML: {e}") from None


def load_baseline(path: str | Path) -> list[Bound]:
    """Parse a baseline file into bounds; unknown keys, values of the wrong type and bounds
    without a limit are errors (:class:`ParameterError`, one line naming the bound)."""
    document = _load_toml(Path(path))
    defaults = document.get("defaults", {})
    entries = document.get("bound", [])
    if not isinstance(defaults, dict):
        raise ParameterError(f"baseline {path}: [defaults] must be a table")
    if not isinstance(entries, list) or not entries:
        raise DataError(f"baseline file {path} has no [[bound]] entries")
    bounds = []
    for number, entry in enumerate(entries, 1):
        try:
            bounds.append(_bound(defaults, entry))
        except (TypeError, ValueError) as e:
            raise ParameterError(f"baseline {path}, bound {number}: {e}") from None
    return bounds


def _bound(defaults: dict[str, Any], entry: Any) -> Bound:
    """One [[bound]] merged with the defaults (raises TypeError / ValueError on bad values)."""
    if not isinstance(entry, dict):
        raise TypeError("a [[bound]] must be a table")
    merged = {**defaults, **entry}
    unknown = sorted(set(merged) - CASE_KEYS - BOUND_KEYS)
    if unknown:
        raise ValueError(f"unknown key '{unknown[0]}' (known: {', '.join(sorted(CASE_KEYS | BOUND_KEYS))})")
    for required in ("cipher", "attack"):
        if not isinstance(merged.get(required), str):
            raise ValueError(f"'{required}' is missing or not a name")
    limits = {}
    for name in sorted(BOUND_KEYS & set(merged)):
        value = merged.pop(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        limits[name] = float(value)
    if not limits:
        raise ValueError(f"give at least one of {', '.join(sorted(BOUND_KEYS))}")
    params = merged.pop("params", {})
    if not isinstance(params, dict) or any(isinstance(v, (list, dict)) for v in params.values()):
        raise ValueError("params must be a table of single values, e.g. params = { block_size = 4 }")
    for name, value in merged.items():
        wanted = int if name in ("seed", "limit") else str
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise ValueError(f"{name} must be {'an integer' if wanted is int else 'a string'}, got {value!r}")
    case = Case(params=tuple(sorted(params.items())), **merged).normalized()
    return Bound(case, limits)


def case_of(document: dict[str, Any]) -> Case:
    """The case a result.json document answers."""
    config = document["config"]
    return Case(cipher=config["cipher"], attack=config["attack"], dataset=document["dataset"]["name"],
                preset=config.get("preset", "quick"), seed=config.get("seed", 0),
                limit=config.get("limit"), threat=document["attack"]["threat_model"],
                params=tuple(sorted(dict(config.get("params", {})).items())),
                data_root=config.get("data_root"))


def collect_results(result_dirs: Iterable[str | Path]) -> dict[Case, dict[str, Any]]:
    """Every result.json found (recursively) under the given folders, keyed by its case."""
    found: dict[Case, dict[str, Any]] = {}
    for folder in result_dirs:
        folder = Path(folder)
        if not folder.exists():
            raise DataError(f"result folder {folder} does not exist")
        for path in sorted(folder.rglob("result.json")):
            try:
                document = json.loads(path.read_text())
                found[case_of(document)] = document
            except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
                raise DataError(f"{path} is not a ppattack result ({e.__class__.__name__}): "
                                "remove it or re-run") from None
    return found


def measure(document: dict[str, Any], bound: str) -> float | None:
    if bound in ("max_ssim", "min_ssim"):
        return document["metrics"]["ssim"]["mean"]
    return (document.get("accuracy") or {}).get("protected_model_on_encrypted")


def run_case(case: Case, out_dir: Path | None) -> dict[str, Any]:
    """Produce a missing result by running it (and keep it in ``out_dir`` when given)."""
    from .distributed import world
    from .harness import RunConfig, run
    from .report import write_run

    log.info("running %s", case.label())
    result = run(RunConfig(cipher=case.cipher, attack=case.attack, dataset=case.dataset,
                           data_root=case.data_root, preset=case.preset, params=dict(case.params),
                           seed=case.seed, limit=case.limit, threat=case.threat))
    if out_dir is not None and world().is_main:  # under torchrun, rank 0 writes
        digest = hashlib.sha256(case.label().encode() + repr(case).encode()).hexdigest()[:10]
        write_run(result, out_dir / f"{case.cipher}-{case.attack}-{case.preset}-{digest}")
    return result.document


def check(bounds: list[Bound], result_dirs: Iterable[str | Path] = (),
          out_dir: Path | None = None) -> list[Verdict]:
    """Compare every bound with its result, running the missing ones."""
    results = collect_results(result_dirs)
    verdicts = []
    for item in bounds:
        document = results.get(item.case)
        # a given result that lacks a bounded measurement (e.g. run with --no-accuracy) is re-run
        if document is None or any(measure(document, name) is None for name in item.limits):
            document = results[item.case] = run_case(item.case, out_dir)
        for name, limit in item.limits.items():
            value = measure(document, name)
            ok = value is not None and (value <= limit if name.startswith("max") else value >= limit)
            verdicts.append(Verdict(item.case, name, limit, value, ok))
    return verdicts
