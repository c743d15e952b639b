"""The first thing to run on a GPU: every CUDA path against the CPU, with throughput and memory.

    python benchmarks/gpu_check.py                 # on cuda: the real check, markdown on stdout
    python benchmarks/gpu_check.py --dry-run       # on the CPU at a smoke budget (CI runs this)

1. every registered cipher: encryption and decryption on the device bit-identical to the
   CPU's, and images per second for a batch (32x32/4 and, unless --dry-run,
   224x224/16);
2. the model-side transform (`ppattack.model_transform.encrypt_model`) of a small ViT on the device: its
   logits on encrypted images against the plain model's on plain images;
3. one smoke-budget run of every trained attack (itn, gan, sia-gan, ...) on the device, under
   AMP on CUDA, with the peak memory it took;
4. the classifier's training on the device from the disk cache: the images streamed through
   the DataLoader (pinned memory), one step of the `paper` preset's ViT-B/16 at 224x224 with
   its batch of 512 (micro-batches if it does not fit; a tiny ViT at 32x32 with --dry-run), the
   time and peak memory;
5. with 2 or more GPUs (and not --dry-run): a `torchrun --nproc_per_node=2` smoke run.

Exit status 1 when a check fails (a device result that differs from the CPU's), 0 otherwise;
a check that cannot run is reported as skipped with the reason.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["PPATTACK_CACHE"] = tempfile.mkdtemp(prefix="ppattack-gpu-check-")  # train, never reuse

import torch  # noqa: E402

import ppattack  # noqa: E402
from ppattack.data import Roles  # noqa: E402
from ppattack.harness import threat_view  # noqa: E402
from ppattack.registry import ATTACKS, CIPHERS  # noqa: E402

rows: list[tuple[str, str, str, str]] = []  # (check, subject, outcome, figures)


def report(check: str, subject: str, ok: bool | None, figures: str = "") -> bool:
    outcome = "ok" if ok else ("skipped" if ok is None else "FAILED")
    rows.append((check, subject, outcome, figures))
    print(f"{check:10s} {subject:28s} {outcome:8s} {figures}", file=sys.stderr, flush=True)
    return ok is not False


def images(count: int, side: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, side, side), generator=generator, dtype=torch.uint8)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_ciphers(device: torch.device, settings: list[tuple[int, int]], batch: int) -> bool:
    ok = True
    for name in CIPHERS.names():
        for side, block in settings:
            shape = (3, side, side)
            try:
                try:
                    cipher = ppattack.create_cipher(name, block_size=block)
                except ppattack.ParameterError:  # a cipher without blocks
                    cipher = ppattack.create_cipher(name)
                cipher.check_shape(shape)
                key = cipher.generate_key(shape, seed=0)
            except (ppattack.PPAttackError, TypeError) as error:
                report("cipher", f"{name} {side}/{block}", None, f"not at this size: {error}")
                continue
            plain = images(batch, side, seed=1)
            expected = cipher.encrypt(plain, key)
            on_device = plain.to(device)
            cipher.encrypt(on_device, key)  # warm-up (compiles the key's plan for the device)
            synchronize(device)
            start = time.perf_counter()
            encrypted = cipher.encrypt(on_device, key)
            synchronize(device)
            seconds = time.perf_counter() - start
            same = encrypted.device.type == device.type and torch.equal(encrypted.cpu(), expected)
            back = torch.equal(cipher.decrypt(encrypted, key).cpu(), cipher.decrypt(expected, key))
            ok &= report("cipher", f"{name} {side}/{block}", same and back,
                         f"{batch / max(seconds, 1e-9):,.0f} images/s")
    return ok


def check_model_transform(device: torch.device) -> bool:
    from timm.models.vision_transformer import VisionTransformer

    from ppattack.model_transform import encrypt_model

    torch.manual_seed(0)
    vit = VisionTransformer(img_size=32, patch_size=4, embed_dim=48, depth=2, num_heads=2,
                            num_classes=10).to(device).eval()
    key = ppattack.create_cipher("proposed", block_size=4).generate_key((3, 32, 32), seed=0)
    cipher = ppattack.create_cipher("proposed", block_size=4)
    plain = images(16, 32, seed=2)

    def normalised(x: torch.Tensor) -> torch.Tensor:
        return (x.to(device).float() / 255 - 0.5) / 0.5

    transformed = encrypt_model(vit, key, mean=(0.5,) * 3, std=(0.5,) * 3)
    with torch.no_grad():
        expected = vit(normalised(plain))
        got = transformed(normalised(cipher.encrypt(plain, key)))
    error = float((got - expected).abs().max())
    devices = {p.device.type for p in transformed.parameters()}
    return report("model", "encrypt_model (proposed)", error < 1e-3 and devices == {device.type},
                  f"max logit difference {error:.2e}")


def check_trained_attacks(device: torch.device) -> bool:
    ok = True
    shape = (3, 32, 32)
    cipher = ppattack.create_cipher("proposed", block_size=4)
    key = cipher.generate_key(shape, seed=8)
    plain, public = images(4, 32, seed=1), images(16, 32, seed=2)
    labels = torch.zeros(len(public), dtype=torch.long)
    roles = Roles.from_tensors(public[:8], labels[:8], plain, labels[:4], public[8:], labels[8:])
    ciphertexts = cipher.encrypt(plain, key)
    for name in ATTACKS.names():
        attack_cls = ATTACKS.get(name)
        if "smoke" not in attack_cls.budgets:
            continue  # no network to train: nothing device-specific beyond the ciphers
        threat = attack_cls.threat_models[0]
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        try:
            attack = ppattack.create_attack(name, budget="smoke", threat=threat, device=str(device))
            result = attack(threat_view(threat, cipher, key, ciphertexts, roles))
        except ppattack.PPAttackError as error:
            report("attack", f"{name} ({threat})", None, str(error))
            continue
        synchronize(device)
        seconds = time.perf_counter() - start
        memory = (f", peak {torch.cuda.max_memory_allocated(device) / 2**20:,.0f} MiB"
                  if device.type == "cuda" else "")
        good = result.images.dtype == torch.uint8 and tuple(result.images.shape) == (len(plain), *shape)
        ok &= report("attack", f"{name} ({threat})", good, f"{seconds:.1f} s{memory}")
    return ok


def check_classifier(device: torch.device, dry_run: bool) -> bool:
    from dataclasses import replace

    from ppattack.images import image_set
    from ppattack.learning.classifier import configs_from_settings, fit
    from ppattack.data import load_dataset
    from ppattack.presets import get_preset

    side = 32 if dry_run else 224
    settings = {**get_preset("quick" if dry_run else "paper"), "classifier_pretrained": False}
    train = load_dataset("samples", side).train  # 432 crops, decoded into the cache
    cipher = ppattack.create_cipher("proposed", block_size=4 if dry_run else 16)
    key = cipher.generate_key((3, side, side), seed=0)
    model_config, train_config = configs_from_settings(settings, cipher, (3, side, side), 9)
    train_config = replace(train_config, epochs=1, batch_size=min(train_config.batch_size, len(train)))
    image_set.SMALL_BYTES = 0  # stream the set from the disk cache, as a large dataset would
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    try:
        trained = fit(cipher, key, train, model_config, train_config, device=device, use_cache=False)
    except ppattack.PPAttackError as error:
        return report("classifier", f"ViT {model_config.width}x{model_config.depth} {side}x{side}", False, str(error))
    synchronize(device)
    seconds = time.perf_counter() - start
    memory = (f", peak {torch.cuda.max_memory_allocated(device) / 2**30:,.1f} GiB" if device.type == "cuda" else "")
    good = all(torch.isfinite(p).all() for p in trained.model.parameters())
    return report("classifier", f"ViT {model_config.width}x{model_config.depth} {side}x{side}, batch "
                  f"{train_config.batch_size}, streamed", good, f"{seconds:.1f} s for one epoch{memory}")


def check_torchrun() -> bool:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "ppattack", "run",
               "--cipher", "proposed", "--attack", "itn", "--param", "steps=20", "--limit", "8",
               "--no-accuracy", "--device", "cuda", "--out", "gpu-check-torchrun"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    tail = (done.stderr.strip().splitlines() or [""])[-1]
    return report("torchrun", "2 GPUs, itn smoke run", done.returncode == 0,
                  f"{time.perf_counter() - start:.0f} s" + ("" if done.returncode == 0 else f": {tail}"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry-run", action="store_true",
                        help="run every check on the CPU at a smoke budget (32x32 only)")
    args = parser.parse_args()
    device = torch.device("cpu" if args.dry_run else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device here: run with --dry-run to exercise the checks on the CPU", file=sys.stderr)
        return 2
    settings = [(32, 4)] if args.dry_run else [(32, 4), (224, 16)]
    ok = check_ciphers(device, settings, batch=8 if args.dry_run else 256)
    ok &= check_model_transform(device)
    ok &= check_trained_attacks(device)
    ok &= check_classifier(device, args.dry_run)
    if not args.dry_run and device.type == "cuda" and torch.cuda.device_count() >= 2:
        ok &= check_torchrun()
    else:
        report("torchrun", "2 GPUs", None, "needs 2 GPUs (not --dry-run)")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    print(f"gpu_check on {name}, torch {torch.__version__}{' (dry run)' if args.dry_run else ''}\n")
    print("| check | subject | outcome | figures |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
