"""A per-sample worst case over a list of attacks, each run only on the points still robust.

This is AutoAttack's evaluation protocol (Croce & Hein 2020): the first attack runs on every
correctly classified point, each later one only on the points no earlier attack broke, and a point
counts as robust only if every attack failed on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import torch

from advmnist.attacks.base import Attack, Oracle, on_robust_points
from advmnist.attacks.norms import Threat

Tensor = torch.Tensor


def _parts(names: tuple[str, ...]) -> list[Attack]:
    from advmnist.attacks.registry import create_attack  # the registry lists the cascade itself

    if not names or "cascade" in names:
        raise ValueError(f"a cascade needs a non-empty list of other attacks, got {list(names)}")
    return [create_attack(name) for name in names]


@dataclass(frozen=True)
class Cascade(Attack):
    """Run `attacks` in order on the points still robust; default APGD-CE -> APGD-T -> Square.

    That default is AutoAttack's standard list without FAB-T (not in advmnist yet), with the
    official budgets: 100 iterations, 9 targets, 5000 queries.
    """

    name: ClassVar[str] = "cascade"
    attacks: tuple[str, ...] = ("apgd-ce", "apgd-t", "square")

    def __post_init__(self) -> None:
        _parts(self.attacks)  # validates the names

    def _perturb(self, oracle: Oracle, x: Tensor, y: Tensor, threat: Threat, generator: torch.Generator) -> Tensor:
        broken_by: list[str | None] = [None] * len(x)

        def run(part: Attack, index: Tensor) -> tuple[Tensor, Tensor]:
            on_index = oracle.view(index)
            x_adv = part._perturb(on_index, x[index], y[index], threat, generator)
            fooled = on_index.logits(x_adv).argmax(1) != y[index]
            for i in index[fooled].tolist():
                broken_by[i] = part.name
            return x_adv, fooled

        x_adv = on_robust_points(oracle, x, y, (partial(run, part) for part in _parts(self.attacks)))
        oracle.notes["broken_by"] = broken_by
        return x_adv
