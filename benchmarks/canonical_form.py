"""Time a cipher's closed canonical form against the search over every candidate, in one process.

    python benchmarks/canonical_form.py [--batch 64] [--size 32] [--repeat 20]

For every registered cipher whose ``unit_transforms`` declares ``canonical_form``: seconds per
batch of random uint8 images for ``UnitTransforms.search_canonical`` (the definition: every
candidate of every unit compared) and for ``UnitTransforms.canonical`` (the closed form), their
ratio, and whether the two agree exactly on the timed batch. itn reads this form for every
training batch under fresh keys.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import ppattack  # noqa: E402


def seconds_per_call(function, images: torch.Tensor, repeat: int) -> float:
    """Mean wall seconds of ``function(images)`` over ``repeat`` calls, after one warm-up call."""
    function(images)
    began = time.perf_counter()
    for _ in range(repeat):
        function(images)
    return (time.perf_counter() - began) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    shape = (3, args.size, args.size)
    images = torch.randint(0, 256, (args.batch, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    print(f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"batch {args.batch} x {shape}")
    print("| cipher | search s | closed form s | ratio | exact |\n|---|---:|---:|---:|---|")
    for name in ppattack.list_ciphers():
        transforms = ppattack.create_cipher(name).unit_transforms(shape)
        if transforms is None or transforms.canonical_form is None:
            continue
        search = seconds_per_call(transforms.search_canonical, images, args.repeat)
        closed = seconds_per_call(transforms.canonical, images, args.repeat)
        exact = torch.equal(transforms.search_canonical(images), transforms.canonical(images))
        print(f"| {name} | {search:.4f} | {closed:.5f} | {search / closed:.0f} | {exact} |")


if __name__ == "__main__":
    main()
