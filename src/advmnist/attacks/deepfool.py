"""DeepFool (Moosavi-Dezfooli et al., CVPR 2016): walk to the nearest linearized decision boundary.

At each iterate the differences f_k - f_y between the logits of the other candidate classes and
the true one are linearized; the nearest of those hyperplanes in the threat's norm is at distance
|f_k - f_y| / ||grad(f_k - f_y)||_* (the dual norm: L2 for L2, L1 for Linf), and the step goes
exactly there. Steps add up in r, the iterate is x + (1 + overshoot) * r clipped to the bounds,
and a point stops as soon as its label flips. On a linear model one step lands on the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import torch

from advmnist.attacks.minnorm import MinNormAttack
from advmnist.attacks.norms import Threat
from advmnist.attacks.oracle import Oracle

Tensor = torch.Tensor


def _differences(classes: Tensor, logits: Tensor, x: Tensor | None = None) -> Tensor:
    """f_k - f_y for the candidate classes k (columns 1.. of `classes`; column 0 is y): (n, K - 1)."""
    return logits.gather(1, classes[:, 1:]) - logits.gather(1, classes[:, :1])


def step_to_boundary(f: Tensor, w: Tensor, norm: str) -> Tensor:
    """The smallest step onto the nearest hyperplane f_k + <w_k, r> = 0, slightly beyond it.

    f: (n, K) logit differences, w: (n, K, C, H, W) their gradients. Returns r: (n, C, H, W).
    """
    flat = w.flatten(2)  # (n, K, D)
    dual = flat.abs().sum(2) if norm == "linf" else flat.norm(dim=2)  # (n, K)
    distance = f.abs() / dual.clamp_min(1e-12)  # (n, K): to each linearized boundary
    nearest = distance.argmin(1)  # (n,)
    rows = torch.arange(len(f), device=f.device)
    w_near = w[rows, nearest]  # (n, C, H, W)
    if norm == "linf":
        direction = w_near.sign()  # Linf-unit vector with the largest inner product with w
    else:
        direction = w_near / dual[rows, nearest].clamp_min(1e-12).view(-1, *([1] * (w_near.dim() - 1)))
    # 1e-4 more than the distance, as in the authors' code, so the step does not stop on the boundary
    size = distance[rows, nearest] + 1e-4
    return size.view(-1, *([1] * (w_near.dim() - 1))) * direction


@dataclass(frozen=True)
class DeepFool(MinNormAttack):
    """Untargeted DeepFool (Moosavi-Dezfooli et al. 2016), Linf and L2: the paper's `steps=50`
    iterations at most, `overshoot=0.02` (the iterate is x + 1.02 r: just past the linearized boundary).

    `candidates` is the number of most likely classes at x considered (the true class included):
    the authors' code uses 10, i.e. every class on MNIST. An iteration costs `candidates - 1`
    forward and backward passes (the Jacobian of the logit differences, on stacked copies) and one
    forward pass to see which labels flipped, on the points still unbroken only. A point for which
    50 iterations find nothing comes back as x, with `norm_found` inf.
    """

    name: ClassVar[str] = "deepfool"
    steps: int = 50
    overshoot: float = 0.02
    candidates: int = 10

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if not self.overshoot >= 0:
            raise ValueError(f"overshoot must be >= 0, got {self.overshoot}")
        if self.candidates < 2:
            raise ValueError(f"candidates must be >= 2 (the true class and one other), got {self.candidates}")

    def _search(self, oracle: Oracle, x: Tensor, y: Tensor, threat: Threat, generator: torch.Generator) -> Tensor:
        ranked = oracle.exact().logits(x).argsort(1, descending=True)  # (B, classes)
        classes = ranked[:, : self.candidates]  # (B, K); column 0 is y for every point attacked
        active = (ranked[:, 0] == y).nonzero().squeeze(1)  # misclassified points stay at x
        total = torch.zeros_like(x)  # r: the sum of the steps
        x_adv = x.clone()
        for _ in range(self.steps):
            if len(active) == 0:
                break
            cls, on_active = classes[active], oracle.view(active)
            logits, jac = on_active.logits_grad(x_adv[active], partial(_differences, cls), cls.shape[1] - 1)
            total[active] += step_to_boundary(_differences(cls, logits), jac, threat.norm)  # jac: (n, K-1, C, H, W)
            x_adv[active] = (x[active] + (1 + self.overshoot) * total[active]).clamp(*threat.bounds)
            # a forward pass to see which labels flipped is cheaper than a Jacobian spent on them
            x_active = x_adv[active]
            active = active[~on_active.fooled(x_active, y[active], on_active.logits(x_active))]
        return x_adv
