"""Presets: named sets of run values (docs/protocol.md, "Presets"). User values override them key by key."""
from __future__ import annotations

from typing import Any

from .errors import UnknownComponentError

PRESETS: dict[str, dict[str, Any]] = {
    # Every attack and the classifier finish on a 2-core CPU; `run` on samples well under a minute.
    "quick": {"dataset": "samples", "image_size": 32, "block_size": 4,
              "max_train": 2000, "max_test": 500, "targets": 64,
              # classifier (ppattack.learning.classifier): a tiny ViT, a few seconds per model
              "classifier": "vit", "classifier_width": 48, "classifier_depth": 2,
              "classifier_pretrained": False, "classifier_epochs": 6, "classifier_batch": 32,
              "classifier_optimizer": "adamw", "classifier_lr": 2e-3, "classifier_lr_encrypted": 2e-3,
              "classifier_weight_decay": 0.05, "classifier_cpu_bf16": False},
    # CIFAR-10 (or 100) at 32x32, moderate budgets.
    "cifar": {"dataset": "cifar10", "image_size": 32, "block_size": 4,
              "max_train": None, "max_test": None, "targets": 1000,
              # classifier: a small ViT from scratch (ViT-Tiny widths, patch = block), AdamW + cosine
              "classifier": "vit", "classifier_width": 192, "classifier_depth": 6,
              "classifier_pretrained": False, "classifier_epochs": 30, "classifier_batch": 128,
              "classifier_optimizer": "adamw", "classifier_lr": 1e-3, "classifier_lr_encrypted": 1e-3,
              "classifier_weight_decay": 0.05, "classifier_cpu_bf16": "auto"},
    # The seed's setting: 224x224, block 16, ViT-B/16. Meant for a GPU.
    "paper": {"dataset": "cifar10", "image_size": 224, "block_size": 16,
              "max_train": None, "max_test": None, "targets": 1000,
              # classifier: ViT-B/16 fine-tuned from ImageNet-21k weights with the seed's SGD
              # (momentum 0.9, wd 5e-4, lr 0.03 plain / 0.3 encrypted, batch 512); 200 epochs of
              # the 25,000 victim images ~ the 10k steps of Dosovitskiy et al.'s CIFAR fine-tuning
              "classifier": "vit", "classifier_width": 768, "classifier_depth": 12,
              "classifier_pretrained": True, "classifier_epochs": 200, "classifier_batch": 512,
              "classifier_optimizer": "sgd", "classifier_lr": 0.03, "classifier_lr_encrypted": 0.3,
              "classifier_weight_decay": 5e-4, "classifier_cpu_bf16": "auto"},
}


def get_preset(name: str) -> dict[str, Any]:
    """A copy of preset ``name``'s values."""
    if name not in PRESETS:
        raise UnknownComponentError(f"unknown preset '{name}': choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])
