"""The generator's weight average: hand-worked values, what is averaged and what is taken."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ppattack.learning.weight_average import WeightAverage


def test_the_average_follows_the_weights_at_the_decay():
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    average = WeightAverage(net, decay=0.75)
    for value, expected in ((1.0, 0.25), (1.0, 0.4375), (-1.0, 0.078125)):
        with torch.no_grad():
            net.weight.fill_(value)
        average.update(net)
        assert average.state_dict(net)["weight"].item() == expected  # 0.75 * before + 0.25 * now
    assert net.weight.item() == -1.0  # the network itself is left alone


def test_batchnorm_statistics_are_averaged_and_spectral_vectors_taken_as_they_are():
    net = nn.Sequential(spectral_norm(nn.Conv2d(2, 2, 1)), nn.BatchNorm2d(2))
    average = WeightAverage(net, decay=0.5)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():  # a new weight, so that the power iteration's vectors move
        net[0].parametrizations.weight.original.copy_(torch.tensor([[1.0, 2.0], [-3.0, 0.5]]).view(2, 2, 1, 1))
    net.train()
    net(torch.randn(4, 2, 3, 3) * 5 + 3)  # moves the running statistics and the power iteration
    average.update(net)
    now, averaged = net.state_dict(), average.state_dict(net)
    for name in ("1.running_mean", "1.running_var"):
        assert not torch.equal(now[name], start[name])
        assert torch.allclose(averaged[name], (now[name] + start[name]) / 2)
    for name in ("0.parametrizations.weight.0._u", "0.parametrizations.weight.0._v", "1.num_batches_tracked"):
        assert not torch.equal(now[name], start[name])
        assert torch.equal(averaged[name], now[name])


@pytest.mark.parametrize("decay", [-0.1, 1.0, float("nan")])
def test_a_decay_outside_0_1_is_refused(decay):
    with pytest.raises(ValueError, match="decay must be in"):
        WeightAverage(nn.Linear(1, 1), decay)
