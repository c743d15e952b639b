"""The training ceremony of TrainedAttack (gan, sia-gan, itn): the budget's step count, one
optimiser step over several networks, and inference in chunks that does not depend on the
chunk size. (That gan, sia-gan and itn train exactly as before is checked by the seeded
before/after runs of issue 18 and by their determinism tests in test_attacks.py.)"""
from __future__ import annotations

import torch
from torch import nn

import ppattack
from ppattack.learning import trained_attack
from ppattack.learning.trained_attack import TrainedAttack
from ppattack.learning.training import grad_scaler


def test_training_steps_are_the_steps_or_the_epochs_over_the_data():
    assert ppattack.create_attack("itn", steps=7, device="cpu").training_steps(1000) == 7
    by_epochs = ppattack.create_attack("itn", budget="paper", device="cpu")  # 50 epochs, batch 128
    assert by_epochs.training_steps(1000) == 391  # ceil(50 * 1000 / 128)
    assert by_epochs.training_steps(1000, batch_size=100) == 500


def test_one_optimizer_step_updates_every_network_once_as_a_plain_step_does():
    def nets_and_optimizers():
        torch.manual_seed(0)
        nets = [nn.Linear(3, 2), nn.Linear(2, 1)]
        return nets, [torch.optim.SGD(n.parameters(), lr=0.1, momentum=0.9) for n in nets]

    x = torch.randn(4, 3)
    expected, optimizers = nets_and_optimizers()
    for _ in range(2):
        loss = expected[1](expected[0](x)).square().mean()
        for opt in optimizers:
            opt.zero_grad()
        loss.backward()
        for opt in optimizers:
            opt.step()
    nets, optimizers = nets_and_optimizers()
    scaler = grad_scaler(torch.device("cpu"))
    for _ in range(2):
        loss = nets[1](nets[0](x)).square().mean()
        TrainedAttack.optimizer_step(loss, scaler, *zip(optimizers, nets))
    for mine, theirs in zip(nets, expected):
        for p, q in zip(mine.parameters(), theirs.parameters()):
            assert torch.equal(p, q)


def test_inference_in_chunks_covers_every_image_in_order(monkeypatch):
    attack = ppattack.create_attack("itn", device="cpu")
    images = torch.randint(0, 256, (7, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    net = nn.Conv2d(3, 3, 1)
    whole = [(rows, out) for rows, out in attack.forward_in_chunks(net, images, 1)]
    monkeypatch.setattr(trained_attack, "inference_chunk", lambda *args, **kwargs: 3)
    chunks = list(attack.forward_in_chunks(net, images, 1))
    assert [(r.start, r.stop) for r, _ in chunks] == [(0, 3), (3, 6), (6, 9)]
    assert len(whole) == 1 and not whole[0][1].requires_grad
    # equal up to float32 rounding: a conv may round the last bit differently for another batch
    # size (1 ulp, about 1e-7, in 7 % of random inputs); a chunk left out or out of order is off by ~1
    torch.testing.assert_close(torch.cat([out for _, out in chunks]), whole[0][1])
