"""Training throughput: images per second of the attack networks' and the classifiers' training.

    python benchmarks/training_throughput.py [--device cpu|cuda] [--steps 40] [--threads N]
                                             [--only itn-quick,classifier-quick,...]

Each trainer is the library's own training loop (``ITN._train``, ``GAN._train``,
``classifier._train``) run for a fixed number of steps on the embedded ``samples`` images
(32x32, block 4, cipher ``proposed``), encryption of every batch included, in two precisions
measured in the same run: float32 and bfloat16 autocast on the CPU, float32 and float16 AMP on
CUDA. Images/s = steps x batch / wall time, after a short warm-up run of the same trainer.

The classifier is also trained with the straightforward data pipeline of the public reference
code, every image encrypted on its own by Python loops over its blocks (NumPy, on the CPU;
``cipher_throughput.proposed_with_loops``), against ppattack's batched gather on the device.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import ppattack  # noqa: E402
from ppattack.learning import classifier  # noqa: E402
from ppattack.learning import trained_attack  # noqa: E402
from ppattack.data import assign_roles, load_dataset  # noqa: E402
from ppattack.images.image_set import ImageSet  # noqa: E402
from ppattack.harness import threat_view  # noqa: E402
from ppattack.presets import get_preset  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cipher_throughput import machine, proposed_with_loops  # noqa: E402

SHAPE = (3, 32, 32)


@contextlib.contextmanager
def precision(mixed: bool, device: torch.device):
    """Switch the trainers' mixed precision on or off (bf16 autocast on CPU, AMP on CUDA)."""
    saved = {m: (m.autocast, m.cpu_bf16_supported) for m in (trained_attack, classifier)}
    for module, (autocast, _) in saved.items():
        module.cpu_bf16_supported = lambda: mixed
        if device.type == "cuda" and not mixed:
            module.autocast = lambda *a, **k: contextlib.nullcontext()
    try:
        yield
    finally:
        for module, (autocast, supported) in saved.items():
            module.autocast, module.cpu_bf16_supported = autocast, supported


class LoopProposed:
    """``proposed`` encrypted image by image with Python loops (the public reference's way)."""

    def __init__(self, cipher, key):
        self.cipher, self.key = cipher, key
        self.block_perm = np.asarray(key.material["block_perm"])
        self.pixel_perm = np.asarray(key.material["pixel_perm"])

    def __getattr__(self, name):
        return getattr(self.cipher, name)

    def encrypt(self, x, key, indices=None):
        images = x.cpu().numpy()
        out = np.stack([proposed_with_loops(image[None], self.block_perm, self.pixel_perm,
                                            self.cipher.block_size)[0] for image in images])
        return torch.from_numpy(out).to(x.device)


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def attack_trainer(name: str, preset: str, steps: int, view, device):
    def train(n: int):
        attack = ppattack.create_attack(name, budget=preset, device=device, steps=n,
                                        **({"eval_every": n} if name == "itn" else {}))
        attack._train(view)
    batch = ppattack.create_attack(name, budget=preset, device=device).batch_size
    return train, batch


def classifier_trainer(preset: str, cipher, key, roles, device, num_classes: int):
    model_config, train_config = classifier.configs_from_settings(get_preset(preset), cipher, SHAPE, num_classes)
    batch = train_config.batch_size

    def train(n: int, mixed: bool):
        repeat = -(-n * batch // len(roles.victim_train))  # the victim images, repeated as needed
        images = roles.victim_train.tensor().repeat(repeat, 1, 1, 1)[:n * batch]
        labels = roles.victim_train_labels.repeat(repeat)[:n * batch]
        config = replace(train_config, epochs=1, cpu_bf16=mixed)
        classifier._train(cipher, key, ImageSet.from_tensors(images, labels), model_config, config, 0, device,
                          "benchmark")
    return train, batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--only", default=None, help="comma-separated rows (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dataset = load_dataset("samples", 32)
    roles = assign_roles(dataset)
    cipher = ppattack.create_cipher("proposed", block_size=4)
    key = cipher.generate_key(SHAPE, seed=0)
    view = threat_view("coa+public", cipher, key, cipher.encrypt(roles.targets.tensor(device), key), roles)
    classes = len(dataset.classes)

    rows = []
    for name, preset in (("itn", "quick"), ("itn", "cifar"), ("gan", "quick")):
        label = f"{name}-{preset}"
        if args.only and label not in args.only.split(","):
            continue
        train, batch = attack_trainer(name, preset, args.steps, view, device)
        speeds = {}
        for mixed in (False, True):
            with precision(mixed, device):
                train(2)  # warm-up
                speeds[mixed] = args.steps * batch / timed(lambda: train(args.steps))
        rows.append((label, batch, speeds[False], speeds[True], None))
    for preset in ("quick", "cifar"):
        label = f"classifier-{preset}"
        if args.only and label not in args.only.split(","):
            continue
        steps = args.steps
        speeds = {}
        for mixed in (False, True):
            train, batch = classifier_trainer(preset, cipher, key, roles, device, classes)
            train(1, mixed)
            speeds[mixed] = steps * batch / timed(lambda: train(steps, mixed))
        loops, _ = classifier_trainer(preset, LoopProposed(cipher, key), key, roles, device, classes)
        loop_speed = steps * batch / timed(lambda: loops(steps, False))
        rows.append((label, batch, speeds[False], speeds[True], loop_speed))

    low = "fp16 AMP" if device.type == "cuda" else "bf16 autocast"
    print(f"\nMachine: {machine(device)}. {args.steps} steps of each trainer, wall clock.\n")
    print(f"| trainer | batch | fp32 img/s | {low} img/s | {low} / fp32 | per-image loop encryption, fp32 img/s "
          "| batched / loops |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, batch, fp32, mixed, loops in rows:
        loop_cells = "n/a | n/a" if loops is None else f"{loops:,.0f} | {fp32 / loops:.2f}"
        print(f"| {label} | {batch} | {fp32:,.0f} | {mixed:,.0f} | {mixed / fp32:.2f} | {loop_cells} |")


if __name__ == "__main__":
    main()
