"""The metric table (ppattack.metrics.METRICS) is the one place a metric is added: a row there
reaches result.json and its schema, report.md, the terminal summary and the bench and audit
tables."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ppattack.metrics as metrics
import ppattack.schemas as schemas
from ppattack.audit import case_record
from ppattack.bench import leaderboard
from ppattack.bench_records import BenchCell
from ppattack.harness import RunConfig, run
from ppattack.records import RunRecord
from ppattack.report import finite, report_markdown


def mean_absolute_error(restored: torch.Tensor, plain: torch.Tensor) -> np.ndarray:
    """Per-image mean absolute difference, in grey levels."""
    return (restored.double() - plain.double()).abs().mean(dim=(1, 2, 3)).cpu().numpy()


FAKE = metrics.Metric("fake_mae", mean_absolute_error, False, 4, "FAKE mean absolute error",
                      "a metric added by a test: mean |restored - plain| in grey levels")


@pytest.fixture
def table_with_a_fake_metric(monkeypatch):
    """The table with one more row, as if metrics.py said so: every module that read the table
    reads the new one."""
    table = (*metrics.METRICS, FAKE)
    readers = [module for name, module in sys.modules.items()
               if name.startswith("ppattack") and getattr(module, "METRICS", None) is metrics.METRICS]
    for module in readers:
        monkeypatch.setattr(module, "METRICS", table)
    schemas._registry.cache_clear()  # the cached schemas were built from the old table
    yield table
    schemas._registry.cache_clear()


def test_a_metric_added_to_the_table_reaches_every_table_of_results(table_with_a_fake_metric, capsys):
    from ppattack.cli import print_summary

    result = run(RunConfig(cipher="proposed", attack="fr", limit=8, accuracy=False))
    record = result.record
    expected = mean_absolute_error(result.restored, result.plain)
    assert record.metrics["fake_mae"].values == pytest.approx(tuple(expected))

    document = json.loads(json.dumps(finite(record.to_json())))
    assert document["metrics"]["fake_mae"]["mean"] == pytest.approx(float(expected.mean()))
    assert document["metric_conventions"]["fake_mae"] == FAKE.convention
    assert schemas.validate(document, "result") == []
    assert "FAKE mean absolute error" in schemas.load_schema("result")["$defs"]["scores"]["properties"]["fake_mae"]["description"]
    assert RunRecord.from_json(document) == record

    report = report_markdown(record)
    assert f"| FAKE mean absolute error ↓ | {expected.mean():.4f} |" in report

    print_summary(record, Path("runs/x"))
    summary = capsys.readouterr().out
    assert "FAKE mean absolute error ↓" in summary and f"{expected.mean():.4f}" in summary

    cell = BenchCell("proposed", "fr", 0, "proposed/fr", (), "ok", None, None, record)
    (row,) = leaderboard([cell], ["proposed"], ["fr"])
    assert row.attacks["fr"].to_json()["fake_mae"] == pytest.approx(float(expected.mean()))
    case = case_record("fr", "coa+public", result, None, None, "fr/coa+public")
    assert case.to_json()["fake_mae"] == pytest.approx(float(expected.mean()))


def test_the_table_gives_each_metric_a_direction_digits_label_and_convention():
    names = [metric.name for metric in metrics.METRICS]
    assert names == ["ssim", "ssim_up_to_mirror", "ssim_skimage_legacy", "psnr", "lpips"]
    assert [metric.higher_is_better for metric in metrics.METRICS] == [True, True, True, True, False]
    assert metrics.METRICS[3].heading() == "PSNR (dB) ↑" and metrics.METRICS[4].heading() == "LPIPS (AlexNet) ↓"
    assert list(metrics.conventions("offline"))[:-1] == names
