"""Data-parallel training: two CPU processes with gloo against one process.

The primitives are exact (a sharded batch with averaged gradients is the whole batch's
gradient); a whole `ppattack run` under torchrun agrees with the single-process run within
SSIM 0.05 (BatchNorm statistics are per rank on CPUs, and float sums run in another order).
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp
from torch import nn

from ppattack.runtime import distributed

BATCH = 8


def toy_problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small conv net without BatchNorm and one global batch (the same on every rank)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    x = torch.randn(BATCH, 3, 8, 8)
    y = torch.arange(BATCH) % 3
    return model, x, y


def whole_batch_gradients() -> list[torch.Tensor]:
    model, x, y = toy_problem()
    nn.functional.cross_entropy(model(x), y).backward()
    return [p.grad.clone() for p in model.parameters()]


def worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    distributed.init_from_env()
    world = distributed.world()
    model, x, y = toy_problem()
    # DDP path (itn, classifier)
    net = distributed.data_parallel(model, torch.device("cpu"))
    nn.functional.cross_entropy(net(distributed.shard(x, BATCH)), distributed.shard(y, BATCH)).backward()
    ddp = [p.grad.clone() for p in model.parameters()]
    # explicit averaging path (the GANs)
    model, x, y = toy_problem()
    distributed.broadcast_parameters(model)
    nn.functional.cross_entropy(model(distributed.shard(x)), distributed.shard(y)).backward()
    distributed.average_gradients(model)
    averaged = [p.grad.clone() for p in model.parameters()]
    gathered = distributed.gather(world.rank)
    if world.is_main:
        torch.save({"ddp": ddp, "averaged": averaged, "ranks": gathered, "size": world.size}, out)
    distributed.shutdown()
    # Leave without the interpreter's teardown: gloo's threads in a spawned child sometimes abort
    # there after the group is destroyed ("terminate called without an active exception"),
    # which is not what this test checks (the torchrun tests below exit normally).
    os._exit(0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sharded_batches_with_averaged_gradients_are_the_whole_batch(tmp_path):
    out = tmp_path / "grads.pt"
    mp.spawn(worker, args=(free_port(), str(out)), nprocs=2, join=True)
    result = torch.load(out, weights_only=True)
    assert result["size"] == 2 and result["ranks"] == [0, 1]
    for name in ("ddp", "averaged"):
        for got, want in zip(result[name], whole_batch_gradients()):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_without_torchrun_everything_is_one_process():
    world = distributed.world()
    assert (world.rank, world.size, world.is_main, world.active) == (0, 1, True, False)
    batch = torch.arange(5)
    assert distributed.shard(batch) is batch
    model = nn.Linear(2, 2)
    assert distributed.data_parallel(model, torch.device("cpu")) is model
    assert distributed.gather("x") == ["x"] and distributed.broadcast(3) == 3


RUN = ["run", "--cipher", "plain", "--attack", "itn", "--param", "steps=80", "--param", "eval_every=40",
       "--no-accuracy"]


def ppattack(tmp_path: Path, name: str, launcher: list[str]) -> dict:
    env = {**os.environ, "PPATTACK_CACHE": str(tmp_path / f"cache-{name}"), "HF_HUB_OFFLINE": "1"}
    if len(launcher) > 3:
        env["OMP_NUM_THREADS"] = "1"  # two processes on a small CPU
    proc = subprocess.run([*launcher, *RUN, "--out", str(tmp_path / name)], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / name / "result.json").read_text())


def test_torchrun_with_two_gloo_processes_agrees_with_one_process(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "ppattack"]
    two = ppattack(tmp_path, "two", torchrun)
    one = ppattack(tmp_path, "one", [sys.executable, "-m", "ppattack"])
    assert two["environment"]["processes"] == 2 and two["attack"]["facts"]["processes"] == 2
    assert one["environment"]["processes"] == 1
    assert abs(two["metrics"]["ssim"]["mean"] - one["metrics"]["ssim"]["mean"]) < 0.05
    assert two["metrics"]["ssim"]["mean"] > 0.7  # it learned, on both
    # rank 0 alone wrote: one result folder, one cache entry per trained network
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("one", "two"))) == ["one", "two"]
    entries = list((tmp_path / "cache-two" / "models").rglob("*.pt"))
    assert len(entries) == 1, entries


def bench(tmp_path: Path, name: str, launcher: list[str]) -> tuple[dict, str]:
    env = {**os.environ, "PPATTACK_CACHE": str(tmp_path / f"cache-{name}"), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*launcher, "-v", "bench", "--ciphers", "plain,proposed", "--attacks", "fr",
                           "--no-accuracy", "--out", str(tmp_path / name)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((tmp_path / name / "bench.json").read_text()), proc.stdout, proc.stderr


def test_torchrun_bench_spreads_the_cells_over_the_processes(tmp_path):
    spread, stdout, log = bench(tmp_path, "two", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                  "--nproc_per_node=2", "-m", "ppattack"])
    alone, _, _ = bench(tmp_path, "one", [sys.executable, "-m", "ppattack"])
    assert [(c["cipher"], c["process"], c["error"]) for c in spread["cells"]] == [("plain", 0, None),
                                                                               ("proposed", 1, None)]
    assert [c["process"] for c in alone["cells"]] == [0, 0]
    # fr is deterministic: the spread bench scores exactly what one process scores
    for a, b in zip(spread["cells"], alone["cells"]):
        assert a["result"]["metrics"]["ssim"]["values"] == b["result"]["metrics"]["ssim"]["values"]
    for cell in ("plain/fr", "proposed/fr"):  # rank 0 wrote both cells' folders
        assert (tmp_path / "two" / cell / "result.json").is_file()
    assert stdout.count("results in") == 1  # one leaderboard, printed by rank 0
    # the data was decoded once, by rank 0, before the cells spread: a line per split it read
    assert sorted(re.findall(r"decoding \d+ (train|test) samples images", log)) == ["test", "train"], log


def test_cpu_tensors_use_gloo_even_on_a_gpu_machine():
    """`--device cpu` under torchrun on a GPU machine: the group holds gloo for CPU tensors next
    to NCCL for CUDA ones (NCCL alone cannot reduce CPU tensors); without CUDA, gloo only."""
    from ppattack.runtime.distributed import backend

    per_device = dict(part.split(":") for part in backend(cuda=True).split(","))
    assert per_device == {"cpu": "gloo", "cuda": "nccl"}
    assert backend(cuda=False) == "gloo"
