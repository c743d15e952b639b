"""Cipher throughput: images per second of every registered cipher, against a plain copy.

    python benchmarks/cipher_throughput.py [--device cpu|cuda] [--quick] [--ciphers a,b,...]
                                           [--threads N] [--clock wall|cpu] [--repeats R]

For each cipher at 32x32 with block 4 and at 224x224 with block 16, times ``encrypt`` and
``decrypt`` of one batch (key compiled beforehand, as in use) and ``x.clone()`` of the same
batch, interleaved in the same run; reports medians, images/s and the ratio of copy time to
cipher time (1.0 = as fast as copying the batch). Prints a markdown table.

Then, in the same run, ``proposed`` against the straightforward implementation of the public
reference code (NumPy, a Python loop over images, blocks and sub-blocks), checked to give the
same ciphertexts.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import ppattack  # noqa: E402
from ppattack.params import accepted_parameters  # noqa: E402
from ppattack.registry import CIPHERS  # noqa: E402

SETTINGS = ((32, 4, 256), (224, 16, 32))  # image side, block size, batch


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _timed(fn, device: torch.device, clock) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = clock()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return clock() - start


def measure(name: str, side: int, block: int, batch: int, repeats: int, device: torch.device,
            clock=time.perf_counter) -> dict:
    params = {"block_size": block} if "block_size" in accepted_parameters(CIPHERS.get(name)) else {}
    cipher = ppattack.create_cipher(name, **params)
    shape = (3, side, side)
    key = cipher.generate_key(shape, seed=0)
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, generator=generator).to(device)
    y = cipher.encrypt(x, key)  # compiles the key (once per key and device)
    assert torch.equal(cipher.decrypt(y, key).to(torch.int16), x.to(torch.int16)) or cipher.max_round_trip_error
    copy, enc, dec = [], [], []
    for _ in range(repeats):
        copy.append(_timed(lambda: x.clone(), device, clock))
        enc.append(_timed(lambda: cipher.encrypt(x, key), device, clock))
        dec.append(_timed(lambda: cipher.decrypt(y, key), device, clock))
    t_copy, t_enc, t_dec = (statistics.median(v) for v in (copy, enc, dec))
    return {"cipher": name, "setting": f"{side}x{side}/{block}" if params else f"{side}x{side}",
            "batch": batch, "enc_ips": batch / t_enc, "dec_ips": batch / t_dec,
            "enc_ratio": t_copy / t_enc, "dec_ratio": t_copy / t_dec, "copy_ips": batch / t_copy}


def proposed_with_loops(x: np.ndarray, block_perm: np.ndarray, pixel_perm: np.ndarray, m: int) -> np.ndarray:
    """``proposed`` the straightforward way: per image and block, move the block to its place
    (output block i = input block ``block_perm[i]``), then shuffle each sub-block's pixels
    (output position k = input position ``pixel_perm[k]``). ``x``: uint8 (N, C, H, W)."""
    n, c, h, w = x.shape
    half, per_row = m // 2, w // m
    out = np.empty_like(x)
    for image in range(n):
        for i, j in enumerate(block_perm):
            block = x[image, :, (j // per_row) * m:(j // per_row + 1) * m, (j % per_row) * m:(j % per_row + 1) * m].copy()
            for top in range(0, m, half):
                for left in range(0, m, half):
                    sub = block[:, top:top + half, left:left + half].reshape(c, half * half)
                    block[:, top:top + half, left:left + half] = sub[:, pixel_perm].reshape(c, half, half)
            out[image, :, (i // per_row) * m:(i // per_row + 1) * m, (i % per_row) * m:(i % per_row + 1) * m] = block
    return out


def measure_against_loops(side: int, block: int, batch: int, repeats: int, device: torch.device, clock) -> dict:
    """Batched gather (on ``device``) vs the loop implementation (NumPy, CPU) of ``proposed``."""
    cipher = ppattack.create_cipher("proposed", block_size=block)
    key = cipher.generate_key((3, side, side), seed=0)
    x = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    block_perm, pixel_perm = (np.asarray(key.material[k]) for k in ("block_perm", "pixel_perm"))
    x_np, x_dev = x.numpy(), x.to(device)
    reference = proposed_with_loops(x_np, block_perm, pixel_perm, block)
    assert np.array_equal(reference, cipher.encrypt(x_dev, key).cpu().numpy()), "the loop reference disagrees"
    gather, loops = [], []
    for _ in range(repeats):
        gather.append(_timed(lambda: cipher.encrypt(x_dev, key), device, clock))
        loops.append(_timed(lambda: proposed_with_loops(x_np, block_perm, pixel_perm, block), torch.device("cpu"), clock))
    t_gather, t_loops = statistics.median(gather), statistics.median(loops)
    return {"setting": f"{side}x{side}/{block}", "batch": batch, "gather_ips": batch / t_gather,
            "loops_ips": batch / t_loops, "speedup": t_loops / t_gather}


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads"
    return f"{where}; torch {torch.__version__}; Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller batches")
    parser.add_argument("--ciphers", default="*", help="comma-separated names or wildcards (default: all)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall: elapsed time; cpu: CPU time of this process (steadier on a shared "
                             "machine; with one thread it excludes time other processes took)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = sorted({n for pattern in args.ciphers.split(",") for n in ppattack.list_ciphers(pattern)})
    repeats = args.repeats or (5 if args.quick else 15)
    rows = []
    for side, block, batch in SETTINGS:
        batch = max(1, batch // 4) if args.quick else batch
        for name in names:
            try:
                rows.append(measure(name, side, block, batch, repeats, device, CLOCKS[args.clock]))
            except ppattack.PPAttackError as e:  # e.g. block-ffx without its optional package
                print(f"skipped {name} at {side}x{side}: {e}")
    print(f"\nMachine: {machine(device)}. Median of {repeats} repeats, {args.clock} clock; ratio = copy time / "
          "cipher time (x.clone() of the same batch, same run).\n")
    print("| cipher | setting | batch | encrypt img/s | ratio to copy | decrypt img/s | ratio to copy |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['cipher']} | {r['setting']} | {r['batch']} | {r['enc_ips']:,.0f} | {r['enc_ratio']:.3f} "
              f"| {r['dec_ips']:,.0f} | {r['dec_ratio']:.3f} |")
    for side, block, batch in SETTINGS:
        copies = [r["copy_ips"] for r in rows if r["setting"].startswith(f"{side}x")]
        if copies:
            print(f"\nx.clone() at {side}x{side}: median {statistics.median(copies):,.0f} images/s")
    if "proposed" in names:
        print("\n| proposed | batch | batched gather img/s | per-block loops img/s | speed-up |")
        print("|---|---:|---:|---:|---:|")
        for side, block, batch in SETTINGS:
            batch = max(1, batch // 4) if args.quick else batch
            r = measure_against_loops(side, block, batch, repeats, device, CLOCKS[args.clock])
            print(f"| {r['setting']} | {r['batch']} | {r['gather_ips']:,.0f} | {r['loops_ips']:,.0f} | {r['speedup']:,.0f}x |")


if __name__ == "__main__":
    main()
