"""Auto-PGD (Croce & Hein, ICML 2020): PGD with momentum and a step size it adapts by itself.

Each run starts at a random point of the ball's surface (`NormOps.random_sphere`, then clipped to
the bounds) with step size 2 * eps. At checkpoints
(after 22% of the iterations, then at shrinking intervals down to 6%) a point halves its step
and restarts from its best iterate when its loss rose in fewer than `rho` of the steps since the
last checkpoint, or when the step was not halved last time and the best loss has not improved.
Points that fool the model leave the batch at once (per-sample early stop); restarts and
target classes run only on the points still robust.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import torch

from advmnist.attacks.base import Attack
from advmnist.attacks.norms import Threat
from advmnist.attacks.oracle import Oracle, Run, on_robust_points

Tensor = torch.Tensor


def checkpoint_intervals(steps: int) -> list[int]:
    """The iterations at which APGD checks its step size: p_0 = 0, p_1 = 0.22, shrinking gaps."""
    first = max(int(0.22 * steps), 1)
    shrink, smallest = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    points, gap, at = [], first, first
    while at <= steps:
        points.append(at)
        gap = max(gap - shrink, smallest)
        at += gap
    return points


@dataclass
class _RunState:
    """Per-sample state of one APGD run; every tensor has the batch as its first dimension."""

    x_adv: Tensor
    x_prev: Tensor
    grad: Tensor
    step: Tensor  # (B, 1, ..., 1)
    x_best: Tensor
    grad_best: Tensor
    loss_best: Tensor
    loss_last: Tensor
    loss_best_at_check: Tensor
    reduced_at_check: Tensor
    increases: Tensor  # count of loss increases since the last checkpoint
    found: Tensor  # (B,) bool: a fooling point was found
    x_found: Tensor


@dataclass(frozen=True)
class APGD(Attack):
    """Untargeted Auto-PGD (Croce & Hein 2020) on the cross-entropy (`loss="ce"`) or DLR loss (`loss="dlr"`).

    Defaults are the paper's: 100 iterations, rho 0.75, momentum 0.75, one restart.
    """

    name: ClassVar[str] = "apgd"
    steps: int = 100
    """Iterations per run (the paper's 100); the step-size checkpoints scale with it."""
    restarts: int = 1
    """Runs in all; a later run attacks only the points still robust."""
    loss: str = "ce"
    """"ce" (cross-entropy), "dlr" (difference of logits ratio) or "dlr-targeted"."""
    rho: float = 0.75
    """A point halves its step at a checkpoint when its loss rose in fewer than this share of the steps."""
    momentum: float = 0.75
    """Weight of the new gradient step against the previous move (the paper's alpha)."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.restarts < 1:
            raise ValueError(f"steps and restarts must be >= 1, got {self.steps}, {self.restarts}")
        if not 0 < self.rho <= 1 or not 0 <= self.momentum < 1:
            raise ValueError(f"need 0 < rho <= 1 and 0 <= momentum < 1, got {self.rho}, {self.momentum}")
        if self.loss not in ("ce", "dlr", "dlr-targeted"):
            raise ValueError(f"unknown loss {self.loss!r}; choose from ce, dlr, dlr-targeted")

    def _perturb(self, oracle: Oracle, x: Tensor, y: Tensor, threat: Threat, generator: torch.Generator) -> Tensor:
        if threat.eps == 0:
            return x.clone()

        def runs() -> Iterator[Run]:
            for targets in self._target_sets(oracle, x, y):
                for _ in range(self.restarts):
                    yield partial(self._run_on, oracle, x, y, targets, threat, generator)

        return on_robust_points(oracle, x, y, runs())

    def _run_on(
        self,
        oracle: Oracle,
        x: Tensor,
        y: Tensor,
        targets: Tensor | None,
        threat: Threat,
        generator: torch.Generator,
        index: Tensor,
    ) -> tuple[Tensor, Tensor]:
        return self._run(oracle.view(index), x[index], y[index], _take(targets, index), threat, generator)

    def _target_sets(self, oracle: Oracle, x: Tensor, y: Tensor) -> list[Tensor | None]:
        return [None]

    def _run(
        self, oracle: Oracle, x: Tensor, y: Tensor, targets: Tensor | None, threat: Threat, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """One APGD run; returns (fooling point, or the highest-loss point where none) and `found`."""
        s = self._start(oracle, x, y, targets, threat, generator)
        checkpoints = set(checkpoint_intervals(self.steps))
        last_check = 0
        for i in range(self.steps):
            active = (~s.found).nonzero().squeeze(1)
            if len(active) == 0:
                break
            self._move(s, x, active, threat, first=i == 0)
            on_active = oracle.view(active)
            loss, grad, logits = on_active.loss_grad(s.x_adv[active], y[active], self.loss, _take(targets, active))
            self._record(s, active, loss, grad, on_active.fooled(s.x_adv[active], y[active], logits))
            if i + 1 in checkpoints:
                self._check_step_size(s, i + 1 - last_check)
                last_check = i + 1
        return torch.where(_expand(s.found, x), s.x_found, s.x_best), s.found

    def _start(
        self, oracle: Oracle, x: Tensor, y: Tensor, targets: Tensor | None, threat: Threat, generator: torch.Generator
    ) -> _RunState:
        x_adv = (x + threat.ops.random_sphere(x, threat.eps, generator)).clamp(*threat.bounds)
        x_adv = threat.project(x, x_adv)
        loss, grad, logits = oracle.loss_grad(x_adv, y, self.loss, targets)
        found = oracle.fooled(x_adv, y, logits)
        ones = torch.ones(len(x), dtype=torch.bool, device=x.device)
        return _RunState(
            x_adv=x_adv,
            x_prev=x_adv.clone(),
            grad=grad,
            step=torch.full(_expand_shape(x), 2 * threat.eps, device=x.device, dtype=x.dtype),
            x_best=x_adv.clone(),
            grad_best=grad.clone(),
            loss_best=loss.clone(),
            loss_last=loss.clone(),
            loss_best_at_check=loss.clone(),
            reduced_at_check=ones,
            increases=torch.zeros(len(x), device=x.device),
            found=found,
            x_found=x_adv.clone(),
        )

    def _move(self, s: _RunState, x: Tensor, idx: Tensor, threat: Threat, first: bool) -> None:
        """z = P(x_k + eta * dir), x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1}))."""
        x0, x_k, x_prev = x[idx], s.x_adv[idx], s.x_prev[idx]
        z = threat.project(x0, x_k + s.step[idx] * threat.ops.normalize_grad(s.grad[idx]))
        a = 1.0 if first else self.momentum
        x_next = x_k + a * (z - x_k) + (1 - a) * (x_k - x_prev)
        s.x_prev[idx] = x_k
        s.x_adv[idx] = threat.project(x0, x_next)

    def _record(self, s: _RunState, idx: Tensor, loss: Tensor, grad: Tensor, fooled: Tensor) -> None:
        s.found[idx[fooled]] = True
        s.x_found[idx[fooled]] = s.x_adv[idx[fooled]]
        s.increases[idx] += (loss > s.loss_last[idx]).float()
        s.loss_last[idx] = loss
        s.grad[idx] = grad
        better = loss > s.loss_best[idx]
        up = idx[better]
        s.x_best[up], s.grad_best[up], s.loss_best[up] = s.x_adv[up], grad[better], loss[better]

    def _check_step_size(self, s: _RunState, interval: int) -> None:
        oscillating = s.increases <= self.rho * interval
        stalled = ~s.reduced_at_check & (s.loss_best_at_check >= s.loss_best)
        reduce = oscillating | stalled
        s.reduced_at_check, s.loss_best_at_check = reduce, s.loss_best.clone()
        s.increases.zero_()
        s.step[reduce] /= 2
        s.x_adv[reduce], s.grad[reduce] = s.x_best[reduce], s.grad_best[reduce]


@dataclass(frozen=True)
class APGDCE(APGD):
    """APGD on the cross-entropy loss (`loss="ce"`), AutoAttack's first attack (Croce & Hein 2020)."""

    name: ClassVar[str] = "apgd-ce"
    loss: str = "ce"


@dataclass(frozen=True)
class APGDDLR(APGD):
    """APGD on the DLR loss (`loss="dlr"`; Croce & Hein 2020): invariant to shifts and rescaling of the logits."""

    name: ClassVar[str] = "apgd-dlr"
    loss: str = "dlr"


@dataclass(frozen=True)
class APGDT(APGD):
    """Targeted APGD on the targeted DLR loss (`loss="dlr-targeted"`), once per target among the
    `n_targets` most likely other classes at the clean point (default 9: AutoAttack's second attack,
    Croce & Hein 2020, 1 restart each)."""

    name: ClassVar[str] = "apgd-t"
    loss: str = "dlr-targeted"
    n_targets: int = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_targets < 1:
            raise ValueError(f"n_targets must be >= 1, got {self.n_targets}")

    def _target_sets(self, oracle: Oracle, x: Tensor, y: Tensor) -> list[Tensor | None]:
        ranked = oracle.logits(x).argsort(dim=1, descending=True)  # (B, classes)
        n = min(self.n_targets, ranked.shape[1] - 1)
        # rank 0 is the predicted class (= y for the points attacked): targets are ranks 1..n
        return [ranked[:, r] for r in range(1, n + 1)]


def _take(t: Tensor | None, idx: Tensor) -> Tensor | None:
    return None if t is None else t[idx]


def _expand_shape(x: Tensor) -> tuple[int, ...]:
    return (x.shape[0], *([1] * (x.dim() - 1)))


def _expand(mask: Tensor, like: Tensor) -> Tensor:
    return mask.view(_expand_shape(like))
