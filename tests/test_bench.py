"""The bench: the cipher x attack matrix, its combined files, the leaderboard and the CLI."""
from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from ppattack import bench as bench_module
from ppattack.bench import expand, leaderboard, run_bench, split_names
from ppattack.bench_records import AttackEntry, BenchCell, BenchDocument
from ppattack.cli import cli
from ppattack.errors import ParameterError, PPAttackError, UnknownComponentError
from ppattack.harness import RunConfig
from ppattack.records import Accuracy, Baseline, CipherRecord, RunRecord, Scores, Summary
from ppattack.registry import ATTACKS, CIPHERS
from ppattack.report import CAPTION_HEIGHT, GAP, cell_size, finite
from ppattack.schemas import validate


@pytest.fixture(scope="module")
def bench_out(tmp_path_factory: pytest.TempPathFactory):
    """`ppattack bench` over plain and proposed with fr, on 4 images (not a tty: plain text)."""
    from click.testing import CliRunner

    out = tmp_path_factory.mktemp("bench")
    result = CliRunner().invoke(cli, ["bench", "--ciphers", "plain,proposed", "--attacks", "fr",
                                      "--limit", "4", "--no-accuracy", "--out", str(out)])
    return out, result


def test_bench_writes_the_combined_files(bench_out):
    out, result = bench_out
    assert result.exit_code == 0, result.output
    for name in ("bench.json", "leaderboard.md", "grid.png", "index.html"):
        assert (out / name).is_file(), name
    for cipher in ("plain", "proposed"):
        assert {p.name for p in (out / cipher / "fr").iterdir()} == {"result.json", "report.md", "grid.png"}
    assert not list(out.rglob(".*tmp"))
    document = json.loads((out / "bench.json").read_text())
    assert validate(document, "bench") == []
    assert all(validate(cell["result"], "result") == [] for cell in document["cells"])
    assert json.loads((out / "proposed" / "fr" / "result.json").read_text()) == document["cells"][1]["result"]


def test_bench_json_reads_back_into_its_record_and_writes_the_same_text(bench_out):
    out, _ = bench_out
    text = (out / "bench.json").read_text()
    record = BenchDocument.from_json(json.loads(text))
    assert record.leaderboard[0].cipher == "plain" and record.cells[1].result.config.cipher == "proposed"
    assert json.dumps(finite(record.to_json()), indent=2) + "\n" == text


def test_leaderboard_rows_and_terminal_table(bench_out):
    out, result = bench_out
    document = json.loads((out / "bench.json").read_text())
    plain, proposed = document["leaderboard"]
    assert plain["cipher"] == "plain" and plain["key_space_bits"] == 0 and plain["baseline_ssim"] == pytest.approx(1.0)
    assert proposed["key_space_bits"] == pytest.approx(300.58, abs=0.01)
    assert proposed["best_attack"] == "fr" and proposed["best_ssim"] == proposed["attacks"]["fr"]["ssim"]
    assert proposed["accuracy"]["reason"] == "skipped (--no-accuracy)"
    assert proposed["best_lpips"] is None and "--lpips-weights" in proposed["lpips_unavailable"]
    # not a tty: the markdown table, the same one leaderboard.md holds
    header = ("| cipher | verdict | key space (bits) | separable (bits) | accuracy plain/plain | accuracy "
              "protected/encrypted | no-attack SSIM | best attack | best SSIM | best LPIPS | fr SSIM |")
    assert result.stdout.splitlines()[0] == header
    assert header in (out / "leaderboard.md").read_text()
    row = next(line for line in result.stdout.splitlines() if line.startswith("| proposed |"))
    assert row.startswith("| proposed | not broken by these attacks | 300.58 | 296.00 | n/a | n/a |")
    assert f"| fr | {proposed['best_ssim']:.3f} | n/a | {proposed['best_ssim']:.3f} (coa+public) |" in row


def test_bench_grid_has_a_row_per_cipher_and_attack(bench_out):
    out, _ = bench_out
    cell = cell_size(32)
    # rows: plain; plain encrypted, plain fr (captioned); proposed encrypted, proposed fr (captioned)
    height = 5 * cell + 2 * CAPTION_HEIGHT + 4 * GAP
    width, actual_height = Image.open(out / "grid.png").size
    assert actual_height == height and width > 4 * cell


def test_index_html_is_self_contained(bench_out):
    out, _ = bench_out
    page = (out / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count('src="data:image/png;base64,') == 1
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere
    assert "<script" not in page and "not broken by these attacks" in page
    assert page.count("<tr>") == 1 + 2 + 1 + 2  # leaderboard and cells: header + rows each


def test_names_and_wildcards():
    assert split_names(" plain, proposed,,plain ") == ["plain", "proposed"]
    assert expand(["*"], CIPHERS) == CIPHERS.names()
    assert expand(["fr"], ATTACKS) == ["fr"]
    with pytest.raises(UnknownComponentError, match="did you mean proposed"):
        expand(["proposd"], CIPHERS)
    with pytest.raises(ParameterError, match="no cipher matches"):
        expand(["zz*"], CIPHERS)


def test_bench_cli_bad_names_exit_2(cli_runner):
    result = cli_runner.invoke(cli, ["bench", "--ciphers", "proposed,nosuch", "--attacks", "fr"])
    assert result.exit_code == 2 and result.stderr.startswith("error: unknown cipher 'nosuch'")


def test_a_parameter_no_cell_takes_is_an_error(tmp_path: Path):
    with pytest.raises(ParameterError, match="wat"):
        run_bench(["proposed"], ["fr"], tmp_path, RunConfig(cipher="*", attack="*", params={"wat": 1}, limit=2, accuracy=False))
    assert not list(tmp_path.iterdir())


def test_failed_cells_are_recorded_and_the_bench_goes_on(tmp_path: Path, cli_runner, monkeypatch):
    real_run = bench_module.run

    def flaky(config, **options):
        if config.cipher == "plain":
            raise PPAttackError("this attack cannot read plain images")
        return real_run(config, **options)

    monkeypatch.setattr(bench_module, "run", flaky)
    result = cli_runner.invoke(cli, ["bench", "--ciphers", "plain,proposed", "--attacks", "fr",
                                     "--limit", "2", "--no-accuracy", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "- plain vs fr failed: this attack cannot read plain images" in result.stdout
    document = json.loads((tmp_path / "bench.json").read_text())
    assert validate(document, "bench") == []
    proposed, plain = document["leaderboard"]  # sorted by verdict: plain has none
    assert plain["cipher"] == "plain" and plain["verdict"] == "no attack applies"
    assert plain["best_attack"] is None and plain["attacks"]["fr"]["error"]
    assert plain["key_space_bits"] == 0  # from the cipher itself when no cell ran
    assert "| plain | no attack applies | 0.00 | 0.00 | n/a | n/a | n/a | n/a | n/a | n/a | error |" in result.stdout
    def broken(config, **options):
        raise PPAttackError("broken")

    monkeypatch.setattr(bench_module, "run", broken)
    with pytest.raises(PPAttackError, match="every cell of the bench failed.*broken"):
        run_bench(["proposed"], ["fr"], tmp_path / "none", RunConfig(cipher="*", attack="*", limit=2, accuracy=False))
    result = cli_runner.invoke(cli, ["bench", "--ciphers", "proposed", "--attacks", "fr",
                                     "--out", str(tmp_path / "none")])
    assert result.exit_code == 2 and "every cell of the bench failed" in result.stderr


def test_leaderboard_picks_the_best_attack_and_the_accuracy(bench_out):
    out, _ = bench_out
    base = RunRecord.from_json(json.loads((out / "proposed" / "fr" / "result.json").read_text()))

    def cell(cipher, attack, ssim, lpips=None, accuracy=None, error=None, reason=None):
        if error or reason:
            return BenchCell(cipher, attack, 0, None, (), "error" if error else "n/a", error, reason, None)
        summary = lambda v: None if v is None else Summary(v, v, 0.0, (v,))  # noqa: E731
        scores = Scores({"ssim": summary(ssim), "ssim_skimage_legacy": summary(ssim), "psnr": summary(10.0),
                         "lpips": summary(lpips)}, None if lpips else "offline")
        return BenchCell(cipher, attack, 0, f"{cipher}/{attack}", (), "ok", None, None, replace(
            base, cipher=CipherRecord(cipher, {}, 10.0, 5.0, "shared", ""),
            attack=replace(base.attack, threat_model="coa", key_recovery=None), metrics=scores,
            baseline=Baseline(Scores({**scores.summaries, "ssim": summary(0.2), "lpips": None}, "offline")),
            accuracy=Accuracy.from_json(accuracy or {"plain_model_on_plain": None,
                                                     "protected_model_on_encrypted": None, "reason": "not trained"})))

    trained = {"plain_model_on_plain": 0.9, "protected_model_on_encrypted": 0.8, "reason": None}
    cells = [cell("c", "a1", 0.3, 0.5), cell("c", "a2", 0.6, 0.4, accuracy=trained), cell("c", "a3", None, error="boom"),
             cell("d", "a1", None, reason="outside its class"), cell("e", "a1", 0.95)]
    other, row, unapplied = leaderboard(cells, ["d", "c", "e"], ["a1", "a2", "a3"])
    assert [other.cipher, row.cipher, unapplied.cipher] == ["e", "c", "d"]  # by verdict
    assert other.verdict == "content restored" and unapplied.verdict == "no attack applies"
    assert unapplied.attacks["a1"].status == "n/a" and unapplied.attacks["a1"].reason == "outside its class"
    assert row.best_attack == "a2" and row.best_ssim == 0.6 and row.best_lpips == 0.4
    assert row.accuracy.to_json() == trained and row.baseline_ssim == 0.2
    assert row.verdict == "partially restored"  # 0.6 >= baseline 0.2 + 0.1
    assert row.attacks["a3"] == AttackEntry(status="error", threat_model=None, error="boom", reason=None,
                                            key_recovered=None, means={"ssim": None, "ssim_up_to_mirror": None,
                                                                       "ssim_skimage_legacy": None, "psnr": None,
                                                                       "lpips": None})
    assert row.attacks["a3"].to_json() == {"status": "error", "threat_model": None, "ssim": None,
                                           "ssim_up_to_mirror": None, "ssim_skimage_legacy": None, "psnr": None,
                                           "lpips": None, "error": "boom", "reason": None, "key_recovered": None}


def test_a_cell_the_attack_cannot_take_reads_n_a_with_its_reason(tmp_path: Path, cli_runner, monkeypatch):
    real_run = bench_module.run

    def picky(config, **options):
        if config.cipher == "plain":
            raise ParameterError("fr needs a cipher (test)")
        if config.cipher == "le":
            raise RuntimeError("crash")
        return real_run(config, **options)

    monkeypatch.setattr(bench_module, "run", picky)
    result = cli_runner.invoke(cli, ["bench", "--ciphers", "plain,le,proposed", "--attacks", "fr",
                                     "--limit", "2", "--no-accuracy", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "bench.json").read_text())
    assert validate(document, "bench") == []
    status = {c["cipher"]: (c["status"], c["error"], c["reason"]) for c in document["cells"]}
    assert status == {"plain": ("n/a", None, "fr needs a cipher (test)"), "le": ("error", "RuntimeError: crash", None),
                      "proposed": ("ok", None, None)}
    assert "- fr does not apply to plain (n/a, not a failure): fr needs a cipher (test)" in result.stdout
    assert "- le vs fr failed: RuntimeError: crash" in result.stdout
    assert "| plain | no attack applies | 0.00 | 0.00 | n/a | n/a | n/a | n/a | n/a | n/a | n/a |" in result.stdout
    html = (tmp_path / "index.html").read_text()
    assert "<th>verdict</th>" in html and "fr needs a cipher (test)" in html


def test_a_cell_out_of_gpu_memory_is_a_failed_cell_and_cells_keep_only_grid_images(tmp_path: Path, monkeypatch):
    import torch

    real_run = bench_module.run
    kept = []

    def out_of_memory(config, **options):
        if config.cipher == "plain":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        result = real_run(config, **options)
        kept.append(len(result.plain))
        return result

    monkeypatch.setattr(bench_module, "run", out_of_memory)
    outcomes = bench_module.run_cells([bench_module.RunConfig(cipher=c, attack="fr", limit=12, accuracy=False)
                                       for c in ("plain", "proposed")])
    (status, message, result, _), (ok, _, kept_result, _) = outcomes
    assert status == "error" and result is None
    assert message.startswith("CUDA out of memory: use a smaller image_size")
    assert ok == "ok" and kept == [12]  # the run scored 12 images; the cell keeps the grid's 8
    assert len(kept_result.plain) == len(kept_result.encrypted) == len(kept_result.restored) == 8
    assert len(kept_result.document["metrics"]["ssim"]["values"]) == 12
