"""Training objectives: `objective(model, x, y) -> LossOutput`, separate from the loop that runs them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advmnist.attacks import FGSM, Threat

Tensor = torch.Tensor


@dataclass(frozen=True)
class LossOutput:
    loss: Tensor  # scalar to minimize
    logits: Tensor  # (B', 10) logits of the examples the loss saw
    y: Tensor  # (B',) their labels


Objective = Callable[[nn.Module, Tensor, Tensor], LossOutput]


def standard_ce() -> Objective:
    """Plain cross-entropy on clean examples."""

    def objective(model: nn.Module, x: Tensor, y: Tensor) -> LossOutput:
        logits = model(x)
        return LossOutput(F.cross_entropy(logits, y), logits, y)

    return objective


def fgsm_mix(eps: float, *, bf16: bool = False, seed: int = 0) -> Objective:
    """The seed's defense: half of each batch stays clean, the other half becomes FGSM(eps).

    The FGSM examples are crafted on the current weights in eval mode (no dropout noise in the
    gradient) and the loss is the mean cross-entropy over the whole mixed batch.
    """
    attack = FGSM(bf16=bf16)
    threat = Threat("linf", eps)

    def objective(model: nn.Module, x: Tensor, y: Tensor) -> LossOutput:
        half = len(x) // 2
        with torch.autocast(device_type=x.device.type, enabled=False):
            x_adv = attack.generate(model, x[half:], y[half:], threat, seed=seed)
        x_mix = torch.cat([x[:half], x_adv])  # (B, 1, 28, 28): clean first, adversarial second
        logits = model(x_mix)
        return LossOutput(F.cross_entropy(logits, y), logits, y)

    return objective
