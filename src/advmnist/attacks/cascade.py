"""A per-sample worst case over a list of attacks, each run only on the points still robust.

This is AutoAttack's evaluation protocol (Croce & Hein 2020): the first attack runs on every
correctly classified point, each later one only on the points no earlier attack broke, and a point
counts as robust only if every attack failed on it. `AutoAttack` is this cascade with the lists
and budgets of the official code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import torch

from advmnist.attacks.base import Attack, Oracle, on_robust_points
from advmnist.attacks.norms import Threat

Tensor = torch.Tensor

# The official lists (autoattack.py, `set_version`): 100 iterations everywhere, 9 target classes
# for APGD-T and FAB-T, 5000 queries for Square; "plus" adds restarts and the untargeted attacks.
VERSIONS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "standard": (("apgd-ce", {}), ("apgd-t", {"n_targets": 9}), ("fab-t", {"n_targets": 9}), ("square", {})),
    "plus": (
        ("apgd-ce", {"restarts": 5}),
        ("apgd-dlr", {"restarts": 5}),
        ("fab", {"restarts": 5}),
        ("square", {}),
        ("apgd-t", {"n_targets": 9}),
        ("fab-t", {"n_targets": 9}),
    ),
}


def _build(specs: tuple[tuple[str, dict[str, Any]], ...]) -> list[Attack]:
    from advmnist.attacks.registry import create_attack  # the registry lists the cascades themselves

    names = [name for name, _ in specs]
    if not names or {"cascade", "autoattack"} & set(names):
        raise ValueError(f"a cascade needs a non-empty list of other attacks, got {names}")
    return [create_attack(name, **kwargs) for name, kwargs in specs]


@dataclass(frozen=True)
class Cascade(Attack):
    """Run `attacks` (registry names, default settings) in order on the points still robust.

    The result records, per point, the first attack that fooled it (`AttackResult.broken_by`).
    """

    name: ClassVar[str] = "cascade"
    attacks: tuple[str, ...] = ("apgd-ce", "apgd-t", "square")

    def __post_init__(self) -> None:
        self.members()  # validates the names and settings

    def members(self) -> list[Attack]:
        """The attacks of the cascade, in the order they run."""
        return _build(tuple((name, {}) for name in self.attacks))

    def _perturb(self, oracle: Oracle, x: Tensor, y: Tensor, threat: Threat, generator: torch.Generator) -> Tensor:
        broken_by: list[str | None] = [None] * len(x)

        def run(part: Attack, index: Tensor) -> tuple[Tensor, Tensor]:
            on_index = oracle.view(index)
            x_adv = part._perturb(on_index, x[index], y[index], threat, generator)
            fooled = on_index.exact().logits(x_adv).argmax(1) != y[index]
            for i in index[fooled].tolist():
                broken_by[i] = part.name
            return x_adv, fooled

        x_adv = on_robust_points(oracle, x, y, (partial(run, part) for part in self.members()))
        oracle.notes["broken_by"] = broken_by
        return x_adv


@dataclass(frozen=True)
class AutoAttack(Cascade):
    """AutoAttack (Croce & Hein, ICML 2020), the standard robustness evaluation.

    `version="standard"`: APGD-CE -> APGD-T (9 targets) -> FAB-T (9 targets) -> Square (5000
    queries), 100 iterations each, as the official code runs it under Linf and L2. `"plus"`: the
    official "plus" list (restarts, untargeted APGD-DLR and FAB). `"custom"`: any list in `attacks`.
    """

    name: ClassVar[str] = "autoattack"
    version: str = "standard"
    attacks: tuple[str, ...] = ()

    def members(self) -> list[Attack]:
        if self.version == "custom":
            return _build(tuple((name, {}) for name in self.attacks))
        if self.version not in VERSIONS:
            raise ValueError(f"unknown AutoAttack version {self.version!r}; choose from standard, plus, custom")
        if self.attacks:
            raise ValueError(f"version {self.version!r} fixes its attack list; use version='custom' to choose one")
        return _build(VERSIONS[self.version])
