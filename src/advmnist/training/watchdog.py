"""Scores during training: clean loss and accuracy, PGD accuracy on held-out images, the collapse watchdog.

Fast adversarial training (FGSM-RS, few-step PGD) can overfit catastrophically: within an epoch
the model learns to defeat the single-step attack it trains on while its accuracy under a
multi-step attack falls to ~0 (Wong et al. 2020). The watchdog measures PGD accuracy at the
training eps on a fixed validation batch after every epoch; when it falls more than `drop` below
the best seen, the epoch counts as a collapse and training rolls back to the last good epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advmnist.attacks import PGD, Threat
from advmnist.data.batches import iterate_batches
from advmnist.precision import use_bf16

Tensor = torch.Tensor
VAL_PGD_STEPS = 10  # PGD-10, step eps / 4, random start: cheap, and far stronger than the training FGSM


@torch.inference_mode()
def evaluate_clean(
    model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256, *, bf16: bool = False
) -> tuple[float, float, Tensor]:
    """Mean loss, accuracy and predictions on clean data in eval mode (mode restored after).

    fp32 unless `bf16` (used only for the per-epoch learning curves of bf16 training).
    """
    was_training = model.training
    model.eval()
    preds, loss_sum = [], 0.0
    device = next(model.parameters()).device
    try:
        for _, xb, yb in iterate_batches(x, y, batch_size):
            xb = xb.to(device).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16(bf16, device)):
                logits = model(xb).float()
            loss_sum += F.cross_entropy(logits, yb.to(device), reduction="sum").item()
            preds.append(logits.argmax(1).cpu())
    finally:
        model.train(was_training)
    pred = torch.cat(preds)
    return loss_sum / len(y), (pred == y).float().mean().item(), pred


@torch.no_grad()
def _accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    return float((model(x).argmax(1) == y).float().mean())


def validate(model: nn.Module, x: Tensor, y: Tensor, eps: float, *, bf16: bool, seed: int = 0) -> dict[str, float]:
    """Clean and PGD-10 accuracy (Linf eps) on the validation batch; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        clean = _accuracy(model, x, y)
        if eps <= 0:
            return {"val_clean": clean, "val_pgd": clean}
        attack = PGD(steps=VAL_PGD_STEPS, rel_step_size=0.25, bf16=bf16)
        result = attack(model, x, y, Threat("linf", eps), seed=seed)  # success decided in fp32
        with torch.no_grad():
            robust = (model(x).argmax(1) == y) & ~result.success
        return {"val_clean": clean, "val_pgd": float(robust.float().mean())}
    finally:
        model.train(was_training)


@dataclass
class Watchdog:
    """Tracks the best validation PGD accuracy and calls a collapse when it falls `drop` below it.

    The best epoch is the one with the highest PGD accuracy, ties broken by clean accuracy (a model
    no attack leaves anything to, like a standard one, then keeps its best clean epoch).
    """

    drop: float
    best: float = -1.0
    best_clean: float = -1.0
    best_epoch: int = 0

    def collapsed(self, val_pgd: float) -> bool:
        return self.best >= 0 and val_pgd < self.best - self.drop

    def update(self, epoch: int, val_pgd: float, val_clean: float = 0.0) -> bool:
        """Record a good epoch; True when it is the best so far."""
        if (val_pgd, val_clean) > (self.best, self.best_clean):
            self.best, self.best_clean, self.best_epoch = val_pgd, val_clean, epoch
            return True
        return False
