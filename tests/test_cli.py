"""The command line: the protocol's commands, exit codes and one-line errors."""
from __future__ import annotations

import json
import stat

import numpy as np
import pytest
import torch
from PIL import Image

from ppattack.cli import cli


def invoke(runner, *args):
    return runner.invoke(cli, list(args))


def assert_usage_error(result, fragment):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.output


def save_png(path, height=8, width=8, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return array


@pytest.fixture
def key_file(tmp_path, cli_runner):
    path = tmp_path / "key.json"
    # seeded: an unseeded 8x8 key is the identity once in 576 draws, which would make
    # "encryption changed the image" flaky
    result = invoke(cli_runner, "keygen", "--cipher", "proposed", "--param", "block_size=4",
                    "--shape", "3,8,8", "--seed", "1", "-o", str(path))
    assert result.exit_code == 0, result.output
    return path


def test_info_reports_the_seed_key_space(cli_runner):
    result = invoke(cli_runner, "info", "--cipher", "proposed", "--param", "block_size=16",
                    "--shape", "3,224,224", "--json")
    assert result.exit_code == 0
    card = json.loads(result.stdout)
    assert card["key_space_bits"] == 1510.84
    assert card["separable_bits"] == 1214.85
    assert card["key_reuse"] == "shared" and card["invertible"] is True
    assert "1510.84" in invoke(cli_runner, "info", "--cipher", "proposed", "--param", "block_size=16",
                               "--shape", "3,224,224").stdout


def test_keygen_writes_0600_and_never_prints_the_key(tmp_path, cli_runner, key_file):
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    material = json.loads(key_file.read_text())["material"]["block_perm"]
    result = invoke(cli_runner, "keygen", "--cipher", "proposed", "--param", "block_size=4",
                    "--shape", "3,8,8", "-o", str(tmp_path / "k2.json"))
    assert str(material) not in result.output
    assert_usage_error(invoke(cli_runner, "keygen", "--cipher", "proposed", "--param", "block_size=4",
                              "--shape", "3,8,8", "-o", str(key_file)), "refusing to overwrite")


def test_encrypt_decrypt_files_and_folders(tmp_path, cli_runner, key_file):
    images = {name: save_png(tmp_path / "in" / name, seed=i)
              for i, name in enumerate(["a.png", "sub/b.png"])}
    single = save_png(tmp_path / "c.png", seed=9)
    result = invoke(cli_runner, "encrypt", "--key", str(key_file), str(tmp_path / "in"),
                    str(tmp_path / "c.png"), "-o", str(tmp_path / "enc"))
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(tmp_path / "enc").as_posix() for p in (tmp_path / "enc").rglob("*.png")) \
        == ["a.png", "c.png", "sub/b.png"]
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "enc" / "a.png")), images["a.png"])
    result = invoke(cli_runner, "decrypt", "--key", str(key_file), str(tmp_path / "enc"), "-o", str(tmp_path / "dec"))
    assert result.exit_code == 0, result.output
    for name, array in {**images, "c.png": single}.items():
        assert np.array_equal(np.asarray(Image.open(tmp_path / "dec" / name)), array)


def test_per_image_cipher_files_carry_their_image_numbers(tmp_path, cli_runner, monkeypatch):
    """pe (per-image keys): each encrypted PNG carries a fresh image number, so identical images
    get different ciphertexts and any subset of the files decrypts, in any call."""
    import ppattack
    from ppattack import files

    monkeypatch.setattr(files, "BATCH", 2)  # three files: two batches
    key_path = tmp_path / "pe.json"
    assert invoke(cli_runner, "keygen", "--cipher", "pe", "--shape", "3,8,8", "--seed", "3",
                  "-o", str(key_path)).exit_code == 0
    same = save_png(tmp_path / "in" / "a.png", seed=4)
    for name in ("b.png", "c.png"):
        Image.fromarray(same).save(tmp_path / "in" / name)
    assert invoke(cli_runner, "encrypt", "--key", str(key_path), str(tmp_path / "in"),
                  "-o", str(tmp_path / "enc")).exit_code == 0
    paths = [tmp_path / "enc" / n for n in ("a.png", "b.png", "c.png")]
    numbers = [files.image_number(p) for p in paths]
    assert len(set(numbers)) == 3
    key, cipher = ppattack.load_key(key_path), ppattack.create_cipher("pe")
    batch = torch.from_numpy(np.stack([same] * 3)).permute(0, 3, 1, 2).contiguous()
    expected = cipher.encrypt(batch, key, indices=numbers).permute(0, 2, 3, 1).numpy()
    assert all(np.array_equal(np.asarray(Image.open(p)), e) for p, e in zip(paths, expected))
    # one file alone, in its own call
    assert invoke(cli_runner, "decrypt", "--key", str(key_path), str(paths[2]), "-o", str(tmp_path / "one")).exit_code == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "one" / "c.png")), same)
    # a ciphertext PNG without its number cannot be decrypted
    Image.open(paths[0]).save(tmp_path / "stripped.png")
    result = invoke(cli_runner, "decrypt", "--key", str(key_path), str(tmp_path / "stripped.png"), "-o", str(tmp_path / "x"))
    assert_usage_error(result, "carries no image number")
    assert not (tmp_path / "x").exists()


def test_a_failure_after_the_first_batch_writes_nothing(tmp_path, cli_runner, key_file, monkeypatch):
    from ppattack import files

    monkeypatch.setattr(files, "BATCH", 2)
    for name in ("a.png", "b.png", "c.png"):
        save_png(tmp_path / "in" / name)
    whole = (tmp_path / "in" / "c.png").read_bytes()
    (tmp_path / "in" / "c.png").write_bytes(whole[:60])  # the header says 8x8; the pixels are cut off
    result = invoke(cli_runner, "encrypt", "--key", str(key_file), str(tmp_path / "in"), "-o", str(tmp_path / "out"))
    assert_usage_error(result, "cannot read image")
    assert not (tmp_path / "out").exists()


def test_an_output_may_not_overwrite_another_input(tmp_path, cli_runner, key_file):
    save_png(tmp_path / "in" / "a.png")
    save_png(tmp_path / "in" / "enc" / "a.png", seed=1)  # the output folder sits inside the input folder
    result = invoke(cli_runner, "encrypt", "--key", str(key_file), str(tmp_path / "in"), "-o", str(tmp_path / "in" / "enc"))
    assert_usage_error(result, "could overwrite the input")


def test_wrong_image_size_writes_nothing(tmp_path, cli_runner, key_file):
    save_png(tmp_path / "in" / "a.png")
    save_png(tmp_path / "in" / "z.png", height=10, width=10)
    result = invoke(cli_runner, "encrypt", "--key", str(key_file), str(tmp_path / "in"), "-o", str(tmp_path / "out"))
    assert_usage_error(result, "z.png is 10x10 but the key is for 8x8")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*"))


def test_corrupt_key_is_a_one_line_error(tmp_path, cli_runner, key_file):
    save_png(tmp_path / "a.png")
    document = json.loads(key_file.read_text())
    document["material"]["pixel_perm"] = [0, 1, 1, 3]
    key_file.write_text(json.dumps(document))
    result = invoke(cli_runner, "encrypt", "--key", str(key_file), str(tmp_path / "a.png"), "-o", str(tmp_path / "o"))
    assert_usage_error(result, "material.pixel_perm' is not a permutation")
    key_file.write_text("{not json")
    assert_usage_error(invoke(cli_runner, "decrypt", "--key", str(key_file), str(tmp_path / "a.png"),
                              "-o", str(tmp_path / "o")), "not valid JSON")
    assert not (tmp_path / "o").exists()


def test_empty_folder_and_missing_input(tmp_path, cli_runner, key_file):
    (tmp_path / "empty").mkdir()
    assert_usage_error(invoke(cli_runner, "encrypt", "--key", str(key_file), str(tmp_path / "empty"),
                              "-o", str(tmp_path / "o")), "holds no images")
    assert_usage_error(invoke(cli_runner, "encrypt", "--key", str(key_file), str(tmp_path / "nope.png"),
                              "-o", str(tmp_path / "o")), "does not exist")


@pytest.mark.parametrize("args, fragment", [
    (["info", "--cipher", "nosuch"], "unknown cipher 'nosuch'"),
    (["info", "--cipher", "proposed", "--shape", "3,30,30"], "not a multiple of block_size 16"),
    (["info", "--cipher", "proposed", "--shape", "3,x,1"], "--shape must be C,H,W"),
    (["info", "--cipher", "proposed", "--param", "block_size"], "must look like NAME=VALUE"),
    (["run", "--cipher", "proposed", "--attack", "nosuch"], "unknown attack 'nosuch'"),
    (["run", "--cipher", "proposed", "--attack", "fr", "--param", "block_size=6"], "not a multiple of block_size 6"),
    (["run", "--cipher", "proposed", "--attack", "fr", "--param", "wat=1"], "takes parameter 'wat'"),
    (["run", "--cipher", "proposed", "--attack", "fr", "--preset", "huge"], "unknown preset 'huge'"),
    (["run", "--cipher", "proposed", "--attack", "fr", "--dataset", "folder:/no/such/dir"], "does not exist"),
    (["run", "--cipher", "proposed", "--attack", "fr", "--device", "cuda:0"], "CUDA is not available"),
    (["run", "--cipher", "proposed"], "Missing option '--attack'"),
    (["list", "things"], "Invalid value"),
])
def test_bad_input_exits_2_with_one_line(cli_runner, args, fragment):
    import torch

    if "cuda:0" in args and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert_usage_error(invoke(cli_runner, *args), fragment)


def test_run_end_to_end_writes_results(tmp_path, cli_runner):
    out = tmp_path / "run"
    result = invoke(cli_runner, "run", "--cipher", "proposed", "--attack", "fr", "--limit", "8",
                    "--no-accuracy", "--out", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads((out / "result.json").read_text())
    assert document["cipher"]["name"] == "proposed" and document["attack"]["threat_model"] == "coa+public"  # the default
    assert document["dataset"]["splits"]["targets"] == 8
    assert len(document["metrics"]["ssim"]["values"]) == 8
    assert document["cipher"]["key_space_bits"] == pytest.approx(300.58, abs=0.01)  # 64! * 4! at 32/4
    assert (out / "report.md").read_text().startswith("# proposed vs fr")
    assert Image.open(out / "grid.png").size[0] > 0
    assert not list(out.glob(".*tmp"))


def test_run_on_plain_is_a_perfect_control(tmp_path, cli_runner):
    # fr on `plain` folds values above 127: only a control of the harness, not of an attack.
    result = invoke(cli_runner, "run", "--cipher", "plain", "--attack", "fr", "--limit", "4",
                    "--no-accuracy", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "r" / "result.json").read_text())
    assert document["baseline"]["ssim"]["mean"] == pytest.approx(1.0)
    assert document["baseline"]["psnr"]["mean"] == "inf"


def test_run_control_reports_the_attack_on_plain(tmp_path, cli_runner):
    result = invoke(cli_runner, "run", "--cipher", "pe", "--attack", "fr", "--limit", "4",
                    "--no-accuracy", "--control", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "r" / "result.json").read_text())
    control = document["control"]
    assert control["run"] and control["cipher"] == "plain" and control["passed"] is True
    assert "Positive control (fr on `plain`" in result.output
    assert f"SSIM {control['ssim']:.3f} >= 0.9: passed" in (tmp_path / "r" / "report.md").read_text()
    # a control that fails says so: sia-gan after two steps restores nothing
    smoke = [f"attack.{k}={v}" for k, v in {"steps": 2, "g_width": 4, "d_width": 4, "batch_size": 4,
                                              "c_width": 4}.items()]
    result = invoke(cli_runner, "run", "--cipher", "pe", "--attack", "sia-gan", "--limit", "4", "--no-accuracy",
                    "--control", *[a for v in smoke for a in ("--param", v)], "--out", str(tmp_path / "g"))
    assert result.exit_code == 0, result.output
    control = json.loads((tmp_path / "g" / "result.json").read_text())["control"]
    assert control["passed"] is False
    assert f"SSIM {control['ssim']:.3f} < 0.9: FAILED" in (tmp_path / "g" / "report.md").read_text()


def test_info_card_names_the_unit_transforms_and_ciphertext_type(cli_runner):
    card = json.loads(invoke(cli_runner, "info", "--cipher", "etc", "--param", "block_size=4",
                             "--shape", "3,32,32", "--json").stdout)
    assert card["unit_transforms"] == {"unit": "block", "unit_size": 4, "count": 96}
    assert card["block_size"] == 4 and card["ciphertext_dtype"] == "uint8"
    assert card["component_permutation"] is False
    ffx = json.loads(invoke(cli_runner, "info", "--cipher", "block-ffx", "--shape", "3,32,32", "--json").stdout)
    assert ffx["ciphertext_dtype"] == "int32"


def test_ciphers_beyond_8_bits_refuse_png_files(tmp_path, cli_runner):
    key_path = tmp_path / "ffx.json"
    assert invoke(cli_runner, "keygen", "--cipher", "block-ffx", "--shape", "3,8,8", "--param", "block_size=4",
                  "-o", str(key_path)).exit_code == 0
    save_png(tmp_path / "a.png")
    result = invoke(cli_runner, "encrypt", "--key", str(key_path), str(tmp_path / "a.png"), "-o", str(tmp_path / "o"))
    assert_usage_error(result, "makes int32 ciphertexts, which PNG files cannot hold")
    assert not (tmp_path / "o").exists()


def test_bad_run_values_and_unwritable_outputs_are_one_line_errors(tmp_path, cli_runner):
    assert_usage_error(invoke(cli_runner, "run", "--cipher", "proposed", "--attack", "fr", "--no-accuracy",
                              "--param", "image_size=abc", "--out", str(tmp_path / "r")),
                       "parameter image_size must be an integer")
    assert_usage_error(invoke(cli_runner, "run", "--cipher", "proposed", "--attack", "fr", "--seed", "-1"),
                       "-1 is not in the range")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_usage_error(invoke(cli_runner, "run", "--cipher", "proposed", "--attack", "fr", "--no-accuracy",
                              "--out", str(blocker / "r")), "is not a writable folder")
    assert_usage_error(invoke(cli_runner, "keygen", "--cipher", "proposed", "--param", "block_size=4",
                              "--shape", "3,8,8", "-o", str(blocker / "k.json")), "a-file")


def test_a_key_naming_no_cipher_string_is_rejected(tmp_path, cli_runner, key_file):
    save_png(tmp_path / "a.png")
    document = json.loads(key_file.read_text())
    document["cipher"] = ["proposed"]
    key_file.write_text(json.dumps(document))
    result = invoke(cli_runner, "encrypt", "--key", str(key_file), str(tmp_path / "a.png"), "-o", str(tmp_path / "o"))
    assert_usage_error(result, "field 'cipher' must be a cipher name")


def test_debug_shows_the_traceback_and_keeps_status_2(cli_runner):
    result = invoke(cli_runner, "--debug", "info", "--cipher", "nosuch")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and result.stderr.rstrip().splitlines()[-1].startswith("error: unknown cipher")
    quiet = invoke(cli_runner, "info", "--cipher", "nosuch")  # the same error without --debug: one line
    assert quiet.exit_code == 2 and "Traceback" not in quiet.stderr
    assert quiet.stderr.strip().startswith("error: unknown cipher") and len(quiet.stderr.strip().splitlines()) == 1


def test_bare_ppattack_prints_the_help(cli_runner):
    result = invoke(cli_runner)
    assert result.exit_code == 0 and "Usage:" in result.stdout and "keygen" in result.stdout and not result.stderr


def test_result_records_the_test_split(tmp_path, cli_runner):
    result = invoke(cli_runner, "run", "--cipher", "proposed", "--attack", "fr", "--limit", "4", "--no-accuracy",
                    "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    splits = json.loads((tmp_path / "r" / "result.json").read_text())["dataset"]["splits"]
    assert splits["targets"] == 4 and splits["test"] >= 4  # the targets are the first test images
