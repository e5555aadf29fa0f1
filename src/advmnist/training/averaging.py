"""Weight averaging (an exponential moving average of the weights, as in Gowal et al. 2020).

The average moves a little towards the trained weights after every optimizer step; with decay
0.999 it spans the last ~1,000 steps. The averaged weights are the ones validated, selected and
saved; training itself goes on with the raw weights. A short warm-up keeps the first steps from
being dominated by the random initialisation: the decay is min(decay, (1 + t) / (10 + t)).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

Tensor = torch.Tensor


class WeightAverage:
    """An exponential moving average of `model`'s floating-point weights (fp32 copies)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"the averaging decay must be in (0, 1), got {decay!r}")
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards `model`'s current weights (call after each optimizer step)."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                self.shadow[key].lerp_(value.detach().float(), 1 - decay)
            else:
                self.shadow[key].copy_(value)

    def state_dict(self) -> dict[str, Tensor]:
        """The averaged weights, in the dtypes of the model they came from when loaded back."""
        return dict(self.shadow)

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Swap the averaged weights into `model` for the block; the raw weights come back after."""
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(raw)
