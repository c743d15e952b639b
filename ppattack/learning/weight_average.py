"""An exponential moving average of a network's weights (Polyak averaging, as BigGAN and
StyleGAN keep for their generators).

Adversarial training leaves the generator's weights circling the point it approaches; their
average over the last few hundred steps sits closer to it. Averaged: every parameter and
every BatchNorm running statistic. Taken from the network as it is: the rest of its state (a
spectral norm's power-iteration vectors, step counters).
"""
from __future__ import annotations

import torch
from torch import nn


class WeightAverage:
    """``average <- decay * average + (1 - decay) * weights`` after every :meth:`update`.

    ``decay`` in [0, 1): 0.99 averages over about the last 100 updates. The average starts
    as the network's weights when it is made.

    >>> net = nn.Linear(1, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = net.weight.fill_(0.0)
    >>> average = WeightAverage(net, decay=0.5)
    >>> with torch.no_grad():
    ...     _ = net.weight.fill_(1.0)
    >>> average.update(net)
    >>> average.state_dict(net)["weight"].item()
    0.5
    """

    def __init__(self, net: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"weight average decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.names = averaged_entries(net)
        state = net.state_dict()
        self.average = {name: state[name].clone().float() for name in self.names}

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        state = net.state_dict()
        for name in self.names:
            self.average[name].lerp_(state[name].float(), 1.0 - self.decay)

    def state_dict(self, net: nn.Module) -> dict[str, torch.Tensor]:
        """``net``'s state dict with the averaged entries replaced by their averages (copies)."""
        state = {name: value.detach().clone() for name, value in net.state_dict().items()}
        for name in self.names:
            state[name] = self.average[name].to(state[name].dtype)
        return state


def averaged_entries(net: nn.Module) -> list[str]:
    """The state-dict entries of ``net`` that are averaged: its parameters and its BatchNorms'
    running means and variances."""
    entries = [name for name, _ in net.named_parameters()]
    for module_name, module in net.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
            prefix = f"{module_name}." if module_name else ""
            entries += [f"{prefix}running_mean", f"{prefix}running_var"]
    return entries
