"""keyrec on CIFAR-10: SSIM and whole-key recovery against the number of ciphertexts, per cipher.

    python benchmarks/keyrec.py [--data folder:../shared/data/cifar10-jpeg] [--ciphers le,etc]
                                [--counts 10,100,1000,5000] [--side 32 --block 4 | --side 224 --block 16]

Every shared-key cipher of the class (and the test plugins of tests/plugins, made from their
classes: nothing registers or names them) is attacked ciphertext-only with public images
(``coa+public``): the victim encrypts n test images (then training images beyond the test split
when n is larger) under a fresh key (seed 1); the attacker holds 2000 public images (200 at
224x224) from the other half of the training split, and at 32x32 10000 to train the mirror
score (``ppattack.solvers.chirality``). Reports SSIM (wang) median and mean of the n restorations, whether the recovered map decrypts a fresh image exactly (the whole key), the
fraction of ciphertext bits mapped right and the attack's seconds. "Up to a mirror" takes per
image the better of the restoration and its mirror image (hindsight, for reading only): ciphers
whose per-block transforms include mirrors (etc, etc-gray) have the mirrored picture as a
second valid key, which only the public-image prior can choose against. Prints markdown rows.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import ppattack  # noqa: E402
from ppattack.data import load_dataset  # noqa: E402
from ppattack.harness import key_recovery_scores  # noqa: E402
from ppattack.metrics import ssim  # noqa: E402
from ppattack.threat import ThreatView  # noqa: E402

PLUGINS = Path(__file__).resolve().parent.parent / "tests" / "plugins"
BUILT_IN = ("proposed", "block-shuffle", "block-np", "le", "ele", "etc", "etc-gray")


def make_cipher(name: str, block: int):
    if name in ("tile-mix", "pixel-scatter", "row-shuffle"):
        sys.path.insert(0, str(PLUGINS / "ppattack-shared-maps"))
        sys.path.insert(0, str(PLUGINS / "ppattack-row-shuffle"))
        from ppattack_row_shuffle import RowShuffle
        from ppattack_shared_maps import PixelScatter, TileMix
        return {"tile-mix": lambda: TileMix(block_size=block), "pixel-scatter": PixelScatter,
                "row-shuffle": RowShuffle}[name]()
    return ppattack.create_cipher(name, block_size=block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="folder:../shared/data/cifar10-jpeg")
    parser.add_argument("--ciphers", default=",".join(BUILT_IN))
    parser.add_argument("--counts", default="10,100,1000,5000")
    parser.add_argument("--side", type=int, default=32)
    parser.add_argument("--block", type=int, default=4)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    public_count = 10000 if args.side <= 64 else 200  # the mirror score's; templates use 2000
    victims = max(counts)
    dataset = load_dataset(args.data, args.side, max_train=public_count + max(0, victims - 1000) + 10,
                           max_test=min(victims, 1000))
    pool = torch.cat([dataset.test.tensor(), dataset.train[public_count:].tensor()])
    public = dataset.train[:public_count].tensor()
    preset = "cifar" if args.side <= 64 else "paper"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.side}x{args.side}, "
          f"block {args.block}, {len(public)} public images")
    print("| cipher | ciphertexts | SSIM median | SSIM mean | SSIM median up to a mirror | whole key | map bits right | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    shape = (3, args.side, args.side)
    for name in args.ciphers.split(","):
        cipher = make_cipher(name, args.block)
        key = cipher.generate_key(shape, seed=1)
        for n in counts:
            plain = pool[:n]
            view = ThreatView("coa+public", cipher, shape, cipher.encrypt(plain, key), public)
            started = time.perf_counter()
            try:
                result = ppattack.create_attack("keyrec", budget=preset, max_ciphertexts=n,
                                                max_public=min(2000, len(public)))(view)
            except ppattack.PPAttackError as error:
                print(f"| {name} | {n} | - | - | - | - | {error} |", flush=True)
                continue
            seconds = time.perf_counter() - started
            scores = key_recovery_scores(cipher, key, result.recovered_key,
                                         result.recovered_map)
            values = ssim(result.images, plain)
            mirrored = np.maximum(values, ssim(result.images.flip(-1), plain))
            print(f"| {name} | {n} | {float(np.median(values)):.3f} | {float(values.mean()):.3f} | "
                  f"{float(np.median(mirrored)):.3f} | "
                  f"{'yes' if scores['complete'] == 1.0 else 'no'} | {scores['map_bits']:.3f} | {seconds:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
