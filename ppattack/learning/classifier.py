"""The protected classifier: what a cipher must keep accurate while it hides the images.

The victim trains a classifier on its encrypted training images and serves it encrypted test
images; beside it, a plain model trained on plain images is the reference. Three families:

- ``vit``: a timm Vision Transformer with patch size = the cipher's block size (the seed's
  combination: block scrambling at the patch size is invisible to a ViT up to a permutation of
  its patch embedding and position embedding). From scratch for the quick and cifar presets;
  ``vit_base_patch16_224`` with ImageNet-21k weights from the Hugging Face hub for paper.
- ``resnet18``: timm's ResNet-18, with a 3x3 stride-1 stem and no max-pool below 64 pixels
  (the usual CIFAR adaptation), the CNN baseline of the seed's Table I.
- ``adaptation``: an adaptation network in front of a ResNet-18 (Table I's LE* and ELE*). The
  image is split into its 4-bit nibble planes (the representation LE permutes and flips, so a
  block-wise linear map can undo it exactly), a block-wise ``B x B`` stride-``B`` linear map and
  two 1x1 layers transform every block, and PixelShuffle puts ``B x B`` pixels back (Tanaka
  2018). For ``ele``, whose LE key differs per block position, the first map has its own weights
  per block position (Madono et al. 2020); blocks stay scrambled, which is what costs ELE its
  accuracy. Both are reconstructions from the papers' descriptions, not copies of their code.

Every model takes uint8 images (or float in [0, 1]) and normalises inside with mean = std =
0.5 per channel, so negative-positive is a sign flip and moving components across channels
commutes with the normalisation (what :func:`ppattack.model_transform.encrypt_model` relies on).

Training (:func:`fit`) augments the PLAIN images (random crop after zero padding by H/8,
horizontal flip) and encrypts each augmented batch with the victim key, as a victim would;
AdamW or SGD (momentum 0.9) with a linear warm-up over the first 5% of steps and cosine decay,
weight decay on weights only (not on biases, norms, position embedding or class token),
gradient clipping at norm 1; float16 AMP on CUDA, bfloat16 autocast on the CPU only where the
CPU has native bf16 (elsewhere it is emulated and several times slower). Everything random
comes from the seed, and trained weights are cached by a hash of what determines them::

    model_config, train_config = configs_from_settings(settings, cipher, (3, 32, 32), 10)
    trained = fit(cipher, key, train_set, model_config, train_config, seed=0)
    accuracy = evaluate(trained.model, cipher, key, test_set)
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .cache import cached
from ..cipher import Cipher, parse_int_param
from ..runtime.digest import class_source_digest
from ..runtime.distributed import data_parallel, shard, world
from ..errors import DataError, ParameterError, ShapeError
from ..images.image_set import ImageSet
from ..keys import Key, Shape
from ..registry import create_cipher
from ..runtime.progress import progress
from .training import autocast, cpu_bf16_supported, crop_flip, crop_pad, grad_scaler

log = logging.getLogger(__name__)

ARCHITECTURES = ("vit", "resnet18", "adaptation")
OPTIMIZERS = ("adamw", "sgd")
#: Hub weights loaded when ``pretrained`` is set: the seed's ViT-B/16 pre-trained on ImageNet-21k
#: (the original checkpoint of Dosovitskiy et al.), and torchvision's ResNet-18.
PRETRAINED = {"vit": "vit_base_patch16_224.orig_in21k", "resnet18": "resnet18.tv_in1k",
              "adaptation": "resnet18.tv_in1k"}
WARMUP_FRACTION = 0.05
CLIP_NORM = 1.0


# -- configuration -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelConfig:
    """What determines a classifier's architecture (recorded in result.json and the cache key).

    ``input_shape`` is the shape the model consumes: the cipher's ENCRYPTED shape (etc-gray:
    ``(1, H, 3W)``). ``patch_size`` is the ViT patch and the adaptation network's block.
    ``width``/``depth``: ViT embedding width and number of blocks (heads = width // 64); a
    pre-trained ViT takes them from its checkpoint (ViT-B/16: patch 16, width 768, depth 12).
    """

    architecture: str = "vit"
    input_shape: tuple[int, int, int] = (3, 32, 32)
    num_classes: int = 10
    patch_size: int = 4
    width: int = 48
    depth: int = 2
    pretrained: bool = False
    per_position: bool = False  # adaptation: one first-layer map per block position

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ParameterError(f"parameter classifier must be one of {', '.join(ARCHITECTURES)}, "
                                 f"got {self.architecture!r}")
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        if self.architecture == "vit" and self.pretrained:
            for name, value in (("patch_size", 16), ("width", 768), ("depth", 12)):
                object.__setattr__(self, name, value)
        _, h, w = self.input_shape
        if self.architecture != "resnet18" and (h % self.patch_size or w % self.patch_size):
            raise ShapeError(f"a {self.architecture} classifier with patch/block size {self.patch_size} "
                             f"cannot take {h}x{w} images: use a block_size that divides the image size")
        if self.num_classes < 2:
            raise DataError(f"the dataset has {self.num_classes} class(es): a classifier needs at least 2")

    @property
    def heads(self) -> int:
        return max(1, self.width // 64)


@dataclass(frozen=True)
class TrainConfig:
    """How a classifier is trained (recorded in result.json and the cache key)."""

    epochs: int = 6
    batch_size: int = 32
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.05
    cpu_bf16: bool = False
    augment: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ParameterError(f"parameter classifier_optimizer must be one of "
                                 f"{', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ParameterError(f"classifier_lr must be > 0 and classifier_weight_decay >= 0, got "
                                 f"{self.lr} and {self.weight_decay}")


def configs_from_settings(settings: Mapping[str, Any], cipher: Cipher, plain_shape: Shape,
                          num_classes: int) -> tuple[ModelConfig, TrainConfig]:
    """The protected classifier's configuration for ``cipher`` under resolved preset ``settings``.

    Reads the ``classifier*`` preset values (missing ones take the dataclass defaults). The
    patch / adaptation block is the cipher's block size (the preset's ``block_size`` for ciphers
    without blocks); the input shape is the cipher's encrypted shape; the learning rate is
    ``classifier_lr_encrypted`` (``classifier_lr`` for a cipher without key material, e.g.
    plain); the adaptation network maps each block position with its own weights when the
    cipher has ``per_position_keys`` (Madono et al. 2020).
    """
    def value(name: str, default: Any) -> Any:
        return settings.get(f"classifier_{name}", default)

    architecture = str(settings.get("classifier", ModelConfig.architecture))
    pretrained = _flag(value("pretrained", ModelConfig.pretrained), "classifier_pretrained")
    patch = int(cipher.block_size or settings["block_size"])
    width = parse_int_param("classifier_width", value("width", ModelConfig.width))
    depth = parse_int_param("classifier_depth", value("depth", ModelConfig.depth))
    if architecture == "vit" and pretrained and cipher.block_size not in (None, 16):
        log.warning("the pre-trained ViT has patch size 16 but cipher %s uses blocks of %d: "
                    "blocks and patches do not align", cipher.name, cipher.block_size)
    model = ModelConfig(architecture, tuple(cipher.encrypted_shape(plain_shape)), int(num_classes),
                        patch, width, depth, pretrained,
                        per_position=architecture == "adaptation" and cipher.per_position_keys)
    cpu_bf16 = value("cpu_bf16", "auto")
    keyless = not cipher.key_fields(plain_shape)  # no key material (plain): the plain learning rate
    lr = value("lr", TrainConfig.lr) if keyless else value("lr_encrypted", value("lr", TrainConfig.lr))
    train = TrainConfig(parse_int_param("classifier_epochs", value("epochs", TrainConfig.epochs)),
                        parse_int_param("classifier_batch", value("batch", TrainConfig.batch_size)),
                        str(value("optimizer", TrainConfig.optimizer)),
                        _number(lr, "classifier_lr"),
                        _number(value("weight_decay", TrainConfig.weight_decay), "classifier_weight_decay"),
                        cpu_bf16_supported() if cpu_bf16 == "auto" else _flag(cpu_bf16, "classifier_cpu_bf16"))
    return model, train


def _flag(value: Any, name: str) -> bool:
    text = str(value).lower()
    if text in ("true", "1", "yes", "false", "0", "no"):
        return text in ("true", "1", "yes")
    raise ParameterError(f"parameter {name} must be true or false, got {value!r}")


def _number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"parameter {name} must be a number, got {value!r}") from None


# -- networks --------------------------------------------------------------------------------------------

class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, for images in [0, 1]."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class NibblePlanes(nn.Module):
    """Images in [0, 1] -> their low and high 4-bit planes ``(N, 2C, H, W)`` scaled to [-1, 1].

    LE permutes and flips (``u -> 15 - u``) exactly these nibbles, so a linear map over a
    block's nibbles can undo it (Tanaka 2018: the encrypted image as 6 channels).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = torch.round(x * 255)
        high = torch.div(v, 16, rounding_mode="floor")
        return torch.cat([v - 16 * high, high], dim=1) / 7.5 - 1


class PositionwiseLinear(nn.Module):
    """A separate affine map for every ``B x B`` block position (a per-position stride-B conv).

    Shape: ``(N, C, H, W)`` -> ``(N, out_channels, H / B, W / B)``.
    """

    def __init__(self, channels: int, out_channels: int, block_size: int, grid: tuple[int, int]):
        super().__init__()
        self.block_size, self.grid = block_size, grid
        d_in = channels * block_size * block_size
        bound = 1 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(grid[0] * grid[1], out_channels, d_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(grid[0] * grid[1], out_channels).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = F.unfold(x, self.block_size, stride=self.block_size)  # (N, C*B*B, P)
        out = torch.einsum("pod,ndp->nop", self.weight.to(blocks.dtype), blocks) + self.bias.T.to(blocks.dtype)
        return out.reshape(x.shape[0], -1, *self.grid)


class AdaptationNetwork(nn.Module):
    """Block-wise adaptation network: B x B stride-B linear map, two 1x1 layers, PixelShuffle(B).

    Args:
        channels: input channels (nibble planes: 2 x image channels).
        out_channels: channels handed to the backbone (the image's).
        block_size: B.
        grid: block positions (H / B, W / B); with ``per_position`` every position gets its own
            first-layer weights (ELE), else one map is shared by all blocks (LE).

    Shape: ``(N, channels, H, W)`` -> ``(N, out_channels, H, W)``.
    """

    def __init__(self, channels: int, out_channels: int, block_size: int, grid: tuple[int, int],
                 per_position: bool = False):
        super().__init__()
        b = block_size
        hidden = max(channels * b * b, 64)
        first = (PositionwiseLinear(channels, hidden, b, grid) if per_position
                 else nn.Conv2d(channels, hidden, b, stride=b))
        self.body = nn.Sequential(
            first, nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, out_channels * b * b, 1), nn.PixelShuffle(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Classifier(nn.Module):
    """A classifier of uint8 images (or float in [0, 1]): ``net(stem(x / 255))``.

    ``stem`` is :class:`Normalize` (mean = std = 0.5) or :class:`NibblePlanes`; ``config`` is
    the :class:`ModelConfig` it was built from.
    """

    def __init__(self, stem: nn.Module, net: nn.Module, config: ModelConfig):
        super().__init__()
        self.stem, self.net, self.config = stem, net, config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255
        elif not x.is_floating_point():
            raise ShapeError(f"a classifier takes uint8 images or float images in [0, 1], got {x.dtype}")
        return self.net(self.stem(x))


def build_classifier(config: ModelConfig) -> Classifier:
    """A freshly initialised (or hub pre-trained) classifier for ``config`` (uses the torch RNG).

    >>> build_classifier(ModelConfig(input_shape=(3, 32, 32)))(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape
    torch.Size([2, 10])
    """
    channels, h, w = config.input_shape
    if config.architecture == "vit":
        net = _timm("vit", config, img_size=(h, w), in_chans=channels, patch_size=config.patch_size,
                    embed_dim=config.width, depth=config.depth, num_heads=config.heads)
        return Classifier(Normalize((0.5,) * channels, (0.5,) * channels), net, config)
    backbone = _resnet18(config, channels, (h, w))
    if config.architecture == "resnet18":
        return Classifier(Normalize((0.5,) * channels, (0.5,) * channels), backbone, config)
    b = config.patch_size
    adaptation = AdaptationNetwork(2 * channels, channels, b, (h // b, w // b), config.per_position)
    return Classifier(NibblePlanes(), nn.Sequential(adaptation, backbone), config)


def _resnet18(config: ModelConfig, channels: int, size: tuple[int, int]) -> nn.Module:
    net = _timm(config.architecture, config, in_chans=channels)
    if min(size) < 64:  # CIFAR-sized inputs: keep the resolution in the stem
        net.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    return net


def _timm(architecture: str, config: ModelConfig, **kwargs: Any) -> nn.Module:
    import timm

    name = PRETRAINED[architecture]
    if config.pretrained:
        try:
            return timm.create_model(name, pretrained=True, num_classes=config.num_classes, **kwargs)
        except OSError as e:  # offline, hub unreachable, file missing from the hub cache
            what = "ImageNet-21k" if architecture == "vit" else "ImageNet"
            raise DataError(f"{what} weights for {name.split('.')[0]} could not be downloaded from "
                            f"the Hugging Face hub ({type(e).__name__}): connect to the internet "
                            "(or fill the hub cache), or pass --param classifier_pretrained=false "
                            "to train from scratch") from None
    return timm.create_model(name.split(".")[0], pretrained=False, num_classes=config.num_classes, **kwargs)


# -- training and evaluation -------------------------------------------------------------------------

@dataclass
class Trained:
    """A trained classifier (eval mode, on the training device) and how it came to be."""

    model: Classifier
    train_seconds: float
    cached: bool


#: Image numbers for per-image ciphers (``encrypt(..., indices=...)``): training image i is
#: number TRAIN_NUMBERS + i, test image i is TEST_NUMBERS + i, far from the attack targets'
#: 0..N-1, so that no two images of the victim share a per-image key.
TRAIN_NUMBERS = 2**40
TEST_NUMBERS = 2**41


def key_fingerprint(key: Key) -> str:
    """SHA-256 of the key document: identifies a key without revealing it."""
    text = json.dumps(key.to_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def fit(cipher: Cipher, key: Key, images: ImageSet, model_config: ModelConfig,
        train_config: TrainConfig, *, seed: int = 0, device: str | torch.device = "cpu",
        use_cache: bool = True, description: str | None = None) -> Trained:
    """Train a classifier on ``cipher``-encrypted, augmented ``images`` (plain, with labels).

    A small set is read once and held as one tensor; a large one is streamed in batches
    (:meth:`ImageSet.batches`), with the same batches and augmentation either way. The cache
    key holds the cipher and its parameters, a SHA-256 of the key (never the key), both
    configurations, the set's identity (source, positions, labels, size), the seed, the device
    type and the source file of the cipher's class (a plugin's code; the cache adds ppattack's).
    """
    device = torch.device(device)
    identity = {"cipher": cipher.name, "cipher_params": cipher.params, "cipher_code": class_source_digest(type(cipher)),
                "key_sha256": key_fingerprint(key),
                "model": asdict(model_config), "training": asdict(train_config),
                "data": images.identity(), "seed": int(seed), "device": device.type}

    def build() -> dict[str, Any]:
        started = time.perf_counter()
        model = _train(cipher, key, images, model_config, train_config, seed, device,
                       description or f"training the {cipher.name} classifier")
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                "train_seconds": time.perf_counter() - started}

    state, hit = cached("classifier", identity, build, enabled=use_cache)
    model = build_classifier(replace(model_config, pretrained=False))
    model.load_state_dict(state["state_dict"])
    return Trained(model.to(device).eval(), float(state["train_seconds"]), hit)


def _train(cipher: Cipher, key: Key, images: ImageSet, model_config: ModelConfig,
           config: TrainConfig, seed: int, device: torch.device, description: str) -> Classifier:
    if len(images) == 0:
        raise DataError("no training images for the classifier")
    with torch.random.fork_rng(devices=[]):  # seeded initialisation, global RNG left alone
        torch.manual_seed(seed)
        model = build_classifier(model_config)
    model = model.to(device).train()
    net = data_parallel(model, device)  # under torchrun: DDP over the ranks, each a shard of a batch
    generator = torch.Generator().manual_seed(seed)
    batch = min(config.batch_size, len(images))
    per_epoch = len(images) // batch
    steps = config.epochs * per_epoch
    decay, no_decay = [], []
    for name, p in model.named_parameters():  # no weight decay on biases, norms, embeddings
        (no_decay if p.ndim <= 1 or name.endswith(("pos_embed", "cls_token")) else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = (torch.optim.AdamW(groups, lr=config.lr) if config.optimizer == "adamw"
                 else torch.optim.SGD(groups, lr=config.lr, momentum=0.9))
    warmup = max(1, round(WARMUP_FRACTION * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup
        else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, steps - warmup))))
    scaler = grad_scaler(device)
    pad = crop_pad(images.size)  # on the plain images: 4 pixels at 32x32
    # a small set is read once and held on the device; a large one streams (DataLoader workers)
    held = ImageSet.from_tensors(images.tensor(device), images.labels) if images.small() else images
    micro = batch  # images per forward pass; halves on a CUDA out-of-memory error
    with progress(description, steps) as advance:
        for _ in range(config.epochs):
            order = torch.randperm(len(images), generator=generator)[:per_epoch * batch].view(per_epoch, batch)
            for index, (x, y) in zip(order, held.batches(order, device)):
                if config.augment:  # the victim augments plain images (on the device), then encrypts them
                    x = crop_flip(x, pad, generator)
                x, y, index = shard(x, batch), shard(y, batch), shard(index, batch)
                x = cipher.encrypt(x, key, indices=index + TRAIN_NUMBERS)
                optimizer.zero_grad(set_to_none=True)
                loss, micro = _backward(net, x, y.to(device), micro, scaler, config.cpu_bf16)
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
                scaler.step(optimizer)
                scaler.update()
                schedule.step()
                advance()
    if not math.isfinite(loss.item()):
        raise ParameterError(f"classifier training diverged (loss {loss.item()}): lower classifier_lr")
    return model.eval()


def _backward(net: nn.Module, x: torch.Tensor, y: torch.Tensor, micro: int, scaler: torch.amp.GradScaler,
              cpu_bf16: bool) -> tuple[torch.Tensor, int]:
    """Forward and backward one batch in micro-batches of ``micro`` images, accumulating the
    gradient of the whole batch's mean loss (exactly the one-pass gradient up to summation order:
    the networks have no batch statistics). On a CUDA out-of-memory error the batch is redone
    with half the micro-batch (logged); returns ``(loss, micro)`` so later steps keep the size
    that fitted. Under torchrun a rank cannot redo a step alone: the error is raised there."""
    device = x.device
    while True:
        try:
            total = torch.zeros((), device=device)
            starts = range(0, len(x), micro)
            for start in starts:
                last = start + micro >= len(x)
                sync = contextlib.nullcontext() if last or not hasattr(net, "no_sync") else net.no_sync()
                with sync:
                    with autocast(device, cpu_bf16):
                        part = F.cross_entropy(net(x[start:start + micro]), y[start:start + micro])
                    part = part * (len(x[start:start + micro]) / len(x)) if micro < len(x) else part
                    scaler.scale(part).backward()
                total += part.detach().float()
            return total, micro
        except torch.cuda.OutOfMemoryError:
            if micro == 1 or world().active:
                raise ParameterError("the classifier does not fit in GPU memory"
                                     + ("" if world().active else " even one image at a time")
                                     + ": use a smaller classifier, image_size or classifier_batch") from None
            for p in net.parameters():
                p.grad = None
            torch.cuda.empty_cache()
            micro = max(1, micro // 2)
            log.warning("classifier: out of GPU memory; micro-batches of %d images from now on "
                        "(gradients accumulated over the batch of %d)", micro, len(x))


@torch.no_grad()
def evaluate(model: nn.Module, cipher: Cipher, key: Key, images: ImageSet,
             *, batch_size: int = 256, cpu_bf16: bool = False) -> float:
    """Top-1 accuracy of ``model`` on ``images`` (plain, with labels) encrypted with ``key``,
    read in batches of ``batch_size``."""
    device = next(model.parameters()).device
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        x = cipher.encrypt(chunk.tensor(device), key, indices=torch.arange(len(chunk)) + start + TEST_NUMBERS)
        with autocast(device, cpu_bf16):
            predicted = model(x).argmax(dim=1).cpu()
        correct += int((predicted == chunk.labels).sum())
    return correct / max(1, len(images))


def measure_accuracy(settings: Mapping[str, Any], cipher: Cipher, key: Key, train_images: ImageSet,
                     test_images: ImageSet, num_classes: int, *, seed: int = 0, device: str | torch.device = "cpu",
                     use_cache: bool = True) -> dict[str, Any]:
    """The result.json ``accuracy`` block: a plain model on plain test images and the protected
    model (trained on ``cipher``-encrypted images) on encrypted test images."""
    plain_shape = train_images.shape
    probe = cipher.encrypt(train_images[:1].tensor(), key)
    if probe.dtype != torch.uint8:
        return {"plain_model_on_plain": None, "protected_model_on_encrypted": None,
                "reason": f"the classifiers take 8-bit images; cipher {cipher.name} produces "
                          f"{str(probe.dtype).removeprefix('torch.')} ciphertexts"}
    model_config, train_config = configs_from_settings(settings, cipher, plain_shape, num_classes)
    plain_cipher = create_cipher("plain")
    # the reference: the same network and training on plain images (plain learning rate)
    plain_model = replace(model_config, input_shape=plain_shape)
    plain_train = replace(train_config, lr=configs_from_settings(settings, plain_cipher, plain_shape,
                                                                 num_classes)[1].lr)
    plain_key = plain_cipher.generate_key(plain_shape, seed=0)
    runs = {"plain": (plain_cipher, plain_key, plain_model, plain_train),
            "protected": (cipher, key, model_config, train_config)}
    accuracy, seconds, hits = {}, {}, {}
    for role, (c, k, m, t) in runs.items():
        trained = fit(c, k, train_images, m, t, seed=seed, device=device,
                      use_cache=use_cache, description=f"training the {role} classifier ({c.name})")
        accuracy[role] = evaluate(trained.model, c, k, test_images, cpu_bf16=t.cpu_bf16)
        seconds[role], hits[role] = trained.train_seconds, trained.cached
        log.info("%s classifier: accuracy %.4f on %d test images", role, accuracy[role], len(test_images))
    return {"plain_model_on_plain": accuracy["plain"], "protected_model_on_encrypted": accuracy["protected"],
            "reason": None, "test_images": len(test_images), "train_images": len(train_images),
            "classifier": {**asdict(model_config), "training": asdict(train_config),
                           "plain_lr": plain_train.lr},
            "train_seconds": seconds, "cache_hit": hits}
