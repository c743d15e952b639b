"""Classifier accuracy beside the ciphers: one fixed training budget for every row.

    python benchmarks/classifier_accuracy.py [--train-images 2000] [--test-images 2000]
        [--epochs 8] [--rows vit:plain,vit:proposed,...] [--threads N] [--write]

On the shared CIFAR-10 copy (``folder:../shared/data/cifar10-jpeg`` from the project root,
32x32): the victim's training images (the first ``--train-images`` of the train split's
victim half, as in ``ppattack run``) train each classifier from scratch; the first
``--test-images`` test images score it, encrypted with the same key. Every row gets the
same budget: small ViT (width 128, depth 4, 2 heads, patch 4) or ResNet-18 (3x3 stem),
AdamW lr 1e-3, weight decay 0.05, batch 64, warm-up + cosine, crop + flip before
encryption. Trained classifiers are cached, so a rerun only evaluates. ``--write`` puts the
table into benchmarks/RESULTS.md under "## Classifier accuracy".
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import textwrap
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import ppattack  # noqa: E402
from ppattack.learning.classifier import configs_from_settings, evaluate, fit  # noqa: E402
from ppattack.data import assign_roles, load_dataset  # noqa: E402
from ppattack.params import accepted_parameters  # noqa: E402
from ppattack.presets import get_preset  # noqa: E402
from ppattack.registry import CIPHERS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASET = "folder:../shared/data/cifar10-jpeg"
#: (network, cipher, training seed); the second plain ViT measures seed-to-seed spread.
ROWS = (("vit", "plain", 0), ("vit", "plain", 1), ("vit", "proposed", 0), ("vit", "block-shuffle", 0),
        ("vit", "etc", 0), ("vit", "pe", 0), ("vit", "le", 0), ("resnet18", "plain", 0),
        ("resnet18", "proposed", 0))
BUDGET = {"classifier_width": 128, "classifier_depth": 4, "classifier_pretrained": False,
          "classifier_batch": 64, "classifier_optimizer": "adamw", "classifier_lr": 1e-3,
          "classifier_lr_encrypted": 1e-3, "classifier_weight_decay": 0.05, "classifier_cpu_bf16": "auto"}
SECTION = "## Classifier accuracy"


def measure(network: str, cipher_name: str, seed: int, dataset, roles, epochs: int) -> dict:
    settings = {**get_preset("cifar"), **BUDGET, "classifier": network, "classifier_epochs": epochs}
    params = {"block_size": 4} if "block_size" in accepted_parameters(CIPHERS.get(cipher_name)) else {}
    cipher = ppattack.create_cipher(cipher_name, **params)
    shape = roles.victim_train.shape
    key = cipher.generate_key(shape, seed=0)
    model_config, train_config = configs_from_settings(settings, cipher, shape, len(dataset.classes))
    trained = fit(cipher, key, roles.victim_train, model_config, train_config,
                  seed=seed, description=f"{network} on {cipher_name} (seed {seed})")
    started = time.perf_counter()
    accuracy = evaluate(trained.model, cipher, key, dataset.test)
    return {"network": network, "cipher": cipher_name, "seed": seed, "accuracy": accuracy,
            "train_seconds": trained.train_seconds, "eval_seconds": time.perf_counter() - started,
            "cached": trained.cached}


def table(rows: list[dict], args, n_train: int, n_test: int) -> str:
    by = {(r["network"], r["cipher"], r["seed"]): r["accuracy"] for r in rows}
    lines = [f"Measured by `benchmarks/classifier_accuracy.py` on {machine()}, {time.strftime('%Y-%m-%d')}.",
             "",
             f"Budget, the same for every row: {n_train} training images of the shared CIFAR-10 copy "
             f"(JPEG, 32x32), {args.epochs} epochs, batch 64, AdamW lr 1e-3, weight decay 0.05, "
             "warm-up + cosine, crop + flip before encryption, trained from scratch; accuracy on "
             f"{n_test} test images encrypted with the same key. ViT: width 128, depth 4, 2 heads, "
             "patch 4 (= block size 4); ResNet-18: timm, 3x3 stride-1 stem, no max-pool. Chance is 10%; "
             "this budget is far below the seed's (50,000 images, pre-trained ViT-B/16), so absolute "
             "figures are low and only the differences between rows speak.",
             "",
             "\"train s\" is the wall-clock time of the training (a cached network keeps its "
             "original time); on a machine shared with other jobs, read it as an upper bound.",
             "",
             "| network | cipher | seed | accuracy | train s |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['network']} | {r['cipher']} | {r['seed']} | {100 * r['accuracy']:.1f}% | "
                     f"{r['train_seconds']:.0f} |")
    differences = [f"{r['cipher']} {100 * (r['accuracy'] - by[plain]):+.1f} ({r['network']})"
                   for r in rows if r["cipher"] != "plain" and (plain := (r["network"], "plain", r["seed"])) in by]
    if differences:
        lines += ["", "Accuracy minus the plain model of the same network and seed, in points: "
                      + ", ".join(differences) + "."]
    if ("vit", "plain", 0) in by and ("vit", "plain", 1) in by:
        lines += ["", f"Seed-to-seed spread: the plain ViT with training seed 1 scores "
                      f"{100 * (by[('vit', 'plain', 1)] - by[('vit', 'plain', 0)]):+.1f} points against seed 0 "
                      f"(one test image is {100 / n_test:.2f} points)."]
    lines += ["", "A ViT whose patch size is the block size sees proposed and block-shuffle ciphertexts as "
                  "a fixed permutation of its patch entries and of its tokens, which the patch and "
                  "position embeddings absorb (`ppattack.model_transform.encrypt_model` does it exactly, with no "
                  "training): training on them is training the same network in other coordinates, so "
                  "their gap to plain should stay within the seed-to-seed spread. A CNN's convolutions "
                  "straddle block borders and rely on pixel neighbourhoods that block scrambling breaks."]
    return "\n".join(textwrap.fill(line, 100, break_on_hyphens=False) if not line.startswith("|") else line
                     for line in lines)


def machine() -> str:
    threads = torch.get_num_threads()
    wait = f", OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}" if os.environ.get("OMP_WAIT_POLICY") else ""
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch "
            f"{torch.__version__.split('+')[0]} with {threads} thread{'s' * (threads > 1)}{wait}")


def write(text: str) -> None:
    path = ROOT / "benchmarks" / "RESULTS.md"
    document = path.read_text(encoding="utf-8")
    pattern = re.compile(rf"({re.escape(SECTION)}\n\n).*?(?=\n## |\Z)", re.S)
    if not pattern.search(document):
        raise SystemExit(f"no '{SECTION}' section in {path}")
    path.write_text(pattern.sub(lambda m: m.group(1) + text + "\n", document, count=1), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--rows", default=None, help="network:cipher[:seed],... (default: all rows)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = ROWS if args.rows is None else [
        (parts[0], parts[1], int(parts[2]) if len(parts) > 2 else 0)
        for parts in (item.split(":") for item in args.rows.split(","))]
    os.chdir(ROOT)  # the dataset path is relative to the project root
    dataset = load_dataset(DATASET, 32, max_train=2 * args.train_images, max_test=args.test_images)
    roles = assign_roles(dataset)  # victim_train: the first half of the train subset
    results = []
    for network, cipher_name, seed in rows:
        result = measure(network, cipher_name, seed, dataset, roles, args.epochs)
        print(f"{network:9s} {cipher_name:14s} seed {seed}: {100 * result['accuracy']:5.1f}%  "
              f"train {result['train_seconds']:6.0f} s{' (cached)' if result['cached'] else ''}", flush=True)
        results.append(result)
    text = table(results, args, len(roles.victim_train), len(dataset.test))
    print(text)
    if args.write:
        write(text)


if __name__ == "__main__":
    main()
