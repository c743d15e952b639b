"""Outputs and inputs kept apart, driven through the command line (issue 29, "nothing lost,
nothing half-written"): staging folders a killed command left behind, new parent folders,
outputs overlapping inputs or the data root, and the final move into place."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ppattack.cli import cli
from ppattack.file_io import STAGING_PREFIX

from cli_checks import refused


def keygen(runner, path: Path, seed: int = 1, shape: str = "3,32,32") -> Path:
    result = runner.invoke(cli, ["keygen", "--cipher", "proposed", "--param", "block_size=4", "--shape", shape,
                                 "--seed", str(seed), "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


def photo(seed: int = 0, shape=(32, 32, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def photos(folder: Path, count: int = 2, first: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(first, first + count):
        Image.fromarray(photo(seed)).save(folder / f"{seed}.png")
    return folder


def listing(folder: Path) -> dict[str, bytes | None]:
    """Every path below ``folder`` with its bytes (None for a folder)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def transform(runner, command: str, key: Path, *args: str | Path):
    return runner.invoke(cli, [command, "--key", str(key), *map(str, args)])


# -- 1. a staging folder left behind by SIGKILL ----------------------------------------------------

KILLED_AFTER_FIRST_WRITE = (
    "import os, signal, sys\n"
    "import ppattack.files\n"
    "real = ppattack.files.write_png\n"
    "def write_png(*args, **kwargs):\n"
    "    real(*args, **kwargs)\n"
    "    os.kill(os.getpid(), signal.SIGKILL)\n"
    "ppattack.files.write_png = write_png\n"
    "import ppattack.cli\n"
    "sys.argv = ['ppattack'] + sys.argv[1:]\n"
    "ppattack.cli.main()\n")


def test_a_staging_folder_left_by_sigkill_is_not_read_as_data(tmp_path, cli_runner):
    """An encrypt under another key, killed (SIGKILL) into an existing OUTDIR, leaves its hidden
    staging folder there; decrypting OUTDIR read the stale ciphertext as data and refused it
    ("encrypted with another key"). It is skipped, and a later encrypt there succeeds."""
    key, other = keygen(cli_runner, tmp_path / "key.json"), keygen(cli_runner, tmp_path / "other.json", seed=2)
    out = tmp_path / "out"
    assert transform(cli_runner, "encrypt", key, photos(tmp_path / "photos"), "-o", out).exit_code == 0
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_FIRST_WRITE, "encrypt", "--key", str(other),
                             str(photos(tmp_path / "more", first=5)), "-o", str(out)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    stale = [p for p in out.iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert len(stale) == 1 and list(stale[0].rglob("*.png")), listing(out)

    result = transform(cli_runner, "decrypt", key, out, "-o", tmp_path / "decrypted")
    assert result.exit_code == 0, result.output
    assert sorted(listing(tmp_path / "decrypted")) == ["0.png", "1.png"]
    result = transform(cli_runner, "encrypt", other, tmp_path / "more", "-o", out)
    assert result.exit_code == 0, result.output
    assert {"0.png", "1.png", "5.png", "6.png"} <= set(listing(out))


def test_folder_datasets_and_result_folders_skip_staging_folders(tmp_path, cli_runner):
    """A stale staging folder in a `folder:` dataset's class folder was read as images (here a
    16-bit one: the run was refused), and one in a result folder as a second result.json."""
    for name in ("a", "b"):
        photos(tmp_path / "data" / name, count=3, first=len(name))
    stale = tmp_path / "data" / "a" / f"{STAGING_PREFIX}x1y2z3" / "out"
    stale.mkdir(parents=True)
    Image.fromarray(np.full((32, 32), 40000, np.uint16)).save(stale / "deep.png")
    run = tmp_path / "run"
    result = cli_runner.invoke(cli, ["run", "--cipher", "proposed", "--attack", "fr", "--no-accuracy",
                                     "--dataset", f"folder:{tmp_path / 'data'}", "--out", str(run)])
    assert result.exit_code == 0, result.output

    document = json.loads((run / "result.json").read_text())
    (run / f"{STAGING_PREFIX}q" / "out").mkdir(parents=True)
    document["metrics"]["ssim"]["values"] = [0.99] * len(document["metrics"]["ssim"]["values"])
    document["metrics"]["ssim"]["mean"] = 0.99
    (run / f"{STAGING_PREFIX}q" / "out" / "result.json").write_text(json.dumps(document))
    baseline = tmp_path / "b.toml"
    baseline.write_text(f'[[bound]]\ncipher = "proposed"\nattack = "fr"\ndataset = "folder:{tmp_path / "data"}"\n'
                        "max_ssim = 0.95\n")
    result = cli_runner.invoke(cli, ["check", "--baseline", str(baseline), str(run)])
    assert result.exit_code == 0, result.output


# -- 5. the final move ------------------------------------------------------------------------------

@pytest.mark.parametrize("failing_move", [1, 2])
def test_a_new_output_folder_appears_whole_or_not_at_all(tmp_path, cli_runner, monkeypatch, failing_move):
    """The file system fails the n-th move into place (EIO): a new OUTDIR was filled file by
    file, so a failing second move left 0.png alone in it; it now appears by one rename of
    the staged folder, complete, or not at all (nor the new folders above it)."""
    import errno
    import types

    import ppattack.file_io

    key = keygen(cli_runner, tmp_path / "key.json")
    source = photos(tmp_path / "photos", count=3)
    moves = []

    def failing(real):
        def move(source, target, *args, **kwargs):
            if STAGING_PREFIX in str(source) and STAGING_PREFIX not in str(target):  # into place
                moves.append(target)
                if len(moves) == failing_move:
                    raise OSError(errno.EIO, "Input/output error", str(target))
            return real(source, target, *args, **kwargs)
        return move

    proxy = types.SimpleNamespace(**{name: getattr(os, name) for name in dir(os) if not name.startswith("__")})
    proxy.replace, proxy.rename = failing(os.replace), failing(os.rename)
    monkeypatch.setattr(ppattack.file_io, "os", proxy)
    before = listing(tmp_path)
    out = tmp_path / "new" / "out"
    result = transform(cli_runner, "encrypt", key, source, "-o", out)
    if result.exit_code == 0:
        assert sorted(listing(out)) == ["0.png", "1.png", "2.png"]
    else:
        refused(result, "Input/output error")
        assert listing(tmp_path) == before


# -- 2. keygen's missing folders ----------------------------------------------------------------------

def test_keygen_creates_missing_folders_only_once_the_key_is_written(tmp_path, cli_runner, monkeypatch):
    """`keygen -o a/b/KEY` creates a/b as encrypt creates OUTDIR (staged); a key name of 250
    characters failed ("File name too long": the temporary name was longer) and left a/b behind,
    as did a failing write (here: a full disk after the key was written)."""
    import errno

    import ppattack.keys

    name = "k" * 245 + ".json"
    result = cli_runner.invoke(cli, ["keygen", "--cipher", "proposed", "--shape", "3,32,32",
                                     "-o", str(tmp_path / "a" / "b" / name)])
    assert result.exit_code == 0, result.output
    assert listing(tmp_path) == {"a": None, "a/b": None, f"a/b/{name}": (tmp_path / "a" / "b" / name).read_bytes()}
    assert (tmp_path / "a" / "b" / name).stat().st_mode & 0o777 == 0o600

    real = ppattack.keys.save_key

    def disk_full(key, path):
        real(key, path)
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ppattack.keys, "save_key", disk_full)
    result = cli_runner.invoke(cli, ["keygen", "--cipher", "proposed", "--shape", "3,32,32",
                                     "-o", str(tmp_path / "c" / "d" / "key.json")])
    refused(result, "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_keygen_never_replaces_a_device_or_pipe(tmp_path, cli_runner):
    """`keygen --force -o /dev/null` replaced the device node with a key file (as root); a pipe
    stands in for it here. `-o ''` said " exists"."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    result = cli_runner.invoke(cli, ["keygen", "--cipher", "proposed", "--shape", "3,32,32", "--force", "-o", str(pipe)])
    refused(result, "not a regular file")
    assert pipe.is_fifo() and sorted(tmp_path.iterdir()) == [pipe]
    result = cli_runner.invoke(cli, ["keygen", "--cipher", "proposed", "--shape", "3,32,32", "-o", ""])
    refused(result, "names no file")


# -- 3. encrypt/decrypt outputs overlapping their inputs ---------------------------------------------

@pytest.mark.parametrize("command, source, out, relation", [
    ("encrypt", "photos", "photos/enc", "is inside"),
    ("encrypt", "photos/sub", "photos", "holds"),
    ("decrypt", "enc", "enc/dec", "is inside"),
    ("decrypt", "enc", "enc", "is"),
    ("encrypt", "photos", ".", "holds"),
])
def test_an_output_folder_overlapping_an_input_folder_is_refused_whole(tmp_path, cli_runner, monkeypatch, command,
                                                                       source, out, relation):
    """Only single files were compared: `encrypt photos -o photos/enc` wrote its ciphertexts
    among the photos (the next `encrypt photos` reads them), `encrypt photos/sub -o photos`
    wrote into the folder holding its input. Refused before any work, nothing written."""
    key = keygen(cli_runner, tmp_path / "key.json")
    photos(tmp_path / "photos")
    photos(tmp_path / "photos" / "sub", first=7)
    assert transform(cli_runner, "encrypt", key, tmp_path / "photos", "-o", tmp_path / "enc").exit_code == 0
    before = listing(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = transform(cli_runner, command, key, source, "-o", out)
    refused(result, f"output folder {out} {relation} the input folder {source}", "choose an output folder apart")
    assert listing(tmp_path) == before


def test_an_output_leading_into_an_input_folder_through_a_link_is_refused(tmp_path, cli_runner):
    """OUTDIR/sub is a link to the input folder photos: sub/7.png's ciphertext went to
    photos/7.png, among the inputs (no input file was overwritten, so nothing was caught)."""
    key = keygen(cli_runner, tmp_path / "key.json")
    photos(tmp_path / "photos")
    photos(tmp_path / "photos" / "sub", first=7)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub").symlink_to(tmp_path / "photos")
    before = listing(tmp_path)
    result = transform(cli_runner, "encrypt", key, tmp_path / "photos", "-o", tmp_path / "out")
    refused(result, "leads into the input folder", "apart from the inputs")
    assert listing(tmp_path) == before


# -- 4. --out against --data-root ---------------------------------------------------------------------

@pytest.mark.parametrize("command", ["run", "bench", "audit", "check"])
@pytest.mark.parametrize("out, root", [("data/results", "data"), ("data", "data"), ("results", "results/data")])
def test_an_output_overlapping_the_data_root_is_refused_before_work(tmp_path, cli_runner, monkeypatch, command,
                                                                    out, root):
    """`--out` inside, equal to or holding `--data-root` (where cifar10/100 are read and
    downloaded) ran, writing results among the datasets' files (or the data into the results)."""
    import ppattack.audit
    import ppattack.bench
    import ppattack.check
    import ppattack.harness

    def started(*args, **kwargs):
        raise AssertionError("the work started")

    for module in (ppattack.harness, ppattack.audit, ppattack.bench):
        monkeypatch.setattr(module, "run", started)
    monkeypatch.setattr(ppattack.check, "run_case", started)
    monkeypatch.chdir(tmp_path)
    (tmp_path / root).mkdir(parents=True)
    before = listing(tmp_path)
    options = ["--dataset", "cifar10", "--no-accuracy", "--data-root", root, "--out", out]
    args = {"run": ["run", "--cipher", "proposed", "--attack", "fr", *options],
            "bench": ["bench", "--ciphers", "proposed", "--attacks", "fr", *options],
            "audit": ["audit", "--cipher", "proposed", "--attacks", "fr", *options]}
    if command == "check":
        Path("b.toml").write_text(f'[[bound]]\ncipher = "proposed"\nattack = "fr"\ndataset = "cifar10"\n'
                                  f'data_root = "{root}"\nmax_ssim = 0.5\n')
        before = listing(tmp_path)
        args["check"] = ["check", "--baseline", "b.toml", "--out", out]
    result = cli_runner.invoke(cli, args[command])
    refused(result, f"output folder {out}", f"the data root folder {root}", "apart from the inputs")
    assert listing(tmp_path) == before
