"""Positive control of the unpaired GAN attacks: do ``gan`` and ``sia-gan`` restore ``plain``?

    python benchmarks/gan_control.py [--cifar folder:../shared/data/cifar10-jpeg]
        [--attacks gan,sia-gan] [--steps 1000] [--threads 1] [--write-results]

On the identity cipher a working attack returns its input. ``gan`` and ``sia-gan`` are
unpaired: the generator sees the victim ciphertexts, the discriminator separately sees the
attacker's public plain images, and nothing in their losses ties an output to its input. This
benchmark separates the two explanations of a failed control:

- ``scratch``: the attack as specified (quick widths, the step count given);
- ``identity``: the same adversarial training started from a generator first fitted as an
  autoencoder to the public images (MSE, Adam 1e-3, ``--autoencoder-steps``), so it starts at
  (nearly) the answer.
  If adversarial training kept that start, more budget would fix ``scratch``; if it walks away
  from it, the unpaired objective itself does not single out the identity at that data scale.

Data: ``samples`` with the quick preset's roles (64 targets, 216 public crops of 9 photographs,
216 encrypted training crops) and, with ``--cifar``, the first 10,000 CIFAR-10 training images
(5,000 public, 5,000 the provider's) and 100 test targets. As in the attacks, the generator
trains on every ciphertext the cloud holds: the targets and the encrypted training images.
gan uses its block-wise generator with B = 4 (plain has no block size of its own).
``--write-results`` replaces this benchmark's section of benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from ppattack.attacks.gan import GAN  # noqa: E402
from ppattack.attacks.sia_gan import SIAGAN  # noqa: E402
from ppattack.data import assign_roles, load_dataset  # noqa: E402
from ppattack.harness import threat_view  # noqa: E402
from ppattack.metrics import ssim  # noqa: E402
from ppattack.registry import CIPHERS  # noqa: E402
from ppattack.threat import ThreatView  # noqa: E402
from ppattack.learning.training import batch_indices, to_signed, to_uint8  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Positive control of the unpaired GANs"


def identity_start(base: type[GAN], autoencoder_steps: int) -> type[GAN]:
    """``base`` whose adversarial training starts from a generator fitted to the identity
    (``autoencoder_steps`` of MSE on the public images)."""

    class IdentityStart(base):
        name = f"{base.name}-identity-start"  # its own cache entries

        def initial_generator(self, view: ThreatView) -> nn.Module:
            generator = self.build_generator(view).to(self.device)
            optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3)
            rng = torch.Generator().manual_seed(self.seed)
            batches = batch_indices(len(view.public_images), self.batch_size, rng)
            generator.train()
            for _ in range(autoencoder_steps):
                x = to_signed(view.public_images[next(batches)].to(self.device))
                loss = F.mse_loss(generator(x), x)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            generator.eval()
            with torch.no_grad():
                start = to_uint8(generator(to_signed(view.ciphertexts.to(self.device)))).cpu()
            self.start_ssim = float(ssim(start, view.ciphertexts.cpu()).mean())
            generator.train()
            return generator

    return IdentityStart


def case(dataset: str, attack_name: str, start: str, steps: int, autoencoder_steps: int,
         seed: int = 0) -> dict:
    """Train one attack on ``plain`` and score its reconstructions (SSIM wang)."""
    big = dataset != "samples"
    data = load_dataset(dataset, 32, max_train=10_000 if big else 2000, max_test=100 if big else 500)
    roles = assign_roles(data, 100 if big else 64)
    cipher = CIPHERS.create("plain")
    key = cipher.generate_key((3, 32, 32), seed=seed)
    view = threat_view("coa+public", cipher, key, cipher.encrypt(roles.targets.tensor(), key), roles,
                       dataset=dataset, training_ciphertexts=True)
    base = {"gan": GAN, "sia-gan": SIAGAN}[attack_name]
    cls = identity_start(base, autoencoder_steps) if start == "identity" else base
    attack = cls(budget="quick", seed=seed, device="cpu", steps=steps,
                 **({"block_size": 4} if attack_name == "gan" else {}))
    began = time.perf_counter()
    restored = attack(view).images
    return {"dataset": "samples" if not big else "CIFAR-10 subset", "attack": attack_name,
            "start": start, "steps": steps,
            "ciphertexts": len(roles.targets) + len(view.training_ciphertexts),
            "public": len(roles.public), "start_ssim": getattr(attack, "start_ssim", None),
            "ssim": float(ssim(restored, roles.targets.tensor()).mean()),
            "seconds": time.perf_counter() - began}


def table(rows: list[dict]) -> str:
    lines = ["| data | attack | start | steps | ciphertexts / public | SSIM at start | SSIM after | s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        start = "-" if r["start_ssim"] is None else f"{r['start_ssim']:.3f}"
        lines.append(f"| {r['dataset']} | {r['attack']} | {r['start']} | {r['steps']} | "
                     f"{r['ciphertexts']} / {r['public']} | {start} | {r['ssim']:.3f} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def write_results(text: str) -> None:
    path = ROOT / "benchmarks" / "RESULTS.md"
    body = path.read_text()
    if SECTION in body:
        head, _, rest = body.partition(SECTION)
        tail = rest[rest.find("\n## "):] if "\n## " in rest else "\n"
        body = head + text + tail
    else:
        body = body.rstrip("\n") + "\n\n" + text
    path.write_text(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cifar", default=None, help="CIFAR-10 dataset spec (e.g. folder:PATH)")
    parser.add_argument("--attacks", default="gan,sia-gan")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--autoencoder-steps", type=int, default=500)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    datasets = ["samples"] + ([args.cifar] if args.cifar else [])
    for dataset in datasets:
        for attack_name in args.attacks.split(","):
            for start in ("scratch", "identity"):
                rows.append(case(dataset, attack_name, start, args.steps, args.autoencoder_steps))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    text = (f"{SECTION}\n\nMeasured by `python benchmarks/gan_control.py"
            f"{' --cifar ' + args.cifar if args.cifar else ''} --steps {args.steps} "
            f"--autoencoder-steps {args.autoencoder_steps}` on "
            f"{platform.machine()} ({os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads): each attack trained on `plain` at the quick "
            f"preset's widths; SSIM (wang) of its reconstructions of the targets.\n\n{table(rows)}\n")
    print(text)
    if args.write_results:
        write_results(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
