"""kpa / cpa on every shared-key cipher: chosen images asked, known pairs needed, exactness.

    python benchmarks/kpa_cpa.py [--data folder:../shared/data/cifar10-jpeg] [--pairs 50]
                                 [--ciphers le,ele] [--settings 32/4,224/16] [--attacks cpa,kpa]

At 32x32/4 and 224x224/16 (CIFAR images upsampled as the harness does): cpa against an oracle
under a fresh key (seed 1), and kpa with natural known pairs from the training split (the attack
adds pairs 8, 16, 32, ... until no unit ties, up to the 50 granted). Whole key: the recovered
map decrypts a fresh random image exactly. Prints markdown rows.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import ppattack  # noqa: E402
from ppattack.data import load_dataset  # noqa: E402
from ppattack.harness import key_recovery_scores  # noqa: E402
from ppattack.threat import ThreatView  # noqa: E402

CIPHERS = ("proposed", "block-shuffle", "block-np", "le", "ele", "etc", "etc-gray")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="folder:../shared/data/cifar10-jpeg")
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--ciphers", default=",".join(CIPHERS))
    parser.add_argument("--settings", default="32/4,224/16", help="side/block, comma-separated")
    parser.add_argument("--attacks", default="cpa,kpa")
    args = parser.parse_args()
    settings = [tuple(int(v) for v in s.split("/")) for s in args.settings.split(",")]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    print("| setting | cipher | attack | images used | whole key | ambiguous units | seconds |")
    print("|---|---|---|---|---|---|---|")
    for side, block in settings:
        data = load_dataset(args.data, side, max_train=args.pairs, max_test=4)
        shape = (3, side, side)
        for name in args.ciphers.split(","):
            cipher = ppattack.create_cipher(name, block_size=block)
            key = cipher.generate_key(shape, seed=1)
            targets, pairs = data.test.tensor(), data.train.tensor()
            for threat in args.attacks.split(","):
                extra = ({"oracle": lambda x: cipher.encrypt(x, key)} if threat == "cpa" else
                         {"known_pairs": (pairs, cipher.encrypt(pairs, key))})
                view = ThreatView(threat, cipher, shape, cipher.encrypt(targets, key), **extra)
                started = time.perf_counter()
                try:
                    result = ppattack.create_attack(threat, threat=threat)(view)
                except ppattack.PPAttackError as error:
                    print(f"| {side}/{block} | {name} | {threat} | - | - | - | {error} |", flush=True)
                    continue
                seconds = time.perf_counter() - started
                used = result.facts.get("chosen_images", result.facts.get("pairs_used"))
                scores = key_recovery_scores(cipher, key, result.recovered_key,
                                             result.recovered_map)
                print(f"| {side}/{block} | {name} | {threat} | {used} | "
                      f"{'yes' if scores['complete'] == 1.0 else 'no'} | "
                      f"{result.facts.get('ambiguous_units', 0.0):.4f} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
