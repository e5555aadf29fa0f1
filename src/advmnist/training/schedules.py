"""Learning-rate and eps schedules: pure functions of the training step, so a resumed run needs no state."""

from __future__ import annotations

import math

LR_SCHEDULES = ("constant", "step", "cosine", "one-cycle")
STEP_MILESTONES = (0.5, 0.75)  # `step`: the lr drops by `gamma` at these fractions of training
ONE_CYCLE_PEAK = 0.3  # `one-cycle`: linear warm-up to the peak over the first 30%, then linear decay


def lr_at(schedule: str, lr: float, step: int, total: int, gamma: float = 0.1) -> float:
    """The learning rate at `step` of `total` steps (step counts from 0)."""
    t = step / max(total, 1)  # fraction of training done, in [0, 1)
    if schedule == "constant":
        return lr
    if schedule == "step":
        return lr * gamma ** sum(t >= m for m in STEP_MILESTONES)
    if schedule == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "one-cycle":
        # starts at lr / 25 (not 0: the first steps still move), ends near 0
        if t < ONE_CYCLE_PEAK:
            return lr * (0.04 + 0.96 * t / ONE_CYCLE_PEAK)
        return lr * (1 - t) / (1 - ONE_CYCLE_PEAK)
    raise ValueError(f"unknown lr schedule {schedule!r}; choose from {', '.join(LR_SCHEDULES)}")


def eps_at(eps: float, ramp: float, step: int, total: int) -> float:
    """Training eps at `step`: linear from 0 to `eps` over the first `ramp` fraction, then `eps`.

    A curriculum: at eps 0.3 from the first step, MNIST adversarial training often stalls at chance.
    """
    if ramp <= 0:
        return eps
    return eps * min(1.0, (step + 1) / (ramp * max(total, 1)))
