"""An audit: every registered attack, under every threat model it supports, against one cipher.

Like AutoAttack's fixed ensemble, the audit reports the worst case per threat model (coa,
coa+public, kpa, cpa, model): the highest mean SSIM any attack reached and which attack, its
LPIPS, the highest mean SSIM up to a left-right mirror, whether a key was recovered exactly,
and a verdict on one ladder (:data:`ppattack.verdict.VERDICTS`).
Every case runs with its positive control. A case whose attack cannot take the cipher (the
attack raises :class:`~ppattack.errors.ParameterError` or :class:`~ppattack.errors.ShapeError`)
is listed as "n/a" with the attack's reason, never counted as a failure; any other exception is
an "error", except bad input (:class:`~ppattack.errors.DataError`), which stops the audit. Accuracy is measured once, by the first case that runs (the classifiers depend only
on the cipher). A third-party attack joins the ensemble by being installed.

    result = run_audit("my-cipher", "runs/audit", RunConfig(cipher="*", attack="*", seed=3))
    result.record.threat_models["kpa"].verdict      # e.g. "key recovered"
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .version import __version__
from .bench import cell_params, check_params_taken, expand
from .cipher import parse_int_param
from .errors import DataError, MemoryNeedError, ParameterError, ShapeError
from .case import config_options
from .harness import RunConfig, RunResult, _git_commit, run
from .file_io import atomic_write_bytes, atomic_write_json, atomic_write_text, check_placeable, staged_output
from .presets import get_preset
from .metrics import METRICS
from .registry import ATTACKS, CIPHERS
from .audit_records import AuditCase, AuditDocument, BaselineMeans, ThreatSummary
from .records import Accuracy
from .report import (GRID_COLUMNS, RUN_FILES, GridRow, best_ssim_text, fmt, finite, grid_image, png, ssim_caption,
                     ssim_up_to_mirror_text, summary_mean, write_run)
from .threat import THREAT_MODELS
from .verdict import PARTIAL_MARGIN, RESTORED_SSIM, worst_case

log = logging.getLogger(__name__)
#: The files an audit writes next to its case folders ``<attack>/<threat>/``.
AUDIT_FILES = ("audit.json", "audit.md", "audit.png", "index.html")


@dataclass(frozen=True)
class AuditBudget:
    """What an audit may spend (``--budget``). None means the preset's own value.

    Attributes:
        targets: the most target images a case attacks.
        attacks: the budgets an attack of the ensemble may train at, in order of preference:
            each takes the first that its ``budgets`` table has (:func:`attack_budget`).
        classifier: the preset whose ``classifier_*`` values train the accuracy classifiers
            (and the provider model of the ``model`` threat model).
        max_train: the most training images decoded (the victim's and the attacker's halves).
        control_beside: on a CPU, evaluate each case's positive control in a second process
            while the case attacks, the threads split between the two
            (:func:`~ppattack.harness.beside_control`).
    """

    targets: int | None
    attacks: tuple[str, ...] | None
    classifier: str | None
    max_train: int | None
    control_beside: bool = False


#: ``--budget`` -> what an audit may spend. ``quick`` and ``cpu`` fit a 2-core CPU (``cpu``: the
#: CIFAR-10 copy at 32x32 in under 30 minutes): every attack at its ``audit`` budget where it has
#: one (the unpaired GANs: the smallest whose positive control passes), else its quick budget, and
#: the quick preset's small ViT for accuracy; ``cpu`` first takes an attack's own ``cpu`` budget
#: where it has one (itn: a longer training that reads pe's canonical form well) and trains each
#: control beside its attack; ``paper`` spends what the preset says, in one process (a second
#: would hold a second copy of the paper's networks).
AUDIT_BUDGETS: dict[str, AuditBudget] = {
    "quick": AuditBudget(targets=64, attacks=("audit", "quick"), classifier="quick", max_train=2000),
    "cpu": AuditBudget(targets=256, attacks=("cpu", "audit", "quick"), classifier="quick", max_train=10000,
                       control_beside=True),
    "paper": AuditBudget(targets=None, attacks=None, classifier=None, max_train=None),
}
#: ``progress(done, total, attack, threat_model)`` before each case.
Progress = Callable[[int, int, str, str], None]


@dataclass(frozen=True)
class AuditResult:
    """The audit's record and the folder its files were written to."""

    record: AuditDocument
    out_dir: Path

    @property
    def document(self) -> dict[str, Any]:
        """audit.json's document, as written."""
        return finite(self.record.to_json())


def attack_budget(attack: str, preferred: tuple[str, ...] | None) -> str | None:
    """The first of the ``preferred`` budgets that attack ``attack`` defines (None: the preset's
    name). An attack whose quick budget is too small for its positive control to pass (an
    unpaired GAN) defines an ``audit`` budget, the smallest that passes it on the CIFAR-10 copy
    at 32x32 (benchmarks/RESULTS.md), so that an audit's cell is evidence."""
    if preferred is None:
        return None
    budgets = ATTACKS.get(attack).budgets
    return next((name for name in preferred if name in budgets), preferred[-1])


def audit_cases(attacks: list[str]) -> list[tuple[str, str]]:
    """``(attack, threat model)`` for every threat model each attack supports, in the order of
    :data:`~ppattack.threat.THREAT_MODELS` (weakest first), then by attack name."""
    cases = [(name, threat) for name in attacks for threat in ATTACKS.get(name).threat_models]
    order = list(THREAT_MODELS)
    return sorted(cases, key=lambda case: (order.index(case[1]), case[0]))


def case_record(attack: str, threat: str, outcome: RunResult | None, error: str | None,
                not_applicable: str | None, folder: str | None) -> AuditCase:
    """One of audit.json's ``cases``: status ok / n/a / error and the case's scores (the SSIM
    up to a left-right mirror with ``mirrored``, whether the mirror was chosen)."""
    record = None if outcome is None else outcome.record
    scores = None if record is None else record.metrics
    mirror = None if scores is None else scores.ssim_up_to_mirror
    recovered = None if record is None or record.attack.key_recovery is None else record.attack.key_recovered
    return AuditCase(attack=attack, threat_model=threat, folder=folder,
                     status="ok" if outcome else "n/a" if not_applicable else "error",
                     reason=not_applicable or error,
                     means={metric.name: summary_mean(scores, metric.name) for metric in METRICS},
                     mirrored=None if mirror is None else mirror.mirrored, key_recovered=recovered,
                     control=None if record is None else record.control)


def worst_cases(cases: Sequence[AuditCase], baseline_ssim: float | None) -> dict[str, ThreatSummary]:
    """Per threat model, its worst case (:func:`~ppattack.verdict.worst_case` of the cases that
    ran, in their order): the best attack (highest mean SSIM), the highest mean SSIM up to a
    left-right mirror and its attack (None: no case measured it), whether any case recovered
    the key, the verdict, the best attack's control, and the attacks that did not apply or
    crashed (with their reasons)."""
    summary = {}
    for threat in THREAT_MODELS:
        own = [c for c in cases if c.threat_model == threat]
        scored = [c for c in own if c.status == "ok"]
        worst = worst_case([c.score() for c in scored], baseline_ssim)
        best, mirror = worst.best, worst.best_up_to_mirror
        summary[threat] = ThreatSummary(
            verdict=worst.verdict, best_attack=None if best is None else best.attack,
            best_ssim=None if best is None else best.ssim, best_lpips=None if best is None else best.lpips,
            best_attack_up_to_mirror=None if mirror is None else mirror.attack,
            best_ssim_up_to_mirror=None if mirror is None else mirror.ssim_up_to_mirror,
            key_recovered=bool(worst.key_recovered_by), key_recovered_by=worst.key_recovered_by,
            control_passed=worst.control_passed, attacks_run=tuple(c.attack for c in scored),
            not_applicable={c.attack: c.reason for c in own if c.status == "n/a"},
            errors={c.attack: c.reason for c in own if c.status == "error"})
    return summary


def budget_limit(budget: str, preset_name: str, given: Mapping[str, Any]) -> int | None:
    """The target images per case: the preset's number (or the user's ``targets`` among the
    ``given`` ``K=V`` values, a positive integer, else :class:`ParameterError`), capped by the
    budget's."""
    cap = AUDIT_BUDGETS[budget].targets
    targets = given.get("targets", get_preset(preset_name).get("targets"))
    if targets is None:
        return None
    targets = parse_int_param("targets", targets)
    return targets if cap is None else min(targets, cap)


def budget_params(budget: str, preset_name: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The run's ``given`` ``K=V`` values with what the budget sets where the preset differs: the
    classifier preset's ``classifier_*`` values and ``max_train`` capped (the user's win)."""
    spend = AUDIT_BUDGETS[budget]
    preset = get_preset(preset_name)
    given = dict(given)
    values: dict[str, Any] = {}
    if spend.classifier is not None:
        values.update({k: v for k, v in get_preset(spend.classifier).items() if k.startswith("classifier")})
    if spend.max_train is not None:
        current = given.get("max_train", preset.get("max_train"))
        values["max_train"] = (spend.max_train if current is None else
                               min(parse_int_param("max_train", current), spend.max_train))
    return {**{k: v for k, v in values.items() if preset.get(k) != v}, **given}


def run_audit(cipher: str, out_dir: str | Path, template: RunConfig, *, budget: str = "quick",
              attacks: Sequence[str] = ("*",), recorded: Sequence[str] | None = None,
              progress: Progress | None = None) -> AuditResult:
    """Audit ``cipher`` and write audit.json, audit.md, audit.png, index.html and every case's
    result folder ``<attack>/<threat>/`` into ``out_dir``, all together once the audit is done
    (a failed or interrupted audit writes nothing).

    Args:
        template: the run options every case shares; the audit sets cipher, attack, threat,
            control and the attack's budget itself (a threat or control set is an error), and
            ``limit`` overrides the budget's cap.
        attacks: the ensemble (names, wildcards allowed): by default every registered attack.
        budget: quick | cpu | paper: what the audit may spend (:data:`AUDIT_BUDGETS`).
        recorded: the template's fields that audit.json's ``options`` records
            (:func:`~ppattack.case.config_options`; the command line's: the ones it set), less
            ``accuracy``, with the ``limit`` the cases ran with last.
    """
    if budget not in AUDIT_BUDGETS:
        raise ParameterError(f"unknown budget '{budget}': choose one of {', '.join(AUDIT_BUDGETS)}")
    if template.threat is not None:
        raise ParameterError("an audit sets 'threat' itself")
    if template.control:
        raise ParameterError("an audit sets 'control' itself")
    started = time.time()
    CIPHERS.get(cipher)  # an unknown name fails before any work
    cases = audit_cases(expand(attacks, ATTACKS))
    limit = template.limit or budget_limit(budget, template.preset, template.params)
    shared = replace(template, cipher=cipher, limit=limit,
                     params=budget_params(budget, template.preset, template.params))
    options = {name: value for name, value in config_options(shared, recorded).items()
               if name not in ("accuracy", "limit")}
    out = Path(out_dir)
    check_placeable(out, [*AUDIT_FILES, *(Path(attack, threat, name) for attack, threat in cases
                                          for name in RUN_FILES)])
    check_params_taken([replace(shared, attack=attack, threat=threat, control=True,
                                attack_budget=attack_budget(attack, AUDIT_BUDGETS[budget].attacks))
                        for attack, threat in cases], template.params)
    records: list[AuditCase] = []
    results: dict[tuple[str, str], RunResult] = {}
    accuracy: Accuracy | None = None
    for index, (attack, threat) in enumerate(cases):
        if progress:
            progress(index, len(cases), attack, threat)
        config = replace(shared, attack=attack, threat=threat, control=True,
                         accuracy=template.accuracy and accuracy is None,
                         attack_budget=attack_budget(attack, AUDIT_BUDGETS[budget].attacks))
        config = replace(config, params=cell_params(config)[0])  # K=V only where it is taken
        outcome, error, not_applicable = None, None, None
        try:
            outcome = run(config, control_beside=AUDIT_BUDGETS[budget].control_beside)
        except MemoryNeedError:  # the size, not the attack: every case would fail alike
            raise
        except (ParameterError, ShapeError) as e:
            not_applicable = str(e)
        except DataError:  # bad input (a missing folder, unreadable images) fails every case alike
            raise
        except Exception as e:  # noqa: BLE001 -- a crashing attack is recorded, the audit goes on
            log.warning("%s (%s) crashed: %s: %s", attack, threat, type(e).__name__, e)
            error = f"{type(e).__name__}: {e}"
        folder = None
        if outcome is not None:
            folder = f"{attack}/{threat}"
            results[attack, threat] = outcome
            if accuracy is None:
                accuracy = outcome.record.accuracy
        records.append(case_record(attack, threat, outcome, error, not_applicable, folder))
    first = next(iter(results.values()), None)
    if first is None:
        raise ParameterError(f"no registered attack applies to cipher '{cipher}' with these options; "
                             f"the first: {records[0].attack}: {records[0].reason}")
    first_record = first.record
    baseline_ssim = summary_mean(first_record.baseline.scores, "ssim")
    threat_models = worst_cases(records, baseline_ssim)
    document = AuditDocument(
        ppattack_version=__version__, git_commit=_git_commit(), cipher=first_record.cipher,
        dataset=first_record.dataset, budget=budget, attacks=tuple(sorted({attack for attack, _ in cases})),
        options={**options, "limit": limit},
        baseline=BaselineMeans(baseline_ssim, summary_mean(first_record.baseline.scores, "lpips")),
        accuracy=accuracy, threat_models=threat_models, cases=tuple(records), seconds=time.time() - started)
    picture = png(grid_image(audit_rows(results, threat_models)))
    with staged_output(out) as staging:  # an interrupted or failed audit writes nothing
        for (attack, threat), outcome in results.items():
            write_run(outcome, staging / attack / threat)
        atomic_write_bytes(staging / "audit.png", picture)
        atomic_write_text(staging / "audit.md", audit_markdown(document))
        atomic_write_text(staging / "index.html", audit_html(document, picture))
        atomic_write_json(staging / "audit.json", finite(document.to_json()))
    return AuditResult(document, out)


def audit_rows(results: dict[tuple[str, str], RunResult], threat_models: dict[str, ThreatSummary]) -> list[GridRow]:
    """The picture: plain, encrypted, then the best restoration of each threat model that has one."""
    first = next(iter(results.values()))
    rows = [GridRow("plain", first.plain[:GRID_COLUMNS]), GridRow("encrypted", first.encrypted[:GRID_COLUMNS])]
    for threat, summary in threat_models.items():
        if summary.best_attack is None:
            continue
        outcome = results[summary.best_attack, threat]
        values = outcome.record.metrics.ssim.values[:GRID_COLUMNS]
        rows.append(GridRow(f"{threat}\n{summary.best_attack}", outcome.restored[:GRID_COLUMNS],
                            [ssim_caption(v) for v in values]))
    return rows


def summary_table(threat_models: Mapping[str, ThreatSummary]) -> tuple[list[str], list[list[str]]]:
    """The verdict table: a row per threat model."""
    headers = ["threat model", "verdict", "best attack", "best SSIM", "best LPIPS", "key recovered by",
               "control of best", "not applicable"]
    rows = []
    for threat, s in threat_models.items():
        control = "n/a" if s.control_passed is None else "passed" if s.control_passed else "FAILED"
        rows.append([threat, s.verdict, s.best_attack or "-", best_ssim_text(s), fmt(s.best_lpips),
                     ", ".join(s.key_recovered_by) or "-", control, ", ".join(s.not_applicable) or "-"])
    return headers, rows


def case_ssim_text(case: AuditCase) -> str:
    """A case's mean SSIM, with its SSIM up to a left-right mirror where that reads otherwise."""
    return ssim_up_to_mirror_text(case.means["ssim"], case.means.get("ssim_up_to_mirror"))


def audit_context(document: AuditDocument) -> list[str]:
    """The sentences under the verdict table: the cipher, accuracy, the baseline and the ladder, the time."""
    cipher, accuracy, dataset = document.cipher, document.accuracy or Accuracy.not_measured(""), document.dataset
    shape = "x".join(str(v) for v in dataset.image_shape)
    return [f"Cipher `{cipher.name}` {cipher.params} on `{dataset.name}` at {shape}, "
            f"budget `{document.budget}`: key space {fmt(cipher.key_space_bits, 2)} bits, separable "
            f"{fmt(cipher.separable_bits, 2)} bits, key reuse {cipher.key_reuse}.",
            f"Accuracy (trained once): plain model on plain images {fmt(accuracy.plain_model_on_plain)}, "
            f"protected model on encrypted images {fmt(accuracy.protected_model_on_encrypted)}"
            + (f" ({accuracy.reason})" if accuracy.reason else "") + ".",
            f"No-attack baseline (the ciphertexts themselves): SSIM {fmt(document.baseline.ssim)}. "
            f"Ladder: key recovered (an attack's key decrypts exactly) / content restored (mean SSIM >= "
            f"{RESTORED_SSIM}) / restored (mirrored) (mean SSIM below {RESTORED_SSIM} as restored, >= "
            f"{RESTORED_SSIM} up to a left-right mirror of all the restorations) / partially restored "
            f"(mean SSIM >= baseline + {PARTIAL_MARGIN}) / not broken by these attacks.",
            f"{document.seconds:.0f} s."]


def audit_markdown(document: AuditDocument) -> str:
    """audit.md: the verdict table, its context, every case and the picture."""
    headers, rows = summary_table(document.threat_models)
    lines = [f"# ppattack audit: {document.cipher.name}", "", *audit_context(document), "",
             "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "## Every case", "", "| attack | threat model | status | SSIM | key recovered | control SSIM | reason |",
              "|---|---|---|---|---|---|---|"]
    for c in document.cases:
        control_ssim = None if c.control is None else c.control.ssim
        lines.append(f"| {c.attack} | {c.threat_model} | {c.status} | {case_ssim_text(c)} | "
                     f"{'-' if c.key_recovered is None else 'yes' if c.key_recovered else 'no'} | "
                     f"{fmt(control_ssim)} | {(c.reason or '').replace('|', '/')} |")
    lines += ["", "A cipher these attacks fail against is *not broken by these attacks*, not secure.",
              "![best restoration per threat model](audit.png)", ""]
    return "\n".join(lines)


def audit_html(document: AuditDocument, picture: bytes) -> str:
    """index.html: the verdict table, the picture inline, every case; no scripts."""
    import base64
    from html import escape

    from .report import _HTML_STYLE, _html_table

    headers, rows = summary_table(document.threat_models)
    case_rows = [[c.attack, c.threat_model, c.status, case_ssim_text(c), c.reason or "", c.folder or ""]
                 for c in document.cases]
    image = base64.b64encode(picture).decode("ascii")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>ppattack audit: {escape(document.cipher.name)}</title>",
        f"<style>{_HTML_STYLE}</style></head><body>",
        f"<h1>ppattack audit: {escape(document.cipher.name)}</h1>",
        *(f"<p>{escape(line)}</p>" for line in audit_context(document)),
        _html_table(headers, rows),
        f'<img alt="best restoration per threat model" src="data:image/png;base64,{image}">',
        "<h2>Every case</h2>",
        _html_table(["attack", "threat model", "status", "SSIM", "reason", "folder"], case_rows, links=5),
        "<p>A cipher these attacks fail against is <em>not broken by these attacks</em>, not secure.</p>",
        "</body></html>", ""])
