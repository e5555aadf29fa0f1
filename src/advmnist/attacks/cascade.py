"""A per-sample worst case over a list of attacks, each run only on the points still robust.

This is AutoAttack's evaluation protocol (Croce & Hein 2020): the first attack runs on every
correctly classified point, each later one only on the points no earlier attack broke, and a point
counts as robust only if every attack failed on it. `AutoAttack` is this cascade with the lists
and budgets of the official code.

A cascade holds `Attack` objects and calls each through the public contract (`member(model, x,
y, threat, generator=...)`) on the points still robust: the member checks its inputs, projects
its points and decides in fp32 which it broke, and the cascade adds the member's passes to its
own counts. The members draw from the cascade's one generator, in order, so a cascade with a
seed gives the same points every time. (The registry builds cascades from names:
`create_attack("cascade", attacks=("apgd-ce", "apgd-t"))`, `"cascade[attacks=apgd-ce+apgd-t]"`.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import torch
from torch import nn

from advmnist.attacks.apgd import APGDCE, APGDDLR, APGDT
from advmnist.attacks.base import Attack
from advmnist.attacks.fab import FAB, FABT
from advmnist.attacks.norms import Threat
from advmnist.attacks.oracle import Oracle, on_robust_points
from advmnist.attacks.square import Square

Tensor = torch.Tensor

# The official lists (autoattack.py, `set_version`): 100 iterations everywhere, 9 target classes
# for APGD-T and FAB-T, 5000 queries for Square; "plus" adds restarts and the untargeted attacks.
VERSIONS: dict[str, tuple[Attack, ...]] = {
    "standard": (APGDCE(), APGDT(n_targets=9), FABT(n_targets=9), Square()),
    "plus": (
        APGDCE(restarts=5),
        APGDDLR(restarts=5),
        FAB(restarts=5),
        Square(),
        APGDT(n_targets=9),
        FABT(n_targets=9),
    ),
}


def _members(attacks: object, bf16: bool) -> tuple[Attack, ...]:
    """Validated members, each set to the cascade's precision (`bf16` is the cascade's setting)."""
    if not isinstance(attacks, (tuple, list)):
        raise TypeError(f"a cascade's attacks must be a tuple of Attack objects, got {attacks!r}")
    members = tuple(attacks)
    for a in members:
        if isinstance(a, str):
            raise TypeError(
                f"a cascade holds Attack objects, got the name {a!r}: build it with create_attack, e.g. "
                f"create_attack('cascade', attacks=('apgd-ce', 'apgd-t')), or pass APGDCE(), ..."
            )
        if not isinstance(a, Attack):
            raise TypeError(f"a cascade holds Attack objects, got {type(a).__name__}")
    if not members or any(isinstance(a, Cascade) for a in members):
        raise ValueError(f"a cascade needs a non-empty list of other attacks, got {[a.name for a in members]}")
    return tuple(a if a.bf16 == bf16 else dataclasses.replace(a, bf16=bf16) for a in members)


@dataclass(frozen=True)
class Cascade(Attack):
    """Run `attacks` in order, each on the points still robust, e.g. `Cascade((APGDCE(), Square()))`.

    AutoAttack's per-sample worst case (Croce & Hein 2020) over any list; the default `attacks` is
    APGD-CE -> APGD-T -> Square, each with its own defaults.

    The members run with the cascade's `bf16` (it replaces theirs; Square searches in fp32 anyway).
    The result records, per point, the first attack that fooled it (`AttackResult.broken_by`), and
    counts every pass the members made (`forwards`, `backwards`, per-point `queries`).
    """

    name: ClassVar[str] = "cascade"
    attacks: tuple[Attack, ...] = (APGDCE(), APGDT(), Square())

    def __post_init__(self) -> None:
        object.__setattr__(self, "attacks", _members(self.attacks, self.bf16))

    def members(self) -> tuple[Attack, ...]:
        """The attacks of the cascade, in the order they run, at the cascade's precision."""
        return self.attacks

    def _check_inputs(
        self, model: nn.Module, x: Tensor, y: Tensor, threat: Threat, targets: Tensor | None = None
    ) -> None:
        super()._check_inputs(model, x, y, threat, targets)
        for member in self.members():  # refuse before any member has run
            if threat.norm not in member.norms:
                raise ValueError(f"{member.name} supports only {', '.join(member.norms)} threats, got {threat.norm!r}")

    def _perturb(self, oracle: Oracle, x: Tensor, y: Tensor, threat: Threat, generator: torch.Generator) -> Tensor:
        broken_by: list[str | None] = [None] * len(x)

        def run(member: Attack, index: Tensor) -> tuple[Tensor, Tensor]:
            result = member(oracle.model, x[index], y[index], threat, generator=generator)
            oracle.view(index).charge(result.forwards, result.backwards, result.queries)
            for i in index[result.success].tolist():
                broken_by[i] = member.name
            return result.x_adv, result.success

        x_adv = on_robust_points(oracle, x, y, (partial(run, member) for member in self.members()))
        oracle.notes["broken_by"] = broken_by
        return x_adv


@dataclass(frozen=True)
class AutoAttack(Cascade):
    """AutoAttack (Croce & Hein, ICML 2020), the standard robustness evaluation.

    `version="standard"`: APGD-CE -> APGD-T (9 targets) -> FAB-T (9 targets) -> Square (5000
    queries), 100 iterations each, as the official code runs it under Linf and L2. `"plus"`: the
    official "plus" list (restarts, untargeted APGD-DLR and FAB). `"custom"`: the list in `attacks`
    (empty by default: only `version="custom"` takes one).
    """

    name: ClassVar[str] = "autoattack"
    version: str = "standard"
    attacks: tuple[Attack, ...] = ()

    def __post_init__(self) -> None:
        if self.version == "custom":
            super().__post_init__()
        elif self.version not in VERSIONS:
            raise ValueError(f"unknown AutoAttack version {self.version!r}; choose from standard, plus, custom")
        elif self.attacks:
            raise ValueError(f"version {self.version!r} fixes its attack list; use version='custom' to choose one")

    def members(self) -> tuple[Attack, ...]:
        return self.attacks if self.version == "custom" else _members(VERSIONS[self.version], self.bf16)
