"""jigsaw on CIFAR-10: direct and neighbour comparison on etc and proposed (and the plain control).

    python benchmarks/jigsaw.py [--data folder:../shared/data/cifar10-jpeg] [--images 20] [--images-224 4]

Every ciphertext is solved on its own (threat model coa+public: the public images only train
the prior that picks the turn and colours of the whole picture). For 32x32 with block 4 and
224x224 with block 16 (CIFAR upsampled bilinearly, the seed's setting), reports the means over
the images of: direct comparison (blocks in the right place AND state), direct comparison up to
the turn / mirror / recolouring of the whole picture, neighbour comparison (judged up to the
same global transform), largest correctly joined component, SSIM (wang), seconds per image.
Prints markdown.
"""
from __future__ import annotations

import argparse
import os
import platform

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import ppattack  # noqa: E402
from ppattack.data import load_dataset  # noqa: E402
from ppattack.solvers.keyscore import score_recovery  # noqa: E402
from ppattack.metrics import ssim  # noqa: E402
from ppattack.threat import ThreatView  # noqa: E402

CIPHERS = ("plain", "proposed", "etc")


def run_case(dataset, name: str, side: int, block: int, count: int) -> dict:
    cipher = ppattack.create_cipher(name, **({} if name == "plain" else {"block_size": block}))
    key = cipher.generate_key((3, side, side), seed=0)
    plain = dataset.test[:count].tensor()
    public = dataset.train[len(dataset.train) // 2:].tensor()
    view = ThreatView("coa+public", cipher, (3, side, side), cipher.encrypt(plain, key), public)
    result = ppattack.create_attack("jigsaw", threat="coa+public", block_size=block)(view)
    recovered = result.recovered_key
    scores = score_recovery(cipher, key, recovered) if name != "plain" else {}
    if name == "plain":  # the control: score the placement against the identity
        identity = list(range((side // block) ** 2))
        ok = [float(np.mean(np.asarray(r["block_perm"]) == identity)) for r in recovered]
        scores = {"direct": float(np.mean(ok))}
    return {"cipher": name, "setting": f"{side}x{side}/{block}", "images": count, **scores,
            "ssim": float(ssim(result.images, plain).mean()),
            "ssim_baseline": float(ssim(view.ciphertexts, plain).mean()),
            "seconds_per_image": (result.attack_seconds + result.train_seconds) / count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="folder:../shared/data/cifar10-jpeg")
    parser.add_argument("--images", type=int, default=20, help="images per cipher at 32x32")
    parser.add_argument("--images-224", type=int, default=4, help="images per cipher at 224x224")
    parser.add_argument("--ciphers", default=",".join(CIPHERS))
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| cipher | setting | images | direct | direct up to global | neighbour | largest component "
          "| SSIM restored (cipher) | s/image |")
    print("|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for side, block, count, max_train in ((32, 4, args.images, 2000), (224, 16, args.images_224, 300)):
        dataset = load_dataset(args.data, side, max_train=max_train, max_test=max(count, 1))
        for name in args.ciphers.split(","):
            row = run_case(dataset, name, side, block, count)
            print(f"| {name} | {row['setting']} | {count} | {fmt(row.get('direct'))} | "
                  f"{fmt(row.get('direct_modulo_global'))} | {fmt(row.get('neighbour'))} | "
                  f"{fmt(row.get('largest_component'))} | {row['ssim']:.3f} ({row['ssim_baseline']:.3f}) | "
                  f"{row['seconds_per_image']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
