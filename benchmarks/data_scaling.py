"""Peak memory and time of one run against the dataset's size and the image size.

Runs ``ppattack run --cipher proposed --attack keyrec --limit 100 --no-accuracy`` as a separate
process under ``/usr/bin/time -v`` for each dataset, cold (an empty cache folder) and warm (the
same folder again), and prints a Markdown table: peak resident memory (GiB) and wall seconds.
The datasets: ``samples`` (32, ``--preset quick``), the CIFAR-10 JPEG copy at 32 (``--preset
cifar``: no subset, all 60,000 images listed) and at 224 (``--preset paper``: the seed's
setting), and a synthetic folder of ``--synthetic`` images (default 100,000 32x32 PNGs,
written by this script once) at 32 (``--preset cifar``) and 224 (``--preset paper``). keyrec's budget is the ``quick`` one
at 32 (``max_public`` and ``mirror_public`` 1,000, ``mirror_steps`` 200) and the ``paper``
one at 224. ``--pythonpath DIR`` runs another checkout's ppattack (an older commit, for a
before/after table). Memory should be flat in the dataset's size: a run
decodes only the images its roles read.

    python benchmarks/data_scaling.py --cifar ../shared/data/cifar10-jpeg --work /tmp/scaling
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def synthetic_folder(root: Path, count: int, side: int = 32) -> Path:
    """``count`` smooth random RGB pictures as PNGs in 10 class folders (80 % train, 20 % test);
    kept when a complete folder is already there."""
    from PIL import Image

    done = root / f".complete-{count}"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        split = "test" if i % 5 == 4 else "train"
        folder = root / split / f"c{i % 10}"
        if i < 50:
            folder.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, (side // 8, side // 8, 3), dtype=np.uint8)
        picture = np.kron(coarse, np.ones((8, 8, 1), np.uint8))  # blocks of colour, 8 pixels wide
        Image.fromarray(picture).save(folder / f"{i:06d}.png", compress_level=1)
    done.touch()
    return root


def measure(args: list[str], cache: Path, pythonpath: str | None) -> tuple[float, float, int]:
    """(peak RSS in GiB, wall seconds, exit status) of ``ppattack run ARGS`` with cache ``cache``."""
    env = {**os.environ, "PPATTACK_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "ppattack", "run", *args]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
    return (int(peak.group(1)) / 2**20 if peak else float("nan")), seconds, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar", default="../shared/data/cifar10-jpeg", help="the CIFAR-10 JPEG folder")
    parser.add_argument("--work", default="scaling-work", help="folder for caches and the synthetic data")
    parser.add_argument("--synthetic", type=int, default=100_000, help="images in the synthetic folder")
    parser.add_argument("--only", default=None, help="comma-separated row names (default: all)")
    parser.add_argument("--pythonpath", default=None, help="run the ppattack found in DIR instead")
    args = parser.parse_args()
    work = Path(args.work).resolve()
    run = ["--cipher", "proposed", "--attack", "keyrec", "--limit", "100", "--no-accuracy"]
    quick_budget = ["--param", "attack.max_public=1000", "--param", "attack.mirror_public=1000",
                    "--param", "attack.mirror_steps=200"]
    rows = {"samples 32": ["--dataset", "samples"],
            "CIFAR-10 32": ["--dataset", f"folder:{args.cifar}", "--preset", "cifar", *quick_budget],
            "CIFAR-10 224": ["--dataset", f"folder:{args.cifar}", "--preset", "paper"],
            f"synthetic {args.synthetic} 32": None, f"synthetic {args.synthetic} 224": None}
    chosen = args.only.split(",") if args.only else list(rows)
    print(f"machine: {platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} CPUs; "
          f"command: ppattack run {' '.join(run)} ...{' (PYTHONPATH given)' if args.pythonpath else ''}")
    print("| dataset | images | cold GiB | cold s | warm GiB | warm s | status |")
    print("|---|---|---|---|---|---|---|")
    for name in chosen:
        extra = rows[name]
        if extra is None:
            started = time.perf_counter()
            folder = synthetic_folder(work / f"synthetic-{args.synthetic}", args.synthetic)
            print(f"(synthetic folder ready in {time.perf_counter() - started:.0f} s)", file=sys.stderr)
            budget = ["--preset", "paper"] if name.endswith(" 224") else ["--preset", "cifar", *quick_budget]
            extra, images = ["--dataset", f"folder:{folder}", *budget], args.synthetic
        else:
            images = 576 if name.startswith("samples") else 60_000
        cache = work / "cache" / name.replace(" ", "-")
        shutil.rmtree(cache, ignore_errors=True)
        cold = measure(run + extra, cache, args.pythonpath)
        warm = measure(run + extra, cache, args.pythonpath)
        status = "ok" if cold[2] == warm[2] == 0 else f"exit {cold[2]}/{warm[2]}"
        print(f"| {name} | {images} | {cold[0]:.2f} | {cold[1]:.0f} | {warm[0]:.2f} | {warm[1]:.0f} | {status} |",
              flush=True)


if __name__ == "__main__":
    main()
