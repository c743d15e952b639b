"""The positive control of an unpaired GAN attack against its training steps, from ONE run.

    python benchmarks/control_curve.py --attack sia-gan --dataset folder:../shared/data/cifar10-jpeg \\
        --preset cifar --limit 100 --seed 0 --checkpoints 250,500,1000 [--param K=V ...] [--json F]

The same data, key, attack seed and parameters as
``ppattack run --cipher plain --attack A --dataset D --preset P --limit N --no-accuracy --seed S
--param attack.steps=LAST`` (LAST: the last checkpoint); after each checkpoint's step the
generator, in eval mode, restores the targets and their SSIM (wang: mean and median) is printed
with the seconds since training began. Scoring reads the generator only, so the run's last row
is that command's score. The trained network is not cached.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from ppattack.data import assign_roles, load_dataset  # noqa: E402
from ppattack.harness import RunConfig, resolve, role_seed, threat_view  # noqa: E402
from ppattack.metrics import ssim  # noqa: E402
from ppattack.params import parse_assignments  # noqa: E402
from ppattack.registry import ATTACKS, CIPHERS  # noqa: E402
from ppattack.learning.training import to_signed, to_uint8  # noqa: E402
from ppattack.learning.weight_average import WeightAverage  # noqa: E402


def curve(attack_name: str, dataset: str, preset: str, limit: int, seed: int, checkpoints: list[int],
          params: dict[str, object], averages: tuple[float, ...] = ()) -> list[dict[str, float]]:
    """One training run of ``attack_name`` on ``plain``; a row per checkpoint (step, SSIM mean and
    median over the targets, seconds since training began), and for each decay in ``averages``
    the same scores of an average of the generator's weights kept beside the run (it does not
    change the training: ``ssim_mean_ema<decay>``, ``ssim_median_ema<decay>``)."""
    resolved = resolve(RunConfig(cipher="plain", attack=attack_name, dataset=dataset, preset=preset,
                                 params={**params, "attack.steps": max(checkpoints)}, device="cpu",
                                 seed=seed, limit=limit, accuracy=False))
    settings = resolved.settings
    size = int(settings["image_size"])
    data = load_dataset(settings["dataset"], size, max_train=settings.get("max_train"),
                        max_test=settings.get("max_test"))
    roles = assign_roles(data, limit)
    cipher = CIPHERS.create("plain", **resolved.cipher_params)
    key = cipher.generate_key((3, size, size), seed=role_seed(seed, "victim-key"))
    rows: list[dict[str, float]] = []
    marks = set(checkpoints)
    shadows: dict[float, WeightAverage] = {}

    def scores_of(generator: nn.Module) -> np.ndarray:
        generator.eval()
        with torch.no_grad():
            restored = torch.cat([to_uint8(generator(to_signed(view.ciphertexts[i:i + 256])))
                                  for i in range(0, len(view.ciphertexts), 256)])
        generator.train()
        return ssim(restored, roles.targets.tensor())

    class Scored(ATTACKS.get(attack_name)):
        def after_step(self, step: int, generator: nn.Module) -> None:
            for decay in averages:
                if decay not in shadows:
                    shadows[decay] = WeightAverage(generator, decay)
                shadows[decay].update(generator)
            if step not in marks:
                return
            scores = scores_of(generator)
            row = {"step": step, "ssim_mean": float(np.mean(scores)), "ssim_median": float(np.median(scores))}
            for decay, shadow in shadows.items():
                scratch = copy.deepcopy(generator)
                scratch.load_state_dict(shadow.state_dict(generator))
                averaged = scores_of(scratch)
                row[f"ssim_mean_ema{decay:g}"] = float(np.mean(averaged))
                row[f"ssim_median_ema{decay:g}"] = float(np.median(averaged))
            row["seconds"] = time.perf_counter() - began
            rows.append(row)
            extra = "".join(f" | {row[f'ssim_mean_ema{d:g}']:.3f}" for d in shadows)
            print(f"| {step} | {row['ssim_mean']:.3f} | {row['ssim_median']:.3f}{extra} | "
                  f"{row['seconds']:.0f} |", flush=True)

    attack = Scored(budget=preset, seed=role_seed(seed, "attack"), device="cpu", threat="coa+public",
                    **resolved.attack_params)
    attack.use_cache = False
    view = threat_view("coa+public", cipher, key, cipher.encrypt(roles.targets.tensor(), key), roles,
                       dataset=str(settings["dataset"]), training_ciphertexts=True)
    print(f"{attack_name} on plain, {len(view.ciphertexts)} targets, "
          f"{len(view.training_ciphertexts)} training ciphertexts, {len(view.public_images)} public images; "
          f"params {attack.params}; {platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)
    heads = "".join(f" | mean, average {d:g}" for d in averages)
    print(f"| step | SSIM mean | SSIM median{heads} | s |\n|---|---|---{'|---' * len(averages)}|---|", flush=True)
    began = time.perf_counter()
    attack(view)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attack", default="sia-gan")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--preset", default="cifar")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoints", default="250,500,1000")
    parser.add_argument("--param", action="append", default=[], help="K=V, as ppattack run's --param")
    parser.add_argument("--averages", default="", help="decays of weight averages to score too, e.g. 0.99,0.998")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",")})
    rows = curve(args.attack, args.dataset, args.preset, args.limit, args.seed, checkpoints,
                 parse_assignments(args.param), tuple(float(d) for d in args.averages.split(",") if d))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
