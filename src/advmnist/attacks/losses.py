"""Per-sample attack losses on logits: larger means closer to (or further into) misclassification.

`dlr` and `dlr_targeted` are the Difference of Logits Ratio losses of Croce & Hein (2020): shift-
and scale-invariant in the logits, so a model cannot hide behind large or saturated logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
LossFn = Callable[[Tensor, Tensor, Tensor | None], Tensor]  # (logits, y, targets) -> (B,)


def ce(logits: Tensor, y: Tensor, targets: Tensor | None = None) -> Tensor:
    """Cross-entropy of the true class (untargeted), or minus that of the target class (targeted)."""
    if targets is not None:
        return -F.cross_entropy(logits, targets, reduction="none")
    return F.cross_entropy(logits, y, reduction="none")


def _largest_other(logits: Tensor, y: Tensor) -> Tensor:
    return logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)


def dlr(logits: Tensor, y: Tensor, targets: Tensor | None = None) -> Tensor:
    """-(z_y - max_{i != y} z_i) / (z_(1) - z_(3)), z_(k) the k-th largest logit."""
    if targets is not None:
        return dlr_targeted(logits, y, targets)
    top = logits.sort(dim=1, descending=True).values
    margin = logits.gather(1, y[:, None]).squeeze(1) - _largest_other(logits, y)
    return -margin / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_targeted(logits: Tensor, y: Tensor, targets: Tensor | None) -> Tensor:
    """-(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2): pushes the target class above the true one."""
    if targets is None:
        raise ValueError("the targeted DLR loss needs targets")
    top = logits.sort(dim=1, descending=True).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, targets[:, None]).squeeze(1)
    return -(z_y - z_t) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


def margin(logits: Tensor, y: Tensor, targets: Tensor | None = None) -> Tensor:
    """max_{i != y} z_i - z_y (or z_t - z_y): positive exactly when the point is misclassified (as t)."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    if targets is not None:
        return logits.gather(1, targets[:, None]).squeeze(1) - z_y
    return _largest_other(logits, y) - z_y


LOSSES: dict[str, LossFn] = {"ce": ce, "dlr": dlr, "dlr-targeted": dlr_targeted, "margin": margin}
