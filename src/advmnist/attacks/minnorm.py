"""Minimum-norm attacks: search once for each point's smallest adversarial perturbation, no budget.

A minimum-norm attack (CW-L2, DeepFool, FAB) does not take eps as an input: it looks for the
adversarial point closest to x. One search therefore serves every budget of a sweep: the base class
projects the same point onto each eps-ball, so a point counts as broken at eps when its minimal
adversarial lies within eps (or when the projection happens to fool as well). The norm of that
point is recorded per sample in `AttackResult.norm_found`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from advmnist.attacks.base import Attack
from advmnist.attacks.norms import Threat
from advmnist.attacks.oracle import Oracle

Tensor = torch.Tensor


def confirm(oracle: Oracle, x: Tensor, y: Tensor, x_adv: Tensor, threat: Threat) -> tuple[Tensor, Tensor]:
    """Keep only the points that fool the model where the base class will evaluate them.

    For any eps at or above a point's norm the base evaluates `(x + (x_adv - x)).clamp(bounds)`,
    which can differ from `x_adv` by rounding, and it decides success on the whole batch. A search
    that stops right at the decision boundary can land on a point that this rounding (or a batch
    of another size) classifies correctly; checking the very same tensor here makes
    `norm_found <= eps` imply success at eps. Returns (x_adv, or x where it does not fool; its norm,
    0 for points misclassified at x and inf where nothing was found), at the cost of one forward.
    """
    seen = (x + (x_adv - x)).clamp(*threat.bounds)  # what the base evaluates for eps >= the norm
    fooled = oracle.exact().logits(seen).argmax(1) != y  # (B,)
    # the base leaves x_adv - x unscaled iff eps >= its norm; the distance it reports is that of
    # `seen`; the two can differ by rounding, and the larger one keeps `norm_found <= eps` a guarantee
    norm = torch.maximum(threat.ops.distance(x_adv, x), threat.ops.distance(seen, x))  # (B,)
    norm = torch.where(fooled, norm, torch.full_like(norm, float("inf")))
    keep = fooled.view(-1, *([1] * (x.dim() - 1)))
    return torch.where(keep, x_adv, x), norm


@dataclass(frozen=True)
class MinNormAttack(Attack):
    """Base of the minimum-norm attacks: subclasses implement `_search`, which ignores eps."""

    def shares_sweep(self) -> bool:
        return True  # the search ignores eps

    def _search(self, oracle: Oracle, x: Tensor, y: Tensor, threat: Threat, generator: torch.Generator) -> Tensor:
        """The smallest adversarial point found for each point (x where none; x where x fools already)."""
        raise NotImplementedError

    def _checked_search(
        self, oracle: Oracle, x: Tensor, y: Tensor, threat: Threat, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        return confirm(oracle, x, y, self._search(oracle, x, y, threat, generator), threat)

    def _perturb_sweep(
        self,
        model: torch.nn.Module,
        x: Tensor,
        y: Tensor,
        threats: list[Threat],
        generator: torch.Generator,
        targets: Tensor | None = None,  # refused by the base: these attacks are untargeted
    ) -> list[tuple[Oracle, Tensor]]:
        oracle = self._new_oracle(model, x)
        x_adv, norm = self._checked_search(oracle, x, y, threats[0], generator)
        oracle.notes["norm_found"] = norm
        return [(oracle, x_adv) for _ in threats]
