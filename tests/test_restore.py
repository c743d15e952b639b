"""`ppattack restore`: attack ciphertext files that another implementation wrote."""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ppattack.cli import cli
from ppattack.data import load_dataset
from ppattack.schemas import validate

from cli_checks import refused

BLOCK = 4  # M: the quick preset's block size at 32x32


def encrypt_proposed_by_loops(image: np.ndarray, block_perm: list[int], pixel_perm: list[int]) -> np.ndarray:
    """The `proposed` cipher written from its specification text alone, with plain loops:
    block i of the output is block block_perm[i] of the input (row-major blocks); inside every
    (M/2)x(M/2) sub-block, position k of the output takes position pixel_perm[k] (row-major,
    whole RGB pixels). ``image`` is (H, W, 3) uint8."""
    h, w, _ = image.shape
    per_row = w // BLOCK
    half = BLOCK // 2
    out = np.zeros_like(image)
    for i in range(len(block_perm)):
        src = block_perm[i]
        sy, sx = (src // per_row) * BLOCK, (src % per_row) * BLOCK
        dy, dx = (i // per_row) * BLOCK, (i % per_row) * BLOCK
        for sub_y in (0, half):
            for sub_x in (0, half):
                for k in range(half * half):
                    from_k = pixel_perm[k]
                    out[dy + sub_y + k // half, dx + sub_x + k % half] = \
                        image[sy + sub_y + from_k // half, sx + sub_x + from_k % half]
    return out


def write_pngs(folder: Path, images: list[np.ndarray]) -> None:
    folder.mkdir(parents=True)
    for index, image in enumerate(images):
        Image.fromarray(image).save(folder / f"img{index:03d}.png")


@pytest.fixture(scope="module")
def foreign_ciphertexts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 samples test images encrypted by the loop implementation under a random key, the plain
    images as truth, and the samples training images as the attacker's public images."""
    root = tmp_path_factory.mktemp("foreign")
    dataset = load_dataset("samples", 32)
    plain = [im.permute(1, 2, 0).numpy() for im in dataset.test[:64].tensor()]
    rng = random.Random(1234)
    block_perm = list(range((32 // BLOCK) ** 2))
    pixel_perm = list(range((BLOCK // 2) ** 2))
    rng.shuffle(block_perm)
    while pixel_perm == sorted(pixel_perm):
        rng.shuffle(pixel_perm)
    write_pngs(root / "truth", plain)
    write_pngs(root / "ct", [encrypt_proposed_by_loops(im, block_perm, pixel_perm) for im in plain])
    write_pngs(root / "public", [im.permute(1, 2, 0).numpy() for im in dataset.train[-256:].tensor()])
    return root


def test_restore_keyrec_gets_foreign_ciphertexts_back_exactly(foreign_ciphertexts, cli_runner):
    root = foreign_ciphertexts
    out = root / "restored"
    result = cli_runner.invoke(cli, ["restore", "--attack", "keyrec", "--cipher", "proposed",
                                     "--param", f"block_size={BLOCK}", "--ciphertexts", str(root / "ct"),
                                     "--public", str(root / "public"), "-o", str(out), "--truth", str(root / "truth")])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (root / "ct").iterdir())
    assert sorted(p.name for p in out.glob("*.png")) == names
    for name in names:
        restored = np.asarray(Image.open(out / name))
        plain = np.asarray(Image.open(root / "truth" / name))
        assert np.array_equal(restored, plain), name
    ciphertext = np.asarray(Image.open(root / "ct" / names[0]))
    assert not np.array_equal(ciphertext, np.asarray(Image.open(root / "truth" / names[0])))  # a real cipher
    document = json.loads((out / "report" / "result.json").read_text())
    assert validate(document, "result") == []
    assert document["metrics"]["ssim"]["mean"] == pytest.approx(1.0)
    assert (out / "report" / "report.md").is_file() and (out / "report" / "grid.png").is_file()


def test_restore_bad_input_exits_2_and_writes_nothing(foreign_ciphertexts, cli_runner, tmp_path):
    root = foreign_ciphertexts
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.new("RGB", (32, 32)).save(mixed / "a.png")
    Image.new("RGB", (16, 16)).save(mixed / "b.png")
    lossy = tmp_path / "lossy"
    lossy.mkdir()
    Image.new("RGB", (32, 32)).save(lossy / "a.jpg")
    odd = tmp_path / "odd"
    odd.mkdir()
    Image.new("RGB", (30, 30)).save(odd / "a.png")
    base = ["restore", "--cipher", "proposed", "--public", str(root / "public")]
    cases = {
        "different sizes": [*base, "--attack", "keyrec", "--ciphertexts", str(mixed)],
        "lossy format": [*base, "--attack", "keyrec", "--ciphertexts", str(lossy)],
        "multiple of": [*base, "--attack", "keyrec", "--ciphertexts", str(odd)],
        "files alone cannot grant": [*base, "--attack", "kpa", "--ciphertexts", str(root / "ct")],
    }
    for expected, args in cases.items():
        out = tmp_path / "out"
        result = cli_runner.invoke(cli, [*args, "-o", str(out)])
        assert result.exit_code == 2, (expected, result.output)
        assert expected in result.output and result.output.count("\n") == 1, result.output
        assert not out.exists(), expected


# -- issue 29: outputs never overlap or half-replace inputs -----------------------------------------

@pytest.fixture(scope="module")
def small_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 ciphertexts of the loop implementation with their truth, and 32 public images."""
    root = tmp_path_factory.mktemp("small")
    dataset = load_dataset("samples", 32)
    plain = [im.permute(1, 2, 0).numpy() for im in dataset.test[:8].tensor()]
    rng = random.Random(1)
    block_perm, pixel_perm = list(range((32 // BLOCK) ** 2)), list(range((BLOCK // 2) ** 2))
    rng.shuffle(block_perm)
    rng.shuffle(pixel_perm)
    write_pngs(root / "truth", plain)
    write_pngs(root / "ct", [encrypt_proposed_by_loops(im, block_perm, pixel_perm) for im in plain])
    write_pngs(root / "public", [im.permute(1, 2, 0).numpy() for im in dataset.train[-32:].tensor()])
    return root


@pytest.fixture
def files(small_files: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`small_files` (a test may try to overwrite it)."""
    shutil.copytree(small_files, tmp_path / "files")
    return tmp_path / "files"


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path below ``folder`` with its bytes (None for a folder)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def restore(runner, files: Path, out: Path, *extra: str, truth: bool = True):
    args = ["restore", "--attack", "keyrec", "--cipher", "proposed", "--param", f"block_size={BLOCK}",
            "--ciphertexts", str(files / "ct"), "--public", str(files / "public"), "-o", str(out)]
    return runner.invoke(cli, [*args, *(["--truth", str(files / "truth")] if truth else []), *extra])


@pytest.mark.parametrize("out", ["ct", "truth", "public", "ct/deeper", "."])
def test_restore_refuses_an_output_folder_overlapping_an_input(files, cli_runner, out):
    """-o the ciphertexts', truth or public folder, one inside it or one holding it: refused
    before any work, every input byte kept (it overwrote them: issue 29)."""
    before = snapshot(files)
    refused(restore(cli_runner, files, files / out), "output folder", "apart from the inputs")
    assert snapshot(files) == before


@pytest.mark.parametrize("option, folder", [("--public", "ct"), ("--truth", "ct"), ("--public", "."),
                                            ("--truth", "ct/sub")])
def test_restore_refuses_plain_images_overlapping_the_ciphertexts(files, cli_runner, tmp_path, option, folder):
    """--public or --truth the ciphertexts folder (or one holding it): the ciphertexts were read
    as the attacker's plain images, or scored as their own truth (exit 0; issue 29)."""
    (files / "ct" / "sub").mkdir()
    given = {"--public": files / "public", "--truth": files / "truth", option: files / folder}
    result = cli_runner.invoke(cli, ["restore", "--attack", "keyrec", "--cipher", "proposed", "--param",
                                     f"block_size={BLOCK}", "--ciphertexts", str(files / "ct"),
                                     *(str(v) for item in given.items() for v in item), "-o", str(tmp_path / "out")])
    refused(result, f"the {option[2:]} folder", "overlaps the ciphertexts folder")
    assert not (tmp_path / "out").exists()


def test_restore_takes_a_truth_folder_holding_the_ciphertexts(files, cli_runner, tmp_path):
    """Truth images are looked up by the ciphertexts' names, so plain images beside a ct/
    folder of their ciphertexts are a truth folder like any other."""
    for path in (files / "truth").iterdir():
        shutil.copy(path, files / path.name)
    result = cli_runner.invoke(cli, ["restore", "--attack", "keyrec", "--cipher", "proposed", "--param",
                                     f"block_size={BLOCK}", "--ciphertexts", str(files / "ct"), "--public",
                                     str(files / "public"), "--truth", str(files), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "report" / "result.json").is_file()


def test_restore_refuses_a_ciphertext_where_the_report_goes(files, cli_runner, tmp_path):
    """A ciphertext report/grid.png would be overwritten by the report's grid (issue 29)."""
    for folder in ("ct", "truth"):
        (files / folder / "report").mkdir()
        shutil.copy(files / folder / "img000.png", files / folder / "report" / "grid.png")
    refused(restore(cli_runner, files, tmp_path / "out"), "report", "move it out")
    assert not (tmp_path / "out").exists()


def test_restore_writes_nothing_when_an_output_cannot_be_placed(files, cli_runner, tmp_path):
    """A folder where a restoration goes, or a file where the report folder goes: refused
    before the attack, nothing written (5 of 8 restorations were: issue 29)."""
    out = tmp_path / "out"
    (out / "img005.png").mkdir(parents=True)
    refused(restore(cli_runner, files, out), "img005.png", "folder")
    assert snapshot(out) == {"img005.png": None}
    shutil.rmtree(out)
    out.mkdir()
    (out / "report").write_text("mine")
    refused(restore(cli_runner, files, out), "report", "is a file")
    assert snapshot(out) == {"report": b"mine"}


def test_restore_checks_lpips_weights_before_writing(files, cli_runner, tmp_path):
    """A bad --lpips-weights fails before any restoration is written (all 8 were: issue 29)."""
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"not a checkpoint")
    result = restore(cli_runner, files, tmp_path / "out", "--lpips-weights", str(weights))
    refused(result, str(weights))
    assert not (tmp_path / "out").exists()


def test_restore_refuses_ciphertexts_that_are_not_exact_pixels(files, cli_runner, tmp_path):
    """JPEG data in a file named .png, 16-bit samples and half-transparent pixels are refused
    by content, naming the cause (they were silently read: issue 29)."""
    image = np.asarray(Image.open(files / "ct" / "img000.png"))
    Image.fromarray(image).save(files / "ct" / "img000.png", format="JPEG")
    refused(restore(cli_runner, files, tmp_path / "out"), "img000.png", "JPEG", "lossy")
    Image.fromarray(image).save(files / "ct" / "img000.png")
    alpha = np.dstack([image, np.full(image.shape[:2], 128, np.uint8)])
    Image.fromarray(alpha, "RGBA").save(files / "ct" / "img001.png")
    refused(restore(cli_runner, files, tmp_path / "out"), "img001.png", "transparent")
    Image.fromarray(image).save(files / "ct" / "img001.png")
    Image.fromarray(image[:, :, 0].astype(np.uint16) * 257).save(files / "ct" / "img002.png")
    refused(restore(cli_runner, files, tmp_path / "out"), "img002.png", "16-bit")
    assert not (tmp_path / "out").exists()


def test_restore_refuses_an_output_folder_linked_into_an_input(files, cli_runner, tmp_path):
    """OUT/sub a link to the ciphertexts' sub-folder: the restorations of ct/sub/* would
    replace the ciphertexts themselves."""
    (files / "ct" / "sub").mkdir()
    (files / "truth" / "sub").mkdir()
    for folder in ("ct", "truth"):
        shutil.move(files / folder / "img007.png", files / folder / "sub" / "img007.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(files / "ct" / "sub")
    before = snapshot(files)
    refused(restore(cli_runner, files, out), "through a link")
    assert snapshot(files) == before


def test_restore_reads_ciphertexts_as_stored_whatever_their_exif_orientation(files, cli_runner, tmp_path):
    """Ciphertext PNGs carrying EXIF orientation 6 were turned before the attack saw them; they
    are restored exactly as the same files without the tag (the truth is plain, still read as
    displayed)."""
    untagged = restore(cli_runner, files, tmp_path / "untagged", truth=False)
    assert untagged.exit_code == 0, untagged.output
    for path in sorted((files / "ct").glob("*.png")):
        with Image.open(path) as im:
            image = Image.fromarray(np.asarray(im))
        exif = image.getexif()
        exif[0x0112] = 6
        image.save(path, exif=exif.tobytes())
        with Image.open(path) as im:
            assert im.getexif().get(0x0112) == 6
    result = restore(cli_runner, files, tmp_path / "tagged", truth=False)
    assert result.exit_code == 0, result.output
    assert snapshot(tmp_path / "tagged") == snapshot(tmp_path / "untagged")

# -- issue 30: the case is built once ----------------------------------------------------------------

def test_restore_and_run_give_the_attack_the_same_seed(files, cli_runner, tmp_path):
    """`restore --seed S` and `run --seed S` build their attack in one place: the same
    parameters, and the same seed derived from S (restore gave the attack S itself)."""
    restored = restore(cli_runner, files, tmp_path / "restored", "--seed", "5")
    assert restored.exit_code == 0, restored.output
    ran = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "keyrec", "--param", f"block_size={BLOCK}",
                                  "--seed", "5", "--limit", "2", "--no-accuracy", "--out", str(tmp_path / "run")])
    assert ran.exit_code == 0, ran.output
    by_restore = json.loads((tmp_path / "restored" / "report" / "result.json").read_text())["attack"]["params"]
    by_run = json.loads((tmp_path / "run" / "result.json").read_text())["attack"]["params"]
    assert by_restore == by_run
    assert by_restore["seed"] != 5  # a seed derived from 5, not 5 itself


def test_restore_skips_a_staging_folder_left_in_its_input_folders(files, cli_runner, tmp_path):
    """A killed command's hidden staging folder inside the ciphertexts' and public folders (here
    with a 16x16 image) was read as data: "different sizes"; it is skipped (issue 29)."""
    from ppattack.file_io import STAGING_PREFIX

    for folder in ("ct", "public"):
        stale = files / folder / f"{STAGING_PREFIX}abc" / "out"
        stale.mkdir(parents=True)
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(stale / "img000.png")
    result = restore(cli_runner, files, tmp_path / "out", truth=False)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"img{i:03d}.png" for i in range(8)]


def test_restore_names_two_ciphertexts_that_would_be_restored_to_one_png(files, cli_runner, tmp_path):
    """img000.png and img000.PNG both restore to img000.png: the refusal names them (it said only
    "two ciphertexts differ only in their suffix")."""
    shutil.copy(files / "ct" / "img000.png", files / "ct" / "img000.PNG")
    result = restore(cli_runner, files, tmp_path / "out", truth=False)
    refused(result, "ciphertexts img000.PNG and img000.png differ only in their suffix")
    assert not (tmp_path / "out").exists()
