"""Bad input, driven through the command line as a user would give it.

Every case here must end with one line on stderr starting with ``error:``, exit status 2 and
nothing written; exit status 1 is reserved for `check` finding a regression. Each test names
the behaviour it guards (issue "every input fails loudly and precisely").
"""
from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
import torch

import ppattack
from ppattack.cli import cli
from ppattack.key_parsing import load_key

from cli_checks import refused


def keygen(runner, path: Path, cipher: str = "proposed", shape: str = "3,32,32", seed: int = 1,
           params: tuple[str, ...] = ("--param", "block_size=4")) -> Path:
    result = runner.invoke(cli, ["keygen", "--cipher", cipher, *params, "--shape", shape,
                                 "--seed", str(seed), "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


def photo(shape=(32, 32, 3), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


# -- 1. integers too long to convert --------------------------------------------------------------

def test_a_key_entry_of_5001_digits_is_refused_by_encrypt_and_decrypt(tmp_path, cli_runner):
    key = keygen(cli_runner, tmp_path / "key.json")
    document = json.loads(key.read_text())
    document["material"]["block_perm"][0] = "HUGE"
    key.write_text(json.dumps(document).replace('"HUGE"', "7" * 5001))
    Image.fromarray(photo()).save(tmp_path / "a.png")
    for command in ("encrypt", "decrypt"):
        out = tmp_path / f"out-{command}"
        result = cli_runner.invoke(cli, [command, "--key", str(key), str(tmp_path / "a.png"), "-o", str(out)])
        refused(result, str(key), "5001 digits", "ppattack keygen")
        assert not out.exists()


def test_a_pe_image_number_of_5001_digits_is_refused(tmp_path, cli_runner):
    key = keygen(cli_runner, tmp_path / "pe.json", cipher="pe", params=())
    Image.fromarray(photo()).save(tmp_path / "a.png")
    assert cli_runner.invoke(cli, ["encrypt", "--key", str(key), str(tmp_path / "a.png"),
                                   "-o", str(tmp_path / "enc")]).exit_code == 0
    encrypted = tmp_path / "enc" / "a.png"
    with Image.open(encrypted) as im:
        info = PngInfo()
        for name, value in im.text.items():
            info.add_text(name, "9" * 5001 if name == "ppattack-image-number" else value)
        im.save(tmp_path / "tampered.png", pnginfo=info)
    result = cli_runner.invoke(cli, ["decrypt", "--key", str(key), str(tmp_path / "tampered.png"),
                                     "-o", str(tmp_path / "dec")])
    refused(result, "tampered.png", "malformed image number")
    assert not (tmp_path / "dec").exists()


def test_a_parameter_of_5001_digits_is_refused(tmp_path, cli_runner):
    result = cli_runner.invoke(cli, ["info", "--cipher", "proposed", "--param", "block_size=" + "1" * 5001])
    refused(result, "block_size", "5001 characters")


def test_shapes_beyond_any_image_are_refused_in_keys_and_options(tmp_path, cli_runner):
    result = cli_runner.invoke(cli, ["keygen", "--cipher", "proposed", "--shape", "3,100000,100000",
                                     "-o", str(tmp_path / "k.json")])
    refused(result, "--shape 3,100000,100000 is beyond the largest image", "65535")
    assert not (tmp_path / "k.json").exists()
    key = keygen(cli_runner, tmp_path / "key.json")
    document = json.loads(key.read_text())
    document["shape"] = [3, 10 ** 18, 10 ** 18]
    key.write_text(json.dumps(document))
    Image.fromarray(photo()).save(tmp_path / "a.png")
    refused(encrypt(cli_runner, key, tmp_path / "a.png", tmp_path / "out"), "field 'shape'", "65535")
    assert not (tmp_path / "out").exists()


# -- 2. image modes ----------------------------------------------------------------------------------

def png_16bit_rgb(path: Path, array: np.ndarray) -> None:
    """Write a 16-bit RGB PNG by hand (PIL cannot write one)."""
    height, width, _ = array.shape
    rows = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def encrypt(runner, key: Path, source: Path, out: Path):
    return runner.invoke(cli, ["encrypt", "--key", str(key), str(source), "-o", str(out)])


def round_trip(runner, tmp_path: Path, key: Path, source: Path) -> np.ndarray:
    assert encrypt(runner, key, source, tmp_path / "enc").exit_code == 0
    result = runner.invoke(cli, ["decrypt", "--key", str(key), str(tmp_path / "enc" / f"{source.stem}.png"),
                                 "-o", str(tmp_path / "dec")])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr  # ppattack's own files carry the key's fingerprint
    return read(tmp_path / "dec" / f"{source.stem}.png")


def test_16_bit_images_are_refused_not_destroyed(tmp_path, cli_runner):
    key = keygen(cli_runner, tmp_path / "key.json")
    grey = tmp_path / "grey16.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 65536, (32, 32), dtype=np.uint16)).save(grey)
    colour = tmp_path / "rgb16.png"
    png_16bit_rgb(colour, np.random.default_rng(1).integers(0, 65536, (32, 32, 3), dtype=np.uint16))
    for source in (grey, colour):
        refused(encrypt(cli_runner, key, source, tmp_path / "out"), source.name, "16-bit", "8 bits")
        assert not (tmp_path / "out").exists()


def test_transparency_and_animation_are_refused(tmp_path, cli_runner):
    key = keygen(cli_runner, tmp_path / "key.json")
    rgba = np.dstack([photo(), np.full((32, 32), 255, np.uint8)])
    rgba[3, 5, 3] = 0  # one transparent pixel
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    refused(encrypt(cli_runner, key, tmp_path / "clear.png", tmp_path / "out"), "clear.png", "transparent")
    frames = [Image.fromarray(photo(seed=s)) for s in range(3)]
    frames[0].save(tmp_path / "moving.png", save_all=True, append_images=frames[1:])
    refused(encrypt(cli_runner, key, tmp_path / "moving.png", tmp_path / "out"), "moving.png", "animated (3 frames)")
    assert not (tmp_path / "out").exists()


def test_lossless_conversions_round_trip_exactly(tmp_path, cli_runner):
    """Opaque alpha is dropped, a palette expanded, grey replicated: decrypting gives back
    exactly the pixels the user sees."""
    key = keygen(cli_runner, tmp_path / "key.json")
    rgb = photo()
    Image.fromarray(np.dstack([rgb, np.full((32, 32), 255, np.uint8)]), "RGBA").save(tmp_path / "opaque.png")
    assert np.array_equal(round_trip(cli_runner, tmp_path / "a", key, tmp_path / "opaque.png"), rgb)
    palette = Image.fromarray(rgb).quantize(16)
    palette.save(tmp_path / "palette.png")
    expected = np.asarray(palette.convert("RGB"))
    assert np.array_equal(round_trip(cli_runner, tmp_path / "b", key, tmp_path / "palette.png"), expected)
    grey = photo((32, 32))
    Image.fromarray(grey).save(tmp_path / "grey.png")
    assert np.array_equal(round_trip(cli_runner, tmp_path / "c", key, tmp_path / "grey.png"),
                          np.dstack([grey] * 3))


def test_colour_into_a_grey_key_is_refused_and_grey_rgb_is_kept(tmp_path):
    """No built-in cipher takes 1-channel images, so this branch (a grey plugin's keys) is
    checked on the reader that encrypt and decrypt use."""
    from ppattack.errors import DataError
    from ppattack.file_io import read_image_exact

    colour, grey_rgb = tmp_path / "colour.png", tmp_path / "grey-rgb.png"
    Image.fromarray(photo()).save(colour)
    grey = photo((32, 32))
    Image.fromarray(np.dstack([grey] * 3)).save(grey_rgb)
    with pytest.raises(DataError, match="colour.png is in colour but the key is for 1 channel"):
        read_image_exact(colour, 1, as_displayed=True)
    assert np.array_equal(read_image_exact(grey_rgb, 1, as_displayed=True)[0].numpy(), grey)


def test_a_16_bit_image_in_a_folder_dataset_is_refused(tmp_path, cli_runner):
    for split in ("train", "test"):
        for name in ("a", "b"):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            Image.fromarray(photo(seed=len(name))).save(tmp_path / "data" / split / name / "0.png")
    Image.fromarray(np.full((32, 32), 40000, np.uint16)).save(tmp_path / "data" / "train" / "a" / "deep.png")
    result = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--dataset",
                                     f"folder:{tmp_path / 'data'}", "--no-accuracy", "--out", str(tmp_path / "run")])
    refused(result, "deep.png", "16-bit")
    assert not (tmp_path / "run").exists()


# -- 3. key fingerprints ----------------------------------------------------------------------------

@pytest.fixture
def encrypted(tmp_path, cli_runner):
    key = keygen(cli_runner, tmp_path / "key.json")
    Image.fromarray(photo()).save(tmp_path / "a.png")
    assert encrypt(cli_runner, key, tmp_path / "a.png", tmp_path / "enc").exit_code == 0
    return key, tmp_path / "enc" / "a.png"


def test_encrypted_pngs_name_the_cipher_and_the_key_fingerprint(tmp_path, cli_runner, encrypted):
    from ppattack.keys import key_fingerprint

    key, path = encrypted
    with Image.open(path) as im:
        text = dict(im.text)
    assert text["ppattack-cipher"] == "proposed"
    assert text["ppattack-key-fingerprint"] == key_fingerprint(load_key(key))
    assert len(text["ppattack-key-fingerprint"]) == 16
    other = keygen(cli_runner, tmp_path / "other.json", seed=2)
    assert key_fingerprint(load_key(key)) == key_fingerprint(load_key(key))  # deterministic
    assert key_fingerprint(load_key(other)) != text["ppattack-key-fingerprint"]
    assert "block_perm" not in json.dumps(text)  # no key material, only its fingerprint


def test_decrypting_with_another_key_or_cipher_is_refused(tmp_path, cli_runner, encrypted):
    _, path = encrypted
    other_key = keygen(cli_runner, tmp_path / "other.json", seed=2)
    other_cipher = keygen(cli_runner, tmp_path / "etc.json", cipher="etc")
    for key, fragment in ((other_key, "another key (fingerprint"), (other_cipher, "cipher 'proposed', not 'etc'")):
        result = cli_runner.invoke(cli, ["decrypt", "--key", str(key), str(path), "-o", str(tmp_path / "dec")])
        refused(result, str(path), fragment, "--force")
        assert not (tmp_path / "dec").exists()
    forced = cli_runner.invoke(cli, ["decrypt", "--key", str(other_key), str(path), "-o", str(tmp_path / "dec"),
                                     "--force"])
    assert forced.exit_code == 0 and "warning:" in forced.stderr and "another key" in forced.stderr
    assert (tmp_path / "dec" / "a.png").exists()


def test_a_file_without_a_fingerprint_decrypts_with_a_warning(tmp_path, cli_runner, encrypted):
    key, path = encrypted
    Image.fromarray(read(path)).save(tmp_path / "bare.png")  # the pixels without the text chunks
    result = cli_runner.invoke(cli, ["decrypt", "--key", str(key), str(tmp_path / "bare.png"),
                                     "-o", str(tmp_path / "dec")])
    assert result.exit_code == 0, result.output
    assert "warning: 1 file(s) carry no key fingerprint" in result.stderr
    assert np.array_equal(read(tmp_path / "dec" / "bare.png"), read(tmp_path / "a.png"))


# -- 4. sizes refused before work ---------------------------------------------------------------------

def test_an_image_size_that_cannot_fit_is_refused_with_the_memory_it_needs(tmp_path, cli_runner):
    out = tmp_path / "run"
    result = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--param",
                                     "image_size=100000", "--no-accuracy", "--out", str(out)])
    line = refused(result, "image_size=100000", "needs at least", "GiB")
    needed = float(line.split("needs at least ")[1].split(" GiB")[0])
    # refused before loading any data, for one target image: uint8 + 3 float32 copies
    assert needed == pytest.approx(3 * 100000 ** 2 * 13 / 2 ** 30, rel=1e-3)
    assert "with 1 target image(s)" in line
    assert not out.exists()


@pytest.mark.parametrize("command", [["audit", "--cipher", "proposed", "--attacks", "fr"],
                                     ["bench", "--ciphers", "proposed", "--attacks", "fr,gan"]])
def test_audit_and_bench_refuse_an_image_size_that_cannot_fit_by_its_memory(tmp_path, cli_runner, monkeypatch,
                                                                            command):
    """They said "no registered attack applies" (audit) or "every cell of the bench failed"
    (bench): the memory refusal was taken for an attack that does not apply. A bench refuses
    before it decodes any cell's data."""
    import ppattack.bench

    prepared = []
    monkeypatch.setattr(ppattack.bench, "prepare_data", prepared.append)
    out = tmp_path / "out"
    result = cli_runner.invoke(cli, [*command, "--param", "image_size=100000", "--no-accuracy", "--out", str(out)])
    line = refused(result, "image_size=100000 with 1 target image(s) needs at least", "GiB", "memory",
                   "use a smaller image_size")
    assert "no registered attack" not in line and "every cell" not in line
    assert sorted(tmp_path.iterdir()) == [] and prepared == []

# -- 5.-8. check: baselines and results ---------------------------------------------------------------

BOUND = '[defaults]\nlimit = 8\n[[bound]]\ncipher = "proposed"\nattack = "fr"\n'


@pytest.mark.parametrize("limits, fragment", [
    ("max_ssim = 1.5", "max_ssim must be a number in [0, 1], got 1.5"),
    ("min_ssim = -0.2", "min_ssim must be a number in [0, 1], got -0.2"),
    ("max_ssim = nan", "max_ssim must be a number in [0, 1], got nan"),
    ("max_ssim = inf", "max_ssim must be a number in [0, 1], got inf"),
    ("max_ssim = 0.2\nmin_ssim = 0.5", "min_ssim 0.5 is not below max_ssim 0.2"),
    ("max_ssim = 0.3\nlimit = 0", "limit must be an integer >= 1, got 0"),
    ("max_ssim = 0.3\nseed = -1", "seed must be an integer >= 0, got -1"),
])
def test_impossible_baselines_are_refused_before_any_run(tmp_path, cli_runner, limits, fragment):
    baseline = tmp_path / "b.toml"
    baseline.write_text(BOUND + limits + "\n")
    result = cli_runner.invoke(cli, ["check", "--baseline", str(baseline), "--out", str(tmp_path / "made")])
    refused(result, str(baseline), "bound 1", fragment)
    assert not (tmp_path / "made").exists()


@pytest.fixture(scope="module")
def result_dir(tmp_path_factory):
    from click.testing import CliRunner

    out = tmp_path_factory.mktemp("given") / "run"
    result = CliRunner().invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--limit", "8",
                                      "--no-accuracy", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def check_with(cli_runner, tmp_path, folder: Path, bound: str = BOUND + "max_ssim = 0.9\n"):
    baseline = tmp_path / "b.toml"
    baseline.write_text(bound)
    return cli_runner.invoke(cli, ["check", "--baseline", str(baseline), str(folder),
                                   "--out", str(tmp_path / "made")])


def tampered(tmp_path, result_dir: Path, change) -> Path:
    document = json.loads((result_dir / "result.json").read_text())
    change(document)
    folder = tmp_path / "tampered"
    folder.mkdir()
    (folder / "result.json").write_text(json.dumps(document))
    return folder


def test_a_case_that_fails_once_it_runs_is_named(tmp_path, cli_runner):
    """A bound whose attack turns out not to apply only once it runs (pe under keyrec) failed
    with the attack's message alone: which bound of the baseline was it? (issue 29)"""
    baseline = tmp_path / "b.toml"
    baseline.write_text('[defaults]\ndataset = "samples"\nlimit = 4\n\n[[bound]]\ncipher = "pe"\n'
                        'attack = "keyrec"\nmax_ssim = 0.5\n')
    result = cli_runner.invoke(cli, ["check", "--baseline", str(baseline), "--out", str(tmp_path / "kept")])
    refused(result, "the case pe / keyrec [quick]: ", "uses a key per image")
    assert not (tmp_path / "kept").exists()


def test_a_valid_result_is_used_without_running(tmp_path, cli_runner, result_dir):
    """The control for the tampering tests below: the untouched result passes."""
    result = check_with(cli_runner, tmp_path, tampered(tmp_path, result_dir, lambda d: None))
    assert result.exit_code == 0, result.output
    assert "all 1 bound(s) hold" in result.stdout and not (tmp_path / "made").exists()


def _set(path: str, value):
    def change(document):
        *parents, last = path.split(".")
        for part in parents:
            document = document[part]
        if value is KeyError:
            del document[last]
        else:
            document[last] = value
    return change


@pytest.mark.parametrize("path, value, fragment", [
    ("metrics.ssim.mean", "0.1", "'metrics.ssim.mean' must be a number in [-1, 1], got '0.1'"),
    ("metrics", KeyError, "field 'metrics' is missing"),
    ("metrics.ssim.mean", -3.0, "got -3.0"),
    ("metrics.ssim.mean", True, "got True"),
    ("metrics.ssim.mean", math.inf, "got 'inf'"),  # Infinity is no JSON: read as result.json's "inf"
    ("schema_version", 999, "schema_version is 999"),
    ("accuracy.protected_model_on_encrypted", 1.5, "'accuracy.protected_model_on_encrypted' must be null"),
    ("config.limit", "8", "'config.limit' must be null or an integer >= 1, got '8'"),
])
def test_a_tampered_result_is_an_input_error_not_a_regression(tmp_path, cli_runner, result_dir, path, value,
                                                               fragment):
    folder = tampered(tmp_path, result_dir, _set(path, value))
    refused(check_with(cli_runner, tmp_path, folder), "result.json", "is not a ppattack result", fragment)
    assert not (tmp_path / "made").exists()


@pytest.mark.parametrize("path, value, fragment", [
    ("seconds", -1.0, "field 'seconds' must be a number >= 0, got -1.0"),
    ("dataset.classes", "ten", "field 'dataset.classes' must be an integer >= 0, got 'ten'"),
    ("metrics.psnr", {"mean": 30.0}, "field 'metrics.psnr.median' is missing"),
    ("surprise", 1, "field 'surprise' is not in the result schema"),
])
def test_a_field_the_schema_constrains_beyond_what_check_reads_is_refused(tmp_path, cli_runner, result_dir, path,
                                                                         value, fragment):
    """check validated only the fields it reads: a negative run time, a non-integer class count
    and an unknown field were trusted (exit 0), and a PSNR summary without its median was refused
    as "Summary.__init__() missing 3 required positional arguments", naming no field."""
    folder = tampered(tmp_path, result_dir, _set(path, value))
    refused(check_with(cli_runner, tmp_path, folder), f"{folder / 'result.json'} is not a ppattack result", fragment)
    assert not (tmp_path / "made").exists()


def test_a_mean_contradicting_its_per_image_values_is_refused(tmp_path, cli_runner, result_dir):
    """A mean SSIM of 0.01 was trusted (exit 0) when every per-image value was 0.99."""
    def contradict(document):
        ssim = document["metrics"]["ssim"]
        ssim["values"], ssim["mean"] = [0.99] * len(ssim["values"]), 0.01

    refused(check_with(cli_runner, tmp_path, tampered(tmp_path, result_dir, contradict)), "result.json",
            "'metrics.ssim.mean' is 0.01 but the mean of the 8 values")
    assert not (tmp_path / "made").exists()


def test_two_results_for_one_case_are_refused_whatever_their_order(tmp_path, cli_runner, result_dir):
    """Two valid result.json files answering one case: the last folder given won (exit 1 one
    way round, 0 the other)."""
    def strong(document):
        ssim = document["metrics"]["ssim"]
        ssim["values"] = [0.95] * len(ssim["values"])
        ssim["mean"] = 0.95

    other = tampered(tmp_path, result_dir, strong)
    for folders in ((result_dir, other), (other, result_dir)):
        baseline = tmp_path / "b.toml"
        baseline.write_text(BOUND + "max_ssim = 0.9\n")
        result = cli_runner.invoke(cli, ["check", "--baseline", str(baseline), *map(str, folders)])
        refused(result, "both answer the case proposed / fr", "pass one")
    result = cli_runner.invoke(cli, ["check", "--baseline", str(baseline), str(result_dir), str(result_dir)])
    assert result.exit_code == 0, result.output  # one file named twice is one result


def test_a_folder_without_a_result_is_an_error_not_a_rerun(tmp_path, cli_runner):
    (tmp_path / "empty").mkdir()
    refused(check_with(cli_runner, tmp_path, tmp_path / "empty"), "holds no result.json")
    assert not (tmp_path / "made").exists()


def test_a_result_for_another_case_is_an_error_not_a_rerun(tmp_path, cli_runner, result_dir):
    result = check_with(cli_runner, tmp_path, result_dir, BOUND.replace("limit = 8", "limit = 16") + "max_ssim = 0.9\n")
    refused(result, "no result in", "answers the bound proposed / fr", "limit 8 instead of 16")
    assert not (tmp_path / "made").exists()


# -- minor ---------------------------------------------------------------------------------------------

def test_debug_after_the_command_is_refused_without_a_traceback(tmp_path, cli_runner, encrypted):
    key, path = encrypted
    result = cli_runner.invoke(cli, ["decrypt", "--key", str(key), str(path), "-o", str(tmp_path / "d"), "--debug"])
    refused(result, "No such option '--debug'")


def test_a_bare_folder_dataset_is_refused(tmp_path, cli_runner):
    result = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--dataset", "folder:",
                                     "--no-accuracy", "--out", str(tmp_path / "run")])
    refused(result, "'folder:' names no folder")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("cipher", ["etc", "le"])
def test_a_block_size_given_as_true_is_refused(cli_runner, cipher):
    """--param block_size=true was read as block size 1 (exit 0; issue 29)."""
    result = cli_runner.invoke(cli, ["info", "--cipher", cipher, "--param", "block_size=true", "--shape", "3,32,32"])
    refused(result, "block_size must be an integer, got True")


@pytest.mark.parametrize("name", ["image_size", "block_size", "targets"])
def test_a_count_given_as_null_is_refused(tmp_path, cli_runner, name):
    """--param image_size=null reached int(None): "unexpected TypeError" (issue 29)."""
    result = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--no-accuracy",
                                     "--param", f"{name}=null", "--out", str(tmp_path / "run")])
    refused(result, f"parameter {name} must be an integer, got None")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("option", [["--dataset", "folder:~no-such-user-29/data"],
                                    ["--dataset", "cifar10", "--data-root", "~no-such-user-29/data"]])
def test_a_home_folder_of_an_unknown_user_is_bad_input(tmp_path, cli_runner, option):
    """folder:~nobody/... failed as "unexpected RuntimeError: Could not determine home
    directory" (issue 29)."""
    result = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--no-accuracy", "--limit", "4",
                                     *option, "--out", str(tmp_path / "run")])
    refused(result, "cannot expand '~' in ~no-such-user-29/data")
    assert not (tmp_path / "run").exists()


def test_a_parameter_with_a_prefix_other_than_cipher_or_attack_is_refused_as_such(tmp_path, cli_runner):
    """`cipher.attack.x=1` was refused as "not taken by the cipher.attack"."""
    result = cli_runner.invoke(cli, ["run", "--cipher", "plain", "--attack", "fr", "--no-accuracy",
                                     "--param", "cipher.attack.x=1", "--out", str(tmp_path / "out")])
    refused(result, "parameter 'cipher.attack.x': a prefix is 'cipher.' or 'attack.' only")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [["run", "--cipher", "plain", "--attack", "fr", "--no-accuracy", "--out", ""],
                                     ["audit", "--cipher", "plain", "--attacks", "fr", "--no-accuracy", "--out", ""],
                                     ["encrypt", "--key", "KEY", "a.png", "-o", ""]])
def test_an_empty_output_folder_name_is_refused(tmp_path, cli_runner, monkeypatch, command):
    """`run --out ''` wrote to the default runs/ folder and `encrypt -o ''` into the current one."""
    monkeypatch.chdir(tmp_path)
    key = keygen(cli_runner, tmp_path / "key.json")
    Image.fromarray(photo()).save(tmp_path / "a.png")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = cli_runner.invoke(cli, [str(key) if part == "KEY" else part for part in command])
    refused(result, "'' names no folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_parameter_given_twice_is_refused(tmp_path, cli_runner):
    result = cli_runner.invoke(cli, ["info", "--cipher", "proposed", "--param", "block_size=8",
                                     "--param", "block_size=16"])
    refused(result, "parameter 'block_size' is given twice")


@pytest.mark.parametrize("param, fragment", [("attack.foo=1", "'attack.foo' is not taken"),
                                             ("foo=1", "takes parameter 'foo'")])
def test_an_audit_refuses_a_parameter_no_audited_attack_takes(tmp_path, cli_runner, param, fragment):
    """`run` and `bench` refused a misspelt parameter; `audit` ignored it and wrote its audit
    as if it were not given (exit 0; issue 29)."""
    result = cli_runner.invoke(cli, ["audit", "--cipher", "proposed", "--attacks", "fr", "--no-accuracy", "--limit", "4",
                                     "--param", "block_size=4", "--param", param, "--out", str(tmp_path / "a")])
    refused(result, fragment)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("first, second", [("block_size=4", "cipher.block_size=8"),
                                           ("cipher.block_size=8", "block_size=4")])
def test_a_parameter_given_bare_and_prefixed_with_two_values_is_refused(tmp_path, cli_runner, first, second):
    """block_size=4 with cipher.block_size=8 ran with whichever came last (exit 0; issue 29)."""
    result = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--no-accuracy", "--limit", "4",
                                     "--param", first, "--param", second, "--out", str(tmp_path / "run")])
    refused(result, "parameter 'block_size' is given twice", "with different values")
    assert not (tmp_path / "run").exists()


def test_an_output_folder_named_in_another_encoding_is_printed_not_a_failure(tmp_path, cli_runner):
    """An --out name that is not UTF-8 (Latin-1 caf\xe9) made printing the summary fail after
    the results were in place: exit 2, "unexpected UnicodeEncodeError" (issue 29)."""
    import os

    out = tmp_path / os.fsdecode(b"caf\xe9")
    result = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--no-accuracy", "--limit", "4",
                                     "--param", "block_size=4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "caf\\udce9" in result.stdout and (out / "result.json").is_file()


def test_a_folder_dataset_with_names_in_another_encoding_runs(tmp_path, cli_runner):
    """A class folder or image named in Latin-1 (caf\xe9) failed the dataset's identity:
    "unexpected UnicodeEncodeError", exit 2 (issue 29)."""
    import os

    for split in ("train", "test"):
        for label, name in enumerate(["plain", os.fsdecode(b"caf\xe9")]):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for seed in range(3):
                Image.fromarray(photo(seed=seed + 3 * label)).save(tmp_path / "data" / split / name / f"{name}{seed}.png")
    result = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--no-accuracy", "--limit", "4",
                                     "--param", "block_size=4", "--param", "image_size=32",
                                     "--dataset", f"folder:{tmp_path / 'data'}", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "result.json").is_file()


def test_an_unforeseen_error_is_one_line_and_status_2(tmp_path, cli_runner, monkeypatch, encrypted):
    """Exit status 1 means only "a regression": a crash inside ppattack is 2, never 1."""
    import ppattack.files

    def crash(*args, **kwargs):
        raise RuntimeError("something inside broke\nsecond line")

    monkeypatch.setattr(ppattack.files, "transform_files", crash)
    key, path = encrypted
    result = cli_runner.invoke(cli, ["decrypt", "--key", str(key), str(path), "-o", str(tmp_path / "d")])
    refused(result, "unexpected RuntimeError: something inside broke", "--debug")


def test_a_gpu_index_beyond_the_gpus_present_is_refused(tmp_path, cli_runner, monkeypatch):
    """`--device cuda:7` on a machine with 2 GPUs: one line naming the GPUs there are (not
    torch's raw "invalid device ordinal"), exit 2, nothing written."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    out = tmp_path / "run"
    result = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--no-accuracy",
                                     "--device", "cuda:7", "--out", str(out)])
    refused(result, "cuda:7 does not exist", "2 GPU(s)")
    assert not out.exists()


@pytest.mark.parametrize("device", ["mps", "meta"])
def test_a_device_torch_knows_but_ppattack_does_not_is_refused(tmp_path, cli_runner, device):
    """--device mps failed deep in the run as "unexpected NotImplementedError" (issue 29)."""
    result = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--no-accuracy", "--limit", "4",
                                     "--device", device, "--out", str(tmp_path / "run")])
    refused(result, f"unknown device '{device}': use auto, cpu or cuda")
    assert not (tmp_path / "run").exists()


def test_an_explicit_gpu_under_torchrun_is_refused(tmp_path, cli_runner, monkeypatch):
    """Under torchrun every rank takes cuda:LOCAL_RANK; `--device cuda:0` would put all ranks on
    one GPU (NCCL rejects that), so it is refused with what to give instead."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "2")
    from ppattack.attack import resolve_device

    assert resolve_device("cuda") == torch.device("cuda", 2)
    with pytest.raises(ppattack.ParameterError, match="--device cuda"):
        resolve_device("cuda:0")


# -- issue 29: nothing half-written, no silent reduction --------------------------------------------

def listing(folder: Path) -> dict[str, bytes | None]:
    """Every path below ``folder`` with its bytes (None for a folder)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def test_encrypt_writes_nothing_when_an_output_name_is_taken_by_a_folder(tmp_path, cli_runner):
    """b.png's output is an existing folder: refused before a.png's output is written."""
    key = keygen(cli_runner, tmp_path / "key.json")
    for name in ("a", "b"):
        Image.fromarray(photo(seed=len(name))).save(tmp_path / f"{name}.png")
    out = tmp_path / "out"
    (out / "b.png").mkdir(parents=True)
    result = cli_runner.invoke(cli, ["encrypt", "--key", str(key), str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                                     "-o", str(out)])
    refused(result, "b.png", "folder")
    assert listing(out) == {"b.png": None}


def test_encrypt_writes_nothing_when_an_output_folder_is_a_file(tmp_path, cli_runner):
    """An input folder's sub-folder maps to a file in OUTDIR: refused, nothing written."""
    key = keygen(cli_runner, tmp_path / "key.json")
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    Image.fromarray(photo()).save(tmp_path / "photos" / "a.png")
    Image.fromarray(photo(seed=1)).save(tmp_path / "photos" / "sub" / "b.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").write_text("mine")
    refused(encrypt(cli_runner, key, tmp_path / "photos", out), "sub", "is a file")
    assert listing(out) == {"sub": b"mine"}


@pytest.mark.parametrize("command", ["encrypt", "decrypt"])
def test_a_link_to_a_missing_image_is_refused_not_skipped(tmp_path, cli_runner, command):
    """A folder's b.png linking to a deleted file was left out without a word: encrypt wrote
    one image of two, exit 0 (issue 29)."""
    key = keygen(cli_runner, tmp_path / "key.json")
    (tmp_path / "photos").mkdir()
    Image.fromarray(photo()).save(tmp_path / "photos" / "a.png")
    (tmp_path / "photos" / "b.png").symlink_to(tmp_path / "deleted.png")
    result = cli_runner.invoke(cli, [command, "--key", str(key), str(tmp_path / "photos"), "-o", str(tmp_path / "out")])
    refused(result, "b.png is a link to a missing file")
    assert not (tmp_path / "out").exists()


def test_a_link_to_a_folder_among_the_inputs_is_named_in_a_warning(tmp_path, cli_runner):
    """A linked sub-folder is not followed; its images were left out without a word (issue 29)."""
    key = keygen(cli_runner, tmp_path / "key.json")
    for folder, seed in (("photos", 0), ("elsewhere", 1)):
        (tmp_path / folder).mkdir()
        Image.fromarray(photo(seed=seed)).save(tmp_path / folder / "a.png")
    (tmp_path / "photos" / "more").symlink_to(tmp_path / "elsewhere")
    result = encrypt(cli_runner, key, tmp_path / "photos", tmp_path / "out")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[1].startswith("wrote 1 image(s)"), result.stderr
    assert lines[0].startswith("warning: ") and "more is a link to a folder, which is not followed" in lines[0]


def test_an_input_that_is_a_device_is_not_called_missing(tmp_path, cli_runner):
    """/dev/null as an input was reported as "does not exist" (issue 29)."""
    key = keygen(cli_runner, tmp_path / "key.json")
    refused(encrypt(cli_runner, key, Path("/dev/null"), tmp_path / "out"), "/dev/null is neither a file nor a folder")
    assert not (tmp_path / "out").exists()


def test_a_failed_encrypt_leaves_no_new_folders(tmp_path, cli_runner):
    """A refused image (found while encrypting) leaves neither OUTDIR nor the folders above it."""
    key = keygen(cli_runner, tmp_path / "key.json")
    (tmp_path / "photos").mkdir()
    Image.fromarray(photo()).save(tmp_path / "photos" / "a.png")
    Image.fromarray(np.full((32, 32), 40000, np.uint16)).save(tmp_path / "photos" / "b.png")
    refused(encrypt(cli_runner, key, tmp_path / "photos", tmp_path / "new" / "deeper" / "out"), "b.png", "16-bit")
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.json", "photos"]


@pytest.mark.parametrize("magic, channels, maxval, cause", [
    (b"P6", 3, 65535, "16-bit samples (maxval 65535)"),
    (b"P5", 1, 65535, "16-bit samples (maxval 65535)"),
    (b"P5", 1, 1023, "10-bit samples (maxval 1023)"),
    (b"P6", 3, 100, "rescale"),
])
def test_pgm_and_ppm_other_than_8_bit_are_refused_naming_the_depth(tmp_path, cli_runner, magic, channels,
                                                                    maxval, cause):
    """A 16-bit PPM was cut to 8 bits with exit 0, a 16-bit PGM refused as "32-bit samples"."""
    key = keygen(cli_runner, tmp_path / "key.json")
    samples = np.random.default_rng(0).integers(0, maxval + 1, (32, 32, channels))
    dtype = ">u2" if maxval > 255 else "u1"
    source = tmp_path / "deep.pnm"
    source.write_bytes(magic + f" 32 32 {maxval}\n".encode() + samples.astype(dtype).tobytes())
    refused(encrypt(cli_runner, key, source, tmp_path / "out"), "deep.pnm", cause, "8 bits")
    assert not (tmp_path / "out").exists()


def interrupted(result) -> None:
    """Exit status 130 and exactly one `error:` line on stderr."""
    assert result.exit_code == 130, (result.exit_code, result.output)
    assert result.stderr.splitlines() == ["error: interrupted; outputs appear only when a command completes"], \
        result.stderr


def test_an_interrupted_audit_writes_nothing(tmp_path, cli_runner, monkeypatch):
    """Ctrl-C during the second case: no case folder, no audit.json (the first case's folder
    was left behind: issue 29)."""
    import ppattack.audit

    real_run, calls = ppattack.audit.run, []

    def run(config, **options):
        calls.append(config)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run(config, **options)

    monkeypatch.setattr(ppattack.audit, "run", run)
    out = tmp_path / "audit"
    interrupted(cli_runner.invoke(cli, ["audit", "--cipher", "proposed", "--attacks", "fr", "--no-accuracy",
                                        "--limit", "2", "--out", str(out)]))
    assert len(calls) == 2 and sorted(tmp_path.iterdir()) == []


def test_an_interrupted_run_writes_nothing(tmp_path, cli_runner, monkeypatch):
    """Ctrl-C while the result files are written: none of them appears."""
    import ppattack.report

    def interrupt(record):
        raise KeyboardInterrupt

    monkeypatch.setattr(ppattack.report, "report_markdown", interrupt)  # after grid.png is written
    out = tmp_path / "run"
    interrupted(cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--no-accuracy",
                                        "--limit", "2", "--out", str(out)]))
    assert sorted(tmp_path.iterdir()) == []


def test_a_late_interrupt_changes_neither_the_status_nor_stderr(tmp_path):
    """SIGINT as the command finishes (after its files are in place): exit 0, no traceback
    (it printed a KeyboardInterrupt traceback: issue 29)."""
    import subprocess
    import sys

    script = (
        "import os, signal, sys, time\n"
        "import ppattack.cli\n"
        "def shutdown():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.5)\n"
        "ppattack.cli.shutdown = shutdown\n"
        "sys.argv = ['ppattack'] + sys.argv[1:]\n"
        "ppattack.cli.main()\n")
    key = tmp_path / "key.json"
    done = subprocess.run([sys.executable, "-c", script, "keygen", "--cipher", "proposed", "--shape", "3,32,32",
                           "--param", "block_size=4", "-o", str(key)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
    assert load_key(key).cipher == "proposed"


def test_run_refuses_a_folder_where_a_result_file_goes_before_the_work(tmp_path, cli_runner, monkeypatch):
    import ppattack.harness

    def run(config, **options):
        raise AssertionError("the run started")

    monkeypatch.setattr(ppattack.harness, "run", run)
    out = tmp_path / "run"
    (out / "grid.png").mkdir(parents=True)
    result = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--no-accuracy", "--out", str(out)])
    refused(result, "grid.png", "folder")
    assert listing(out) == {"grid.png": None}


def test_audit_refuses_a_file_where_a_case_folder_goes_before_the_work(tmp_path, cli_runner, monkeypatch):
    import ppattack.audit

    def run(config, **options):
        raise AssertionError("the audit started")

    monkeypatch.setattr(ppattack.audit, "run", run)
    out = tmp_path / "audit"
    (out / "fr").mkdir(parents=True)
    (out / "fr" / "coa").write_text("mine")
    result = cli_runner.invoke(cli, ["audit", "--cipher", "proposed", "--attacks", "fr", "--no-accuracy",
                                     "--out", str(out)])
    refused(result, "coa", "is a file")
    assert listing(out) == {"fr": None, "fr/coa": b"mine"}


def test_keygen_refuses_a_key_path_ending_in_a_slash(tmp_path, cli_runner):
    """-o key.json/ names a folder; a key file key.json was written (exit 0; issue 29)."""
    result = cli_runner.invoke(cli, ["keygen", "--cipher", "proposed", "--param", "block_size=4", "--shape", "3,32,32",
                                     "-o", f"{tmp_path / 'key.json'}/"])
    refused(result, "names no file")
    assert list(tmp_path.iterdir()) == []


def test_keygen_without_shape_is_a_usage_error(tmp_path, cli_runner):
    """It was "unexpected TypeError" (click 8.3 drops `required` when default=None is passed)."""
    result = cli_runner.invoke(cli, ["keygen", "--cipher", "proposed", "-o", str(tmp_path / "key.json")])
    refused(result, "Missing option '--shape'")
    assert not (tmp_path / "key.json").exists()


@pytest.mark.parametrize("value, fragment", [("-5", "an integer >= 1, got -5"), ("0", "an integer >= 1, got 0"),
                                             ("abc", "must be an integer, got 'abc'")])
def test_audit_refuses_targets_that_are_not_a_positive_integer(tmp_path, cli_runner, monkeypatch, value, fragment):
    """targets=-5 ran with limit -5; targets=abc was "unexpected ValueError"."""
    import ppattack.audit

    def run(config, **options):
        raise AssertionError("the audit started")

    monkeypatch.setattr(ppattack.audit, "run", run)
    result = cli_runner.invoke(cli, ["audit", "--cipher", "proposed", "--attacks", "fr", "--no-accuracy",
                                     "--param", f"targets={value}", "--out", str(tmp_path / "audit")])
    refused(result, "parameter targets", fragment)
    assert sorted(tmp_path.iterdir()) == []


def test_an_audit_of_a_missing_folder_names_the_folder(tmp_path, cli_runner):
    """It said "no registered attack applies" instead."""
    result = cli_runner.invoke(cli, ["audit", "--cipher", "proposed", "--attacks", "fr", "--no-accuracy",
                                     "--dataset", f"folder:{tmp_path / 'nonexistent'}", "--out", str(tmp_path / "a")])
    refused(result, "nonexistent does not exist")
    assert sorted(tmp_path.iterdir()) == []


def test_a_key_file_with_a_field_given_twice_is_refused(tmp_path, cli_runner):
    """json kept the last value of a duplicated field: which one is meant is a guess."""
    key = keygen(cli_runner, tmp_path / "key.json")
    text = key.read_text()
    key.write_text(text.replace('"cipher": "proposed"', '"cipher": "plain", "cipher": "proposed"', 1))
    Image.fromarray(photo()).save(tmp_path / "a.png")
    refused(encrypt(cli_runner, key, tmp_path / "a.png", tmp_path / "out"), str(key), "'cipher' twice")
    assert not (tmp_path / "out").exists()


def test_keygen_refuses_a_key_larger_than_ppattack_reads(tmp_path, cli_runner, monkeypatch):
    """keygen wrote a key beyond the size bound of key files (over 1 GiB from about 35000x35000
    pixels at block size 4), which encrypt then refused to read (issue 29)."""
    import ppattack.key_parsing

    monkeypatch.setattr(ppattack.key_parsing, "MAX_KEY_BYTES", 2 << 10)
    result = cli_runner.invoke(cli, ["keygen", "--cipher", "proposed", "--param", "block_size=4", "--shape", "3,64,64",
                                     "-o", str(tmp_path / "keys" / "key.json")])
    refused(result, "more than ppattack reads (0 MiB)", "use a larger block_size")
    assert list(tmp_path.iterdir()) == []


def test_a_key_file_is_read_with_a_size_bound(tmp_path, cli_runner, monkeypatch):
    """`--key /dev/zero` read without end; a file beyond the bound is refused unread."""
    import ppattack.key_parsing

    Image.fromarray(photo()).save(tmp_path / "a.png")
    if Path("/dev/zero").exists():
        refused(encrypt(cli_runner, Path("/dev/zero"), tmp_path / "a.png", tmp_path / "out"), "/dev/zero",
                "not valid JSON")
    monkeypatch.setattr(ppattack.key_parsing, "MAX_KEY_BYTES", 4 << 20)
    big = tmp_path / "big.json"
    big.write_bytes(b"{" + b" " * (5 << 20) + b"}")
    refused(encrypt(cli_runner, big, tmp_path / "a.png", tmp_path / "out"), str(big), "larger than 4 MiB")
    assert not (tmp_path / "out").exists()


def test_every_stderr_line_is_an_error_or_a_warning(tmp_path, cli_runner, monkeypatch):
    """Logged warnings were rich "WARNING  ..." lines (wrapped at 80 columns)."""
    import ppattack.audit

    def run(config, **options):
        raise RuntimeError(f"{config.threat} broke " + "at length " * 10)

    monkeypatch.setattr(ppattack.audit, "run", run)
    result = cli_runner.invoke(cli, ["audit", "--cipher", "proposed", "--attacks", "fr", "--no-accuracy",
                                     "--out", str(tmp_path / "a")])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == ["warning", "warning", "error"], result.stderr
    assert "fr (coa) crashed: RuntimeError: coa broke" in lines[0]


def test_a_decompression_bomb_warning_is_one_warning_line(tmp_path, cli_runner, monkeypatch):
    """PIL's DecompressionBombWarning printed a file:line header and a source line."""
    key = keygen(cli_runner, tmp_path / "key.json")
    Image.fromarray(photo()).save(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 700)  # 1024 pixels: a warning, not yet an error
    result = encrypt(cli_runner, key, tmp_path / "a.png", tmp_path / "out")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("wrote 1 image(s)") and lines[:-1], result.stderr
    assert all(line.startswith("warning: DecompressionBombWarning: ") for line in lines[:-1]), result.stderr


def test_debug_leaves_pils_chunk_log_out(tmp_path, cli_runner, encrypted):
    """`--debug` turned on PIL's debug log too: a line per PNG chunk read."""
    key, path = encrypted
    result = cli_runner.invoke(cli, ["--debug", "decrypt", "--key", str(key), str(path), "-o", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert "STREAM" not in result.stderr, result.stderr


def test_sigterm_stops_like_ctrl_c_and_leaves_nothing(tmp_path, cli_runner):
    """SIGTERM (a timeout, a cancelled job) killed the process mid-write, leaving the staging
    folder behind; it now stops as Ctrl-C does: exit 130, one line, nothing written."""
    import subprocess
    import sys

    script = (
        "import os, signal, sys, time\n"
        "import ppattack.files\n"
        "real = ppattack.files.write_png\n"
        "def write_png(*args, **kwargs):\n"
        "    real(*args, **kwargs)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(1)\n"
        "ppattack.files.write_png = write_png\n"
        "import ppattack.cli\n"
        "sys.argv = ['ppattack'] + sys.argv[1:]\n"
        "ppattack.cli.main()\n")
    key = keygen(cli_runner, tmp_path / "key.json")
    (tmp_path / "photos").mkdir()
    for seed in range(2):
        Image.fromarray(photo(seed=seed)).save(tmp_path / "photos" / f"{seed}.png")
    before = listing(tmp_path)
    done = subprocess.run([sys.executable, "-c", script, "encrypt", "--key", str(key), str(tmp_path / "photos"),
                           "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 130, done.stderr
    assert done.stderr.splitlines() == ["error: interrupted; outputs appear only when a command completes"], done.stderr
    assert listing(tmp_path) == before


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_while_the_command_loads_stops_it_with_one_line(tmp_path, signame):
    """Ctrl-C or SIGTERM while `ppattack` imports the package (torch: seconds) printed a
    KeyboardInterrupt traceback, or aborted in torch's C++ code (issue 29). The entry point
    notes it and stops with the interrupted line and 130. The signal is sent by an import hook
    as the package starts to load, so the test does not depend on timing."""
    import subprocess
    import sys

    script = (
        "import os, signal, sys\n"
        "import ppattack_entry\n"
        "class SignalOnLoad:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == 'ppattack': os.kill(os.getpid(), signal.{signame})\n"
        "        return None\n"
        "sys.meta_path.insert(0, SignalOnLoad())\n"
        "sys.argv = ['ppattack', 'list']\n"
        "ppattack_entry.main()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 130, done.stderr
    assert done.stderr.splitlines() == ["error: interrupted; outputs appear only when a command completes"], done.stderr
    assert done.stdout == ""


def test_a_second_ctrl_c_while_stopping_prints_nothing_more(tmp_path, cli_runner):
    """Ctrl-C twice: the second one, while the interpreter shut down, printed a KeyboardInterrupt
    traceback after the error line (issue 29)."""
    import subprocess
    import sys

    script = (
        "import atexit, os, signal, sys, time\n"
        "import ppattack.files\n"
        "def again():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.5)\n"
        "def write_png(*args, **kwargs):\n"
        "    atexit.register(again)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(1)\n"
        "ppattack.files.write_png = write_png\n"
        "import ppattack.cli\n"
        "sys.argv = ['ppattack'] + sys.argv[1:]\n"
        "ppattack.cli.main()\n")
    key = keygen(cli_runner, tmp_path / "key.json")
    Image.fromarray(photo()).save(tmp_path / "a.png")
    done = subprocess.run([sys.executable, "-c", script, "encrypt", "--key", str(key), str(tmp_path / "a.png"),
                           "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 130, done.stderr
    assert done.stderr.splitlines() == ["error: interrupted; outputs appear only when a command completes"], done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["run", "audit"])
def test_results_are_not_written_among_a_folder_datasets_images(tmp_path, cli_runner, monkeypatch, command):
    """`--out` inside `folder:PATH` put result files (and an audit's fr/coa/grid.png, a new
    "class") among the images the next run reads."""
    import ppattack.audit
    import ppattack.harness

    def run(config, **options):
        raise AssertionError("the work started")

    monkeypatch.setattr(ppattack.harness, "run", run)
    monkeypatch.setattr(ppattack.audit, "run", run)
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        Image.fromarray(photo(seed=len(name))).save(tmp_path / "data" / name / "0.png")
    before = listing(tmp_path)
    args = ["--cipher", "proposed", "--no-accuracy", "--dataset", f"folder:{tmp_path / 'data'}",
            "--out", str(tmp_path / "data" / "results")]
    result = cli_runner.invoke(cli, [command, *args, *(["--attack"] if command == "run" else ["--attacks"]), "fr"])
    refused(result, "dataset folder", "apart from the inputs")
    assert listing(tmp_path) == before


@pytest.mark.parametrize("command", [["run", "--cipher", "proposed", "--attack", "fr"],
                                     ["audit", "--cipher", "proposed", "--attacks", "fr"],
                                     ["bench", "--ciphers", "proposed", "--attacks", "fr"]])
def test_results_are_not_written_among_a_param_datasets_images(tmp_path, cli_runner, monkeypatch, command):
    """`--param dataset=folder:PATH` (a preset value, as --dataset) escaped the check: the
    results landed among the images, in a class folder (exit 0; issue 29)."""
    import ppattack.audit
    import ppattack.bench
    import ppattack.harness

    def run(config, **options):
        raise AssertionError("the work started")

    for module in (ppattack.harness, ppattack.audit, ppattack.bench):
        monkeypatch.setattr(module, "run", run)
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
        Image.fromarray(photo(seed=len(name))).save(tmp_path / "data" / name / "0.png")
    before = listing(tmp_path)
    result = cli_runner.invoke(cli, [*command, "--no-accuracy", "--param", f"dataset=folder:{tmp_path / 'data'}",
                                     "--out", str(tmp_path / "data" / "a")])
    refused(result, "dataset folder", "apart from the inputs")
    assert listing(tmp_path) == before


def jpeg_turned(path: Path, array: np.ndarray, orientation: int) -> np.ndarray:
    """Save ``array`` as a JPEG whose EXIF orientation is ``orientation``; return its pixels as
    displayed (decoded, then turned as the tag says)."""
    from PIL import ImageOps

    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes(), quality=95)
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def test_an_exif_rotated_jpeg_is_encrypted_as_displayed(tmp_path, cli_runner):
    """The pixels were encrypted unturned and the orientation dropped (the decrypted picture lay
    on its side); a 32 wide, 48 high photo shown turned was refused as 32x48 by a 48x32 key."""
    key = keygen(cli_runner, tmp_path / "key.json")
    shown = jpeg_turned(tmp_path / "square.jpg", photo(), 6)
    assert encrypt(cli_runner, key, tmp_path / "square.jpg", tmp_path / "enc").exit_code == 0
    result = cli_runner.invoke(cli, ["decrypt", "--key", str(key), str(tmp_path / "enc"), "-o", str(tmp_path / "dec")])
    assert result.exit_code == 0, result.output
    assert np.array_equal(read(tmp_path / "dec" / "square.png"), shown)

    tall = keygen(cli_runner, tmp_path / "tall.json", shape="3,48,32")
    shown = jpeg_turned(tmp_path / "wide.jpg", photo((32, 48, 3)), 8)  # stored 48 wide, shown 32 wide
    assert shown.shape == (48, 32, 3)
    result = encrypt(cli_runner, tall, tmp_path / "wide.jpg", tmp_path / "enc-tall")
    assert result.exit_code == 0, result.output
    result = cli_runner.invoke(cli, ["decrypt", "--key", str(tall), str(tmp_path / "enc-tall"),
                                     "-o", str(tmp_path / "dec-tall")])
    assert result.exit_code == 0, result.output
    assert np.array_equal(read(tmp_path / "dec-tall" / "wide.png"), shown)


def png_tagged(path: Path, array: np.ndarray, orientation: int, text: dict[str, str] | None = None) -> None:
    """Save ``array`` as a PNG carrying the EXIF ``orientation`` (and the ``text`` chunks)."""
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    info = PngInfo()
    for name, value in (text or {}).items():
        info.add_text(name, value)
    image.save(path, exif=exif.tobytes(), pnginfo=info)
    with Image.open(path) as im:
        assert im.getexif().get(0x0112) == orientation


@pytest.mark.parametrize("shape", [(32, 32), (32, 48)])
@pytest.mark.parametrize("orientation", [6, 8])
def test_a_ciphertext_png_with_an_exif_orientation_decrypts_as_stored(tmp_path, cli_runner, shape, orientation):
    """A ciphertext is read as stored: its EXIF orientation turned it before decryption (a
    scrambled picture; a non-square one was refused by its turned size). A plain PNG with the
    same tag is still encrypted as displayed."""
    from PIL import ImageOps
    from ppattack.file_io import png_text

    height, width = shape
    key = keygen(cli_runner, tmp_path / "key.json", shape=f"3,{height},{width}")
    plain = photo((height, width, 3))
    Image.fromarray(plain).save(tmp_path / "plain.png")
    assert encrypt(cli_runner, key, tmp_path / "plain.png", tmp_path / "enc").exit_code == 0
    ciphertext = tmp_path / "enc" / "plain.png"
    (tmp_path / "tagged").mkdir()
    png_tagged(tmp_path / "tagged" / "plain.png", read(ciphertext), orientation, png_text(ciphertext))
    for folder in ("enc", "tagged"):
        result = cli_runner.invoke(cli, ["decrypt", "--key", str(key), str(tmp_path / folder),
                                         "-o", str(tmp_path / f"dec-{folder}")])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "dec-tagged" / "plain.png").read_bytes() == (tmp_path / "dec-enc" / "plain.png").read_bytes()
    assert np.array_equal(read(tmp_path / "dec-tagged" / "plain.png"), plain)

    png_tagged(tmp_path / "turned.png", photo((width, height, 3), seed=1), orientation)  # shown height x width
    with Image.open(tmp_path / "turned.png") as im:
        shown = np.asarray(ImageOps.exif_transpose(im))
    assert shown.shape == (height, width, 3)
    assert encrypt(cli_runner, key, tmp_path / "turned.png", tmp_path / "enc-turned").exit_code == 0
    result = cli_runner.invoke(cli, ["decrypt", "--key", str(key), str(tmp_path / "enc-turned"),
                                     "-o", str(tmp_path / "dec-turned")])
    assert result.exit_code == 0, result.output
    assert np.array_equal(read(tmp_path / "dec-turned" / "turned.png"), shown)

def test_a_50_mb_ztxt_chunk_is_an_unreadable_image_not_an_unexpected_error(tmp_path, cli_runner):
    """PIL refuses a text chunk that decompresses beyond its bound with a ValueError, reported
    as "unexpected ValueError"; it names the file and the cause now."""
    key = keygen(cli_runner, tmp_path / "key.json")
    Image.fromarray(photo()).save(tmp_path / "plain.png")
    data = (tmp_path / "plain.png").read_bytes()
    body = b"comment\0\0" + zlib.compress(b"A" * (50 << 20), 9)
    chunk = struct.pack(">I", len(body)) + b"zTXt" + body + struct.pack(">I", zlib.crc32(b"zTXt" + body))
    (tmp_path / "text.png").write_bytes(data[:-12] + chunk + data[-12:])  # before IEND
    for command in ("encrypt", "decrypt"):
        out = tmp_path / f"out-{command}"
        result = cli_runner.invoke(cli, [command, "--key", str(key), str(tmp_path / "text.png"), "-o", str(out)])
        refused(result, "cannot read image", "text.png", "MAX_TEXT_CHUNK")
        assert not out.exists()


def test_a_200_digit_image_size_is_refused_by_its_memory(tmp_path, cli_runner):
    """`--param image_size=1` and 200 zeros was "unexpected OverflowError" (GiB as a float)."""
    result = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--no-accuracy",
                                     "--param", "image_size=1" + "0" * 200, "--out", str(tmp_path / "run")])
    refused(result, "image_size=(an integer of 201 digits)", "needs at least 10^392 GiB")
    assert sorted(tmp_path.iterdir()) == []
