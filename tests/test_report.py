"""Result files: result.json against the shipped schema, report.md, and the grid's layout."""
from __future__ import annotations

import copy
import io
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ppattack.cli import cli
from ppattack.harness import RunConfig, RunResult, run
from ppattack.records import RunRecord
from ppattack.report import (CAPTION_HEIGHT, GAP, GridRow, cell_size, displayable, finite, grid_image,
                             grid_layout, grid_png, report_markdown, write_run)
from ppattack.schemas import load_schema, validate


@pytest.fixture(scope="module")
def result() -> RunResult:
    return run(RunConfig(cipher="proposed", attack="fr", limit=8, accuracy=False))


@pytest.fixture
def document(result: RunResult) -> dict:
    return copy.deepcopy(finite(result.document))


# -- result.json and its schema ------------------------------------------------------------------

def test_schemas_ship_as_package_data():
    folder = resources.files("ppattack.schemas")
    for name in ("result", "bench"):
        text = folder.joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
        assert json.loads(text)["type"] == "object" == load_schema(name)["type"]


def test_result_json_matches_the_schema(result: RunResult, tmp_path: Path):
    write_run(result, tmp_path)
    document = json.loads((tmp_path / "result.json").read_text())
    assert validate(document, "result") == []
    metrics = document["metrics"]
    assert len(metrics["ssim"]["values"]) == 8 and len(document["baseline"]["ssim"]["values"]) == 8
    assert metrics["lpips"] is None and "--lpips-weights" in metrics["lpips_unavailable"]
    assert document["metric_conventions"]["ssim"].startswith("wang")
    assert document["control"] == {"run": False, "reason": "not requested (--control runs the same attack on plain)"}
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temporary files


@pytest.mark.parametrize("path, value", [
    (("metrics", "ssim", "mean"), "high"),
    (("cipher", "key_space_bits"), None),
    (("attack", "threat_model"), "telepathy"),
    (("accuracy", "plain_model_on_plain"), 87.5),  # a fraction in [0, 1], not a percentage
    (("dataset", "image_shape"), [32, 32]),
    (("metrics", "lpips_unavailable"), None),  # LPIPS null needs its reason
    (("surprise",), 1),
    (("control",), {"run": True}),  # a control that ran needs its score and verdict
    (("control",), {"run": False}),  # one that did not needs its reason
])
def test_the_schema_is_strict_on_core_fields(document: dict, path: tuple, value):
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    assert validate(document, "result"), path


def test_the_schema_is_open_where_others_add_facts(document: dict):
    document["attack"]["facts"] = {"key_recovered_fraction": 0.25, "per_block": [1, 2], "note": "x"}
    document["accuracy"] = {"plain_model_on_plain": 0.91, "protected_model_on_encrypted": 0.88,
                            "reason": None, "model": "vit_tiny", "epochs": 3}
    document["config"]["classifier"] = "vit"
    document["environment"]["threads"] = 2
    assert validate(document, "result") == []
    del document["metrics"]["ssim"]
    assert validate(document, "result") == ["at /metrics: 'ssim' is a required property"]


@pytest.mark.parametrize("name", ["result", "bench", "audit"])
def test_the_schemas_are_valid_json_schema(name):
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(load_schema(name))  # raises on a malformed schema


# -- report.md ------------------------------------------------------------------------------------

def test_report_shows_metrics_lpips_reason_and_accuracy_reason(document: dict):
    text = report_markdown(RunRecord.from_json(document))
    assert text.startswith("# proposed vs fr")
    assert f"| SSIM (wang) ↑ | {document['metrics']['ssim']['mean']:.3f} |" in text
    assert f"LPIPS unavailable: {document['metrics']['lpips_unavailable']}." in text
    assert "Accuracy: skipped (--no-accuracy)." in text
    assert "300.58" in text and "not broken by these attacks" in text and "grid.png" in text


def test_report_states_the_positive_control_and_what_a_failure_means(document: dict):
    assert "Positive control: not requested (--control runs the same attack on plain)." in report_markdown(RunRecord.from_json(document))
    document["control"] = {"run": True, "cipher": "plain", "params": {"attack.block_size": 4},
                           "ssim": 0.9412, "psnr": 27.1, "threshold": 0.9, "passed": True, "seconds": 3.5}
    assert validate(document, "result") == []
    assert "Positive control (fr on `plain`, same data, preset and seed): SSIM 0.941 >= 0.9: passed." in report_markdown(RunRecord.from_json(document))
    document["control"].update(ssim=0.4, passed=False, psnr="inf")
    assert validate(document, "result") == []
    text = report_markdown(RunRecord.from_json(document))
    assert "SSIM 0.400 < 0.9: FAILED" in text and "no evidence either way" in text


def test_terminal_summary_puts_accuracy_beside_the_metrics(document: dict, capsys):
    from ppattack.cli import print_summary

    print_summary(RunRecord.from_json(document), Path("runs/x"))
    text = capsys.readouterr().out
    assert "accuracy: protected model, encrypted images" in text and "Accuracy: skipped (--no-accuracy)" in text
    assert f"LPIPS unavailable: {document['metrics']['lpips_unavailable']}" in text
    document["accuracy"] = {"plain_model_on_plain": 0.912, "protected_model_on_encrypted": 0.8755, "reason": None}
    print_summary(RunRecord.from_json(document), Path("runs/x"))
    text = capsys.readouterr().out
    assert "87.5%" in text and "91.2%" in text and "Accuracy:" not in text


def test_report_shows_accuracy_lpips_and_facts_when_present(document: dict):
    document["accuracy"] = {"plain_model_on_plain": 0.912, "protected_model_on_encrypted": 0.8755,
                            "reason": None}
    summary = {"mean": 0.4567, "median": 0.45, "std": 0.01, "values": [0.4567] * 8}
    document["metrics"].update(lpips=summary, lpips_unavailable=None)
    document["metric_conventions"]["lpips_model"]["backbone"] = {
        "file": "alexnet-owt-7be5be79.pth", "sha256": "7be5be79" + "0" * 56, "torchvision_imagenet": True}
    document["attack"]["facts"] = {"key_recovered_fraction": 0.25}
    assert validate(document, "result") == []
    text = report_markdown(RunRecord.from_json(document))
    assert "91.2%" in text and "87.5%" in text and "Accuracy:" not in text
    assert "| LPIPS (AlexNet) ↓ | 0.457 |" in text and "LPIPS unavailable" not in text
    assert "Warning" not in text and "| key_recovered_fraction | 0.2500 |" in text
    document["metric_conventions"]["lpips_model"]["backbone"].update(sha256="0ae4" + "0" * 60,
                                                                     torchvision_imagenet=False)
    assert "is not torchvision's ImageNet AlexNet checkpoint" in report_markdown(RunRecord.from_json(document))


# -- grid.png (the seed's Fig. 4) -----------------------------------------------------------------

def _images(count: int, shape=(3, 32, 32), seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, *shape), generator=gen, dtype=torch.uint8)


def test_grid_layout_rows_size_and_tiles():
    plain, encrypted, restored = _images(10, seed=0), _images(10, seed=1), _images(10, seed=2)
    ssim_values = [0.1 * i for i in range(10)]
    picture = Image.open(io.BytesIO(grid_png(plain, encrypted, restored, ssim_values)))
    rows = [GridRow("plain", plain), GridRow("encrypted", encrypted), GridRow("restored", restored, ["x"] * 10)]
    layout = grid_layout(rows)
    cell = cell_size(32)
    assert cell == 96 and layout.columns == 8  # the first 8 images, upscaled 3x
    assert layout.row_tops == (0, cell + GAP, 2 * (cell + GAP))
    assert picture.size == (layout.label_width + 8 * cell + 7 * GAP, 3 * cell + CAPTION_HEIGHT + 2 * GAP)
    pixels = np.asarray(picture.convert("RGB"))
    for batch, top in zip((plain, encrypted, restored), layout.row_tops):
        for col in range(8):
            left = layout.label_width + col * (cell + GAP)
            tile = pixels[top:top + cell, left:left + cell]
            expected = batch[col].permute(1, 2, 0).numpy().repeat(3, 0).repeat(3, 1)
            assert np.array_equal(tile, expected), (top, col)
    caption = pixels[3 * cell + 2 * GAP:, layout.label_width:layout.label_width + cell]
    assert (caption < 128).any()  # the SSIM text is drawn under the restored image
    assert (pixels[:cell, layout.label_width + cell:layout.label_width + cell + GAP] == 255).all()


def test_grid_with_few_large_or_odd_images():
    large = _images(3, (3, 224, 224))
    layout = grid_layout([GridRow("plain", large), GridRow("restored", large, ["a"] * 3)])
    assert layout.cell == 128 and layout.columns == 3
    assert layout.height == 2 * 128 + CAPTION_HEIGHT + GAP
    wide = _images(3, (3, 32, 64))  # e.g. an expanding cipher: fitted into the cell
    rows = [GridRow("plain", _images(3)), GridRow("encrypted", wide)]
    layout = grid_layout(rows)
    picture = np.asarray(grid_image(rows))
    assert picture.shape == (layout.height, layout.width, 3) and layout.cell == 128
    top, left = layout.row_tops[1], layout.label_width
    assert (picture[top:top + 32, left:left + 128] == 255).all()  # letterboxed: 128x64, centred
    assert not (picture[top + 32:top + 96, left:left + 128] == 255).all()
    grey = _images(2, (1, 32, 32))
    assert grid_image([GridRow("grey", grey)]).mode == "RGB"


def test_non_image_ciphertexts_are_stretched_for_display_only():
    numbers = torch.arange(2 * 3 * 32 * 32, dtype=torch.int32).reshape(2, 3, 32, 32) * 1000
    shown = displayable(numbers[0])
    assert shown.dtype == torch.uint8 and shown.min() == 0 and shown.max() == 255
    assert displayable(_images(1, (4, 32, 32))[0]).shape == (1, 32, 32)
    assert grid_image([GridRow("plain", _images(2)), GridRow("encrypted", numbers)]).size[0] > 0


# -- the command line ------------------------------------------------------------------------------

def test_run_with_lpips_weights_reports_lpips(tmp_path: Path, cli_runner, random_alexnet_trunk: Path):
    out = tmp_path / "run"
    result = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--limit", "4",
                                     "--no-accuracy", "--out", str(out),
                                     "--lpips-weights", str(random_alexnet_trunk)])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "result.json").read_text())
    assert validate(document, "result") == []
    assert len(document["metrics"]["lpips"]["values"]) == 4 and document["metrics"]["lpips_unavailable"] is None
    assert isinstance(document["baseline"]["lpips"]["mean"], float)
    assert document["metric_conventions"]["lpips_model"]["backbone"]["torchvision_imagenet"] is False
    assert "not torchvision's ImageNet AlexNet" in (out / "report.md").read_text()
    assert "LPIPS" in result.stdout


def test_run_with_a_missing_lpips_weights_file_exits_2(tmp_path: Path, cli_runner):
    result = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr",
                                     "--lpips-weights", str(tmp_path / "none.pth")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
