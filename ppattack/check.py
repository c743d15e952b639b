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
bounds the protected model's accuracy on encrypted images. ``seeds = [0, 1, 2]`` in place of
``seed`` runs the case once per seed and bounds the median of the measurements (an attack whose
single runs swing with the seed is guarded by its typical run, not by one lucky seed). Every
bound is a finite number in [0, 1], and a ``min_ssim`` must lie below the ``max_ssim`` of the
same bound: a baseline that breaks this is refused before anything runs.

Without result folders, every bound is produced by running it (trained networks come from the
cache; the accuracy classifiers train only for a case a ``min_accuracy`` bound reads). With
result folders, every bound must be answered by a valid result found in them (same case, and
holding the bounded measurement); a folder without a result, a result that does not validate
against ``ppattack/schemas/result.schema.json`` (fields, types, ranges, schema version) or whose
mean SSIM contradicts its per-image values, and a bound without its result are input errors,
never a silent re-run.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import statistics
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .errors import DataError, ParameterError, PPAttackError
from .file_io import files_below
from .records import RunRecord
from .schemas import schema_errors

if TYPE_CHECKING:
    from jsonschema import ValidationError

log = logging.getLogger(__name__)

BOUND_KEYS = {"max_ssim", "min_ssim", "min_accuracy"}
CASE_KEYS = {"cipher", "attack", "dataset", "preset", "seed", "limit", "threat", "params", "data_root"}
SEEDS_KEY = "seeds"  # a bound over several seeds holds their median


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
    """Limits on one case; with ``seeds``, on the median over the case run at each seed (``case``
    then carries the first seed)."""

    case: Case
    limits: dict[str, float] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()

    def cases(self) -> list[Case]:
        """The runs this bound reads: one per seed, else its case."""
        return [replace(self.case, seed=seed) for seed in self.seeds] or [self.case]


@dataclass(frozen=True)
class Verdict:
    """One bound compared with its measured value. ``margin`` > 0 means room to spare."""

    case: Case
    bound: str
    limit: float
    measured: float | None
    ok: bool
    per_seed: tuple[tuple[int, float | None], ...] = ()  # (seed, measurement) when a median

    def label(self) -> str:
        """The case, and for a median bound every seed's measurement."""
        if not self.per_seed:
            return self.case.label()
        values = ", ".join(f"{seed}: {'-' if v is None else f'{v:.3f}'}" for seed, v in self.per_seed)
        return f"{self.case.label()} median of seeds {values}"

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
    seeds = _seeds(defaults, entry)
    merged = {**defaults, **entry}
    merged.pop(SEEDS_KEY, None)
    if seeds:
        merged["seed"] = seeds[0]
    unknown = sorted(set(merged) - CASE_KEYS - BOUND_KEYS)
    if unknown:
        raise ValueError(f"unknown key '{unknown[0]}' (known: {', '.join(sorted(CASE_KEYS | BOUND_KEYS))})")
    for required in ("cipher", "attack"):
        if not isinstance(merged.get(required), str):
            raise ValueError(f"'{required}' is missing or not a name")
    limits = {name: unit_limit(name, merged.pop(name)) for name in sorted(BOUND_KEYS & set(merged))}
    if not limits:
        raise ValueError(f"give at least one of {', '.join(sorted(BOUND_KEYS))}")
    if "min_ssim" in limits and "max_ssim" in limits and limits["min_ssim"] >= limits["max_ssim"]:
        raise ValueError(f"min_ssim {limits['min_ssim']} is not below max_ssim {limits['max_ssim']}: "
                         "no result could hold both")
    params = merged.pop("params", {})
    if not isinstance(params, dict) or any(isinstance(v, (list, dict)) for v in params.values()):
        raise ValueError("params must be a table of single values, e.g. params = { block_size = 4 }")
    for name, value in merged.items():
        wanted = int if name in ("seed", "limit") else str
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise ValueError(f"{name} must be {'an integer' if wanted is int else 'a string'}, got {value!r}")
        if name in ("seed", "limit") and value < (0 if name == "seed" else 1):
            raise ValueError(f"{name} must be an integer >= {0 if name == 'seed' else 1}, got {value}")
    case = Case(params=tuple(sorted(params.items())), **merged).normalized()
    return Bound(case, limits, seeds)


def unit_limit(name: str, value: Any) -> float:
    """``value`` as a bound: a finite number in [0, 1] (ValueError naming ``name`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    shown = value if isinstance(value, float) or abs(value) < 10 ** 20 else f"an integer of {len(str(abs(value)))} digits"
    if not (0 <= value <= 1 and math.isfinite(value)):  # compared first: a huge integer is no float
        raise ValueError(f"{name} must be a number in [0, 1], got {shown}")
    return float(value)


def _seeds(defaults: dict[str, Any], entry: dict[str, Any]) -> tuple[int, ...]:
    """The bound's ``seeds`` (its own, else the defaults' unless it names a ``seed``); () for none."""
    for table in (defaults, entry):
        if "seed" in table and SEEDS_KEY in table:
            raise ValueError("give seed or seeds, not both")
    seeds = entry.get(SEEDS_KEY, defaults.get(SEEDS_KEY) if "seed" not in entry else None)
    if seeds is None:
        return ()
    if (not isinstance(seeds, list) or not seeds
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        raise ValueError(f"seeds must be a list of integers >= 0, e.g. seeds = [0, 1, 2], got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds!r}")
    return tuple(seeds)


def case_of(record: RunRecord) -> Case:
    """The case a run's record answers."""
    config = record.config
    return Case(cipher=config.cipher, attack=config.attack, dataset=record.dataset.name,
                preset=config.preset, seed=config.seed, limit=config.limit, threat=record.attack.threat_model,
                params=tuple(sorted(dict(config.params).items())), data_root=config.data_root)


#: How a schema's JSON types read in a message.
TYPE_WORDS = {"null": "null", "boolean": "true or false", "integer": "an integer", "number": "a number",
              "string": "a string", "array": "a list", "object": "an object"}


def validate_result(document: Any) -> None:
    """Validate a result document against the result schema, then what no schema can say (a mean
    SSIM that contradicts its per-image values); raise ValueError naming the first bad field."""
    errors = schema_errors(document, "result")
    if errors:
        raise ValueError(schema_message(_first(errors)))
    ssim = document["metrics"]["ssim"]
    values_mean = math.fsum(ssim["values"]) / len(ssim["values"])
    if abs(values_mean - ssim["mean"]) > 1e-6:
        raise ValueError(f"field 'metrics.ssim.mean' is {ssim['mean']!r} but the mean of the {len(ssim['values'])} "
                         f"values in 'metrics.ssim.values' is {values_mean!r}")


def _first(errors: list[ValidationError]) -> ValidationError:
    """The violation to report: the shallowest, a plain rule before an "any of"; within an "any
    of", the alternative the value has the type of, when there is one."""
    error = min(errors, key=lambda e: (len(e.absolute_path), e.validator in ("anyOf", "oneOf")))
    if error.validator in ("anyOf", "oneOf"):
        depth = len(error.absolute_path)
        fitting = [e for e in error.context
                   if not (e.validator in ("type", "enum", "const") and len(e.absolute_path) == depth)]
        if fitting:
            return _first(fitting)
    return error


def schema_message(error: ValidationError) -> str:
    """One schema violation as a sentence naming the field: missing, unknown, of the wrong type
    or out of range, or an unknown schema version."""
    field_name = _dotted(error.absolute_path)
    kind, expected, value = error.validator, error.validator_value, error.instance
    if kind == "required":
        missing = next(name for name in expected if name not in value)
        return f"field '{_dotted([*error.absolute_path, missing])}' is missing"
    if kind == "additionalProperties":
        unknown = sorted(set(value) - set(error.schema.get("properties", {})))
        return f"field '{_dotted([*error.absolute_path, unknown[0]])}' is not in the result schema"
    if kind == "const" and field_name == "schema_version":
        return f"schema_version is {value!r}; this ppattack reads version {expected}"
    if kind in ("type", "minimum", "maximum", "enum", "const", "minItems", "maxItems"):
        where = f"field '{field_name}'" if field_name else "the document"
        return f"{where} must be {describe(error.schema)}, got {_shown(value)}"
    return f"field '{field_name}': {error.message}"


def describe(schema: dict[str, Any]) -> str:
    """What a (simple) schema accepts, in words: ``null or a number in [0, 1]``."""
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(choice) for choice in schema["enum"])
    types = schema.get("type", [])
    types = sorted([types] if isinstance(types, str) else types, key=lambda name: name != "null")
    words = [TYPE_WORDS[name] + (_range(schema) if name in ("integer", "number") else "") for name in types]
    if "array" in types and schema.get("minItems", 0) >= 1:
        words[types.index("array")] = "a non-empty list"
    if "array" in types and "type" in schema.get("items", {}):
        words[types.index("array")] += f" of {describe(schema['items'])}"
    return " or ".join(words) or "valid"


def _range(schema: dict[str, Any]) -> str:
    """`` in [a, b]``, `` >= a``, `` <= b`` or nothing, from a schema's minimum and maximum."""
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    return f" >= {low}" if low is not None else f" <= {high}" if high is not None else ""


def _dotted(path: Iterable[str | int]) -> str:
    """A path into a document as a field name: ``metrics.ssim.values[3]``."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")


def _shown(value: Any) -> str:
    """``value`` for a message, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _non_finite(name: str) -> str:
    """``NaN`` / ``Infinity`` / ``-Infinity`` (not JSON) as the strings result.json writes them."""
    return str(float(name))


def collect_results(result_dirs: Iterable[str | Path]) -> dict[Case, tuple[Path, RunRecord]]:
    """Every result.json found (recursively) under the given folders, validated, read back and
    keyed by its case; a folder without one, or a result that does not validate, is a DataError."""
    found: dict[Case, tuple[Path, RunRecord]] = {}
    for folder in result_dirs:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"result folder {folder} does not exist")
        paths = files_below(folder, "result.json")
        if not paths:
            raise DataError(f"result folder {folder} holds no result.json: pass the folder `ppattack run` "
                            "wrote, or leave it out to let check run the case")
        for path in paths:
            try:
                document = json.loads(path.read_text(encoding="utf-8"), parse_constant=_non_finite)
                validate_result(document)
                record = RunRecord.from_json(document)
            except (OSError, UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError) as e:
                reason = (f"field {e} is missing" if isinstance(e, KeyError) else
                          str(e) if not isinstance(e, (OSError, json.JSONDecodeError)) else e.__class__.__name__)
                raise DataError(f"{path} is not a ppattack result ({reason}): remove it or "
                                "re-run the case") from None
            case = case_of(record)
            if case in found and found[case][0].resolve() != path.resolve():
                raise DataError(f"{found[case][0]} and {path} both answer the case {case.label()} (seed "
                                f"{case.seed}, limit {case.limit}): which one to trust is a guess; pass one")
            found[case] = (path, record)
    return found


def measure(record: RunRecord, bound: str) -> float | None:
    """What ``bound`` limits in a run's record: the mean SSIM (wang) of the restorations, or the
    protected model's accuracy on encrypted images (a fraction; None when not measured)."""
    if bound in ("max_ssim", "min_ssim"):
        return record.metrics.ssim.mean
    return record.accuracy.protected_model_on_encrypted


def _nearest(case: Case, cases: Iterable[Case]) -> str:
    """What differs between ``case`` and the closest of ``cases`` (for an error message)."""
    best: list[str] | None = None
    for other in cases:
        differences = [f"{name} {getattr(other, name)!r} instead of {getattr(case, name)!r}"
                       for name in Case.__dataclass_fields__ if getattr(other, name) != getattr(case, name)]
        if best is None or len(differences) < len(best):
            best = differences
    return "; the closest result has " + ", ".join(best) if best else ""


def run_case(case: Case, out_dir: Path | None, accuracy: bool = True) -> RunRecord:
    """Produce a missing result by running it (and keep it in ``out_dir`` when given); the
    accuracy classifiers train only when ``accuracy`` (a bound on accuracy reads the case)."""
    from .runtime.distributed import world
    from .harness import RunConfig, run
    from .report import write_run

    log.info("running %s", case.label())
    try:
        result = run(RunConfig(cipher=case.cipher, attack=case.attack, dataset=case.dataset,
                               data_root=case.data_root, preset=case.preset, params=dict(case.params),
                               seed=case.seed, limit=case.limit, threat=case.threat, accuracy=accuracy))
    except PPAttackError as e:  # found only once the case runs: say which bound's case it was
        raise type(e)(f"the case {case.label()}: {e}") from None
    if out_dir is not None and world().is_main:  # under torchrun, rank 0 writes
        digest = hashlib.sha256(case.label().encode() + repr(case).encode()).hexdigest()[:10]
        write_run(result, out_dir / f"{case.cipher}-{case.attack}-{case.preset}-{digest}")
    return result.record


def check(bounds: list[Bound], result_dirs: Iterable[str | Path] = (),
          out_dir: Path | None = None) -> list[Verdict]:
    """Compare every bound with its result: from ``result_dirs`` when given (each bound must be
    answered there, else DataError), else by running it."""
    result_dirs = list(result_dirs)
    results = collect_results(result_dirs)
    for item in bounds if result_dirs else ():  # given results are checked before any verdict
        for case in item.cases():
            if case not in results:
                raise DataError(f"no result in {', '.join(map(str, result_dirs))} answers the bound "
                                f"{case.label()} (seed {case.seed}, limit {case.limit})"
                                f"{_nearest(case, results)}: run that case or leave the folders out")
            path, record = results[case]
            missing = [name for name in item.limits if measure(record, name) is None]
            if missing:
                raise DataError(f"{path} holds no measurement for {missing[0]} (e.g. run with "
                                "--no-accuracy): re-run the case with it or leave the folders out")
    made: dict[Case, RunRecord] = {}  # two bounds on one case run it once
    # A run trains the accuracy classifiers only for a case whose bounds read accuracy.
    needs_accuracy = {case for item in bounds if "min_accuracy" in item.limits for case in item.cases()}

    def record_of(case: Case) -> RunRecord:
        if result_dirs:
            return results[case][1]
        if case not in made:
            made[case] = run_case(case, out_dir, accuracy=case in needs_accuracy)
        return made[case]

    verdicts = []
    for item in bounds:
        records = [(case.seed, record_of(case)) for case in item.cases()]
        for name, limit in item.limits.items():
            per_seed = tuple((seed, measure(record, name)) for seed, record in records)
            values = [value for _, value in per_seed]
            value = None if None in values else float(statistics.median(values))
            ok = value is not None and (value <= limit if name.startswith("max") else value >= limit)
            verdicts.append(Verdict(item.case, name, limit, value, ok, per_seed if item.seeds else ()))
    return verdicts
