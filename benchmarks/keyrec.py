"""keyrec on CIFAR-10: how many ciphertexts recover 100% of both key parts of `proposed`.

    python benchmarks/keyrec.py [--data folder:../shared/data/cifar10-jpeg] [--trials 3] [--quick]

For 32x32 with block 4 and 224x224 with block 16 (CIFAR images upsampled bilinearly as the
harness does, the seed's setting), and for growing numbers n of victim ciphertexts: `trials`
fresh keys (seeds 0..trials-1), each attacking n test images (a different slice per trial)
under coa+public with the preset's public images (cifar: 2000 at 32x32; paper: 200 at
224x224). Reports the mean fraction of each key part recovered, how many trials recovered the
whole key, the SSIM (wang) of the n restored images and the attack time. Prints markdown.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import ppattack  # noqa: E402
from ppattack.data import load_dataset  # noqa: E402
from ppattack.keyscore import score_recovery  # noqa: E402
from ppattack.metrics import ssim  # noqa: E402
from ppattack.threat import ThreatView  # noqa: E402

# side, block, preset, train images loaded, ciphertext counts
SETTINGS = ((32, 4, "cifar", 4000, (1, 2, 3, 5, 10, 20, 50, 200)),
            (224, 16, "paper", 400, (1, 2, 5, 20)))


def run_setting(data: str, side: int, block: int, preset: str, max_train: int, counts, trials: int) -> list[dict]:
    dataset = load_dataset(data, side, max_train=max_train, max_test=max(counts) * trials)
    public = dataset.train_images[max_train // 2:]  # the attacker's half of the training split
    cipher = ppattack.create_cipher("proposed", block_size=block)
    rows = []
    for n in counts:
        found = []
        for trial in range(trials):
            key = cipher.generate_key((3, side, side), seed=trial)
            plain = dataset.test_images[trial * n:(trial + 1) * n]
            view = ThreatView("coa+public", cipher, (3, side, side), cipher.encrypt(plain, key), public)
            attack = ppattack.create_attack("keyrec", preset=preset, max_ciphertexts=n)
            result = attack(view)
            scores = score_recovery(cipher, key, result.facts.pop("recovered_key"))
            found.append({**scores, "ssim": float(ssim(result.images, plain).mean()),
                          "seconds": result.attack_seconds + result.train_seconds})
        row = {"setting": f"{side}x{side}/{block}", "n": n, "trials": trials,
               "public": min(len(public), attack.max_public),
               **{k: float(np.mean([f[k] for f in found])) for k in ("block_perm", "pixel_perm", "ssim", "seconds")},
               "complete": int(sum(f["complete"] for f in found)),
               "max_seconds": float(max(f["seconds"] for f in found))}
        rows.append(row)
        print(f"| {row['setting']} | {n} | {row['public']} | {row['block_perm']:.3f} | {row['pixel_perm']:.3f} | "
              f"{row['complete']}/{trials} | {row['ssim']:.4f} | {row['seconds']:.1f} (max {row['max_seconds']:.1f}) |",
              flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="folder:../shared/data/cifar10-jpeg")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer counts (a smoke run)")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| setting | ciphertexts n | public images | block_perm | pixel_perm | whole key | SSIM (wang) | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    started = time.perf_counter()
    for side, block, preset, max_train, counts in SETTINGS:
        run_setting(args.data, side, block, preset, max_train, counts[:2] if args.quick else counts, args.trials)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
