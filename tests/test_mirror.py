"""A restoration that is the left-right mirror image of the truth is reported as such (issue 28):
the SSIM up to a left-right mirror beside the SSIM in every result, and the verdict rung
"restored (mirrored)" in audits and bench leaderboards."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ppattack.attacks.fr import FR
from ppattack.audit import run_audit, summary_table, worst_cases
from ppattack.audit_records import AuditCase
from ppattack.bench import run_bench
from ppattack.cli import cli
from ppattack.harness import RunConfig, run
from ppattack.metrics import better_orientation, score, ssim, ssim_up_to_mirror
from ppattack.records import RunRecord
from ppattack.report import finite, report_markdown, write_run
from ppattack.schemas import validate
from ppattack.verdict import RESTORED_SSIM, VERDICTS, verdict

LABEL = "up to a left-right mirror"


def noise(count: int = 4, seed: int = 0) -> torch.Tensor:
    """Random uint8 images: none is close to its own mirror image."""
    return torch.randint(0, 256, (count, 3, 32, 32), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)


# -- the metric ---------------------------------------------------------------------------------

def test_the_exact_mirror_of_every_image_scores_one_up_to_the_mirror():
    plain = noise()
    values, mirrored = ssim_up_to_mirror(plain.flip(-1), plain)
    assert mirrored is True and values.tolist() == pytest.approx([1.0] * 4)
    scores = score(plain.flip(-1), plain)
    assert scores["ssim"]["mean"] < 0.1  # as restored, the mirror image reads as noise
    assert scores["ssim_up_to_mirror"]["mean"] == pytest.approx(1.0)
    assert scores["ssim_up_to_mirror"]["mirrored"] is True


def test_one_orientation_for_the_whole_set_not_the_best_per_image():
    """Two images mirrored, two not: either orientation restores half the set, so the metric is
    that orientation's mean (about 0.5), not the per-image maximum (1.0)."""
    plain = noise()
    restored = torch.cat([plain[:2].flip(-1), plain[2:]])
    values, mirrored = ssim_up_to_mirror(restored, plain)
    as_restored, flipped = ssim(restored, plain), ssim(restored.flip(-1), plain)
    expected = flipped if flipped.mean() > as_restored.mean() else as_restored
    assert mirrored == bool(flipped.mean() > as_restored.mean())
    assert values.tolist() == pytest.approx(expected.tolist())
    assert 0.4 < values.mean() < 0.6
    assert np.maximum(as_restored, flipped).mean() == pytest.approx(1.0)  # what a per-image max would say


def test_restorations_as_they_are_keep_their_orientation():
    plain = noise()
    values, mirrored = ssim_up_to_mirror(plain, plain)
    assert mirrored is False and values.tolist() == pytest.approx([1.0] * 4)
    tie = np.array([0.5, 0.5])
    assert better_orientation(tie, tie[::-1].copy())[1] is False  # a tie keeps the restorations
    assert better_orientation(np.zeros(0), np.zeros(0))[1] is False  # no images


# -- the verdict rung ---------------------------------------------------------------------------

def test_restored_mirrored_is_the_rung_below_content_restored():
    assert VERDICTS.index("restored (mirrored)") == VERDICTS.index("content restored") + 1
    assert verdict(0.2, 0.1, key_recovered=False, best_ssim_up_to_mirror=RESTORED_SSIM) == "restored (mirrored)"
    assert verdict(0.2, 0.1, key_recovered=False, best_ssim_up_to_mirror=RESTORED_SSIM - 0.01) == "partially restored"
    assert verdict(0.95, 0.1, key_recovered=False, best_ssim_up_to_mirror=0.99) == "content restored"
    assert verdict(0.2, 0.1, key_recovered=True, best_ssim_up_to_mirror=0.99) == "key recovered"
    assert verdict(0.15, 0.1, key_recovered=False, best_ssim_up_to_mirror=None) == "not broken by these attacks"


def test_the_worst_case_takes_the_best_ssim_up_to_a_mirror_of_any_attack():
    def case(attack, ssim_value, up_to_mirror, mirrored):
        return AuditCase(attack=attack, threat_model="kpa", folder=f"{attack}/kpa", status="ok", reason=None,
                         means={"ssim": ssim_value, "ssim_up_to_mirror": up_to_mirror, "lpips": None, "psnr": None},
                         mirrored=mirrored, key_recovered=False, control=None)

    cases = [case("a", 0.3, 0.3, False), case("b", 0.2, 0.98, True)]
    kpa = worst_cases(cases, baseline_ssim=0.1)["kpa"]
    assert kpa.verdict == "restored (mirrored)"
    assert kpa.best_attack == "a" and kpa.best_ssim == 0.3  # the best attack is still by SSIM
    assert kpa.best_attack_up_to_mirror == "b" and kpa.best_ssim_up_to_mirror == 0.98
    (row,) = summary_table({"kpa": kpa})[1]
    assert row[3] == f"0.300 ({LABEL}: 0.980, b)"


# -- through a run, a bench, an audit and the command line -------------------------------------------

@pytest.fixture
def mirroring_fr(monkeypatch: pytest.MonkeyPatch) -> None:
    """fr, which restores ``plain`` exactly, returns its restorations mirrored left-right."""
    original = FR.__call__

    def mirrored(self, view):
        outcome = original(self, view)
        return dataclasses.replace(outcome, images=outcome.images.flip(-1))

    monkeypatch.setattr(FR, "__call__", mirrored)


def test_a_run_that_restores_the_mirror_image_says_so(mirroring_fr, tmp_path: Path):
    result = run(RunConfig(cipher="plain", attack="fr", threat="coa", limit=8, accuracy=False))
    metrics = result.record.metrics
    assert metrics.ssim.mean < RESTORED_SSIM  # the SSIM is kept as it is
    assert metrics.ssim_up_to_mirror.mean == pytest.approx(1.0) and metrics.ssim_up_to_mirror.mirrored
    write_run(result, tmp_path)
    document = json.loads((tmp_path / "result.json").read_text())
    assert validate(document, "result") == []
    assert document["metrics"]["ssim_up_to_mirror"]["mirrored"] is True
    assert "ssim_up_to_mirror" in document["metric_conventions"]
    assert RunRecord.from_json(document) == result.record
    report = (tmp_path / "report.md").read_text()
    assert f"| SSIM (wang) ↑ | {metrics.ssim.mean:.3f} |" in report
    assert "| SSIM (wang) up to a left-right mirror ↑ | 1.000 |" in report
    assert "the attack restored the mirror image of the targets" in report


def test_a_result_written_before_the_metric_still_reads(mirroring_fr):
    document = finite(run(RunConfig(cipher="plain", attack="fr", threat="coa", limit=4,
                                    accuracy=False)).record.to_json())
    for scores in (document["metrics"], document["baseline"]):
        del scores["ssim_up_to_mirror"]
    del document["metric_conventions"]["ssim_up_to_mirror"]
    assert validate(document, "result") == []
    record = RunRecord.from_json(document)
    assert record.metrics.ssim_up_to_mirror is None
    assert "| SSIM (wang) up to a left-right mirror ↑ | n/a |" in report_markdown(record)
    assert "the attack restored the mirror image" not in report_markdown(record)


def test_the_command_line_summary_shows_the_ssim_up_to_a_mirror(mirroring_fr, tmp_path: Path, cli_runner):
    result = cli_runner.invoke(cli, ["run", "--cipher", "plain", "--attack", "fr", "--threat", "coa", "--limit", "4",
                                     "--no-accuracy", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "SSIM (wang) up to a left-right mirror" in result.output
    assert "the attack restored the mirror image of the targets" in result.output


def test_bench_and_audit_put_a_mirrored_restoration_on_its_rung(mirroring_fr, tmp_path: Path):
    bench = run_bench(["plain"], ["fr"], tmp_path / "bench", RunConfig(cipher="*", attack="*", threat="coa", limit=4, accuracy=False))
    assert validate(bench.document, "bench") == []
    (row,) = bench.leaderboard
    assert row.verdict == "restored (mirrored)" and row.best_ssim_up_to_mirror == pytest.approx(1.0)
    assert row.attacks["fr"].means["ssim_up_to_mirror"] == pytest.approx(1.0)
    leaderboard = (tmp_path / "bench" / "leaderboard.md").read_text()
    assert f"({LABEL}: 1.000)" in leaderboard and "| plain | restored (mirrored) |" in leaderboard

    audit = run_audit("plain", tmp_path / "audit", RunConfig(cipher="plain", attack="*", accuracy=False, limit=4), attacks=["fr"])
    assert validate(audit.document, "audit") == []
    coa = audit.document["threat_models"]["coa"]
    assert coa["verdict"] == "restored (mirrored)" and coa["best_ssim_up_to_mirror"] == pytest.approx(1.0)
    case = next(c for c in audit.document["cases"] if c["threat_model"] == "coa")
    assert case["mirrored"] is True
    markdown = (tmp_path / "audit" / "audit.md").read_text()
    assert "| coa | restored (mirrored) | fr |" in markdown and f"({LABEL}: 1.000)" in markdown
