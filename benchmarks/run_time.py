"""End-to-end time of ``ppattack run``: cold (empty cache) and warm (networks cached).

    python benchmarks/run_time.py [--device cpu|cuda] [--cifar DATASET] [--cases quick,cifar]

Each case is the command line itself, in a subprocess with its own empty cache folder, run
twice: cold (decodes the data, trains every network) and warm (the trained networks come
from the cache). The baseline of the same run is ``ppattack list`` (interpreter, torch and
plugin start-up), the floor of any command.

Cases: ``quick``, the quick preset on the embedded samples (``fr``; ``itn`` without and with
the classifiers, the latter being the README's main command); ``cifar``, the cifar preset on
``--cifar`` (default: the shared CIFAR-10 JPEG copy next to the checkout,
``folder:../shared/data/cifar10-jpeg``) with the attacks that train nothing (``fr``, ``keyrec``);
``cifar-training``, ``itn`` and the classifiers at the cifar preset (meant for a GPU).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cipher_throughput import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PPATTACK = [sys.executable, "-m", "ppattack"]


def cases(cifar: str) -> dict[str, list[list[str]]]:
    return {
        "quick": [["run", "--cipher", "proposed", "--attack", "fr"],
                  ["run", "--cipher", "proposed", "--attack", "itn", "--no-accuracy"],
                  ["run", "--cipher", "proposed", "--attack", "itn"]],
        "cifar": [["run", "--cipher", "proposed", "--attack", "fr", "--preset", "cifar", "--dataset", cifar,
                   "--no-accuracy"],
                  ["run", "--cipher", "proposed", "--attack", "keyrec", "--preset", "cifar", "--dataset", cifar,
                   "--no-accuracy"]],
        # hours on a 2-core CPU (2000 U-Net steps of 64 images; two ViT-Tiny trainings): for a GPU
        "cifar-training": [["run", "--cipher", "proposed", "--attack", "itn", "--preset", "cifar",
                            "--dataset", cifar]],
    }


def timed(args: list[str], cache: Path, out: Path) -> float:
    env = {**os.environ, "PPATTACK_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.run([*PPATTACK, *args, *(["--out", str(out)] if args[0] == "run" else [])],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {proc.stderr.strip().splitlines()[-1]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cifar", default="folder:../shared/data/cifar10-jpeg")
    parser.add_argument("--cases", default="quick,cifar")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ppattack-run-time-"))
    try:
        floor = timed(["list"], work / "cache-list", work / "out-list")
        rows = []
        for group in args.cases.split(","):
            for case in cases(args.cifar)[group]:
                case = [*case, "--device", args.device]
                cache = work / f"cache-{len(rows)}"
                cold = timed(case, cache, work / f"out-{len(rows)}-cold")
                warm = timed(case, cache, work / f"out-{len(rows)}-warm")
                rows.append((group, " ".join(case[1:]), cold, warm))
                print(f"{group}: {' '.join(case)}: cold {cold:.1f} s, warm {warm:.1f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    import torch

    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    print(f"\nMachine: {machine(device)}. Baseline: `ppattack list` {floor:.1f} s.\n")
    print("| preset | command (ppattack run ...) | cold s | warm s | cold / baseline | warm / baseline |")
    print("|---|---|---:|---:|---:|---:|")
    for group, command, cold, warm in rows:
        print(f"| {group} | `{command}` | {cold:.1f} | {warm:.1f} | {cold / floor:.1f} | {warm / floor:.1f} |")


if __name__ == "__main__":
    main()
