"""One gradient engine for FGSM, FGM (L2) and PGD / BIM: the same loop with different settings.

Each step moves `step_size = rel_step_size * eps` along the norm's steepest-ascent direction of the
loss, then projects onto the eps-ball and the bounds. A point stays at the first iterate that
fooled the model (per-sample early stop; `early_stop=False` walks every step, as adversarial
training wants); restarts run only on points still unbroken. `targets=` at call time makes it
targeted: the loss then pulls each point towards its target class (CE, DLR or margin). With
`bf16=True` the gradients come from bf16 autocast (~2x faster on CPU), but whether a point is fooled,
and so whether it stops, is always decided by fp32 logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from advmnist.attacks.base import Attack
from advmnist.attacks.norms import Threat
from advmnist.attacks.oracle import Oracle

Tensor = torch.Tensor


@dataclass(frozen=True)
class GradientAttack(Attack):
    """Iterative first-order attack, the engine of FGSM, BIM, PGD and MI-FGSM (Linf and L2).

    `steps=1, rel_step_size=1, random_start=False` is FGSM. Targeted with `targets=` at call time.
    """

    name: ClassVar[str] = "gradient"
    targetable: ClassVar[bool] = True
    steps: int = 10
    """Gradient steps per restart."""
    rel_step_size: float = 0.25
    """Each step's length as a fraction of eps: `step_size = rel_step_size * eps`."""
    random_start: bool = True
    """Start each restart at a uniformly random point of the eps-ball (False: at x)."""
    restarts: int = 1
    """Runs in all; a later run attacks only the points that no earlier run fooled."""
    loss: str = "ce"
    """The loss the steps ascend: "ce" (cross-entropy), "dlr" or "margin" (logit margin)."""
    early_stop: bool = True
    """A point stays at its first fooling iterate (False: walk every step, as adversarial training wants)."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.restarts < 1:
            raise ValueError(f"steps and restarts must be >= 1, got {self.steps}, {self.restarts}")
        if not self.rel_step_size > 0:
            raise ValueError(f"rel_step_size must be > 0, got {self.rel_step_size}")
        if self.loss not in ("ce", "dlr", "margin"):
            raise ValueError(f"unknown loss {self.loss!r}; choose from ce, dlr, margin")

    def shares_sweep(self) -> bool:
        return self.steps == 1 and not self.random_start

    def _step(self, x: Tensor, x_adv: Tensor, grad: Tensor, threat: Threat) -> Tensor:
        x_adv = x_adv + self.rel_step_size * threat.eps * threat.ops.normalize_grad(grad)
        return threat.project(x, x_adv)

    def _one_run(self, oracle: Oracle, x: Tensor, y: Tensor, threat: Threat, generator: torch.Generator) -> Tensor:
        """One restart on the given points; returns each point's first fooling iterate, else its last."""
        x_adv = x.clone()
        if self.random_start:
            x_adv = (x + threat.ops.random_init(x, threat.eps, generator)).clamp(*threat.bounds)
        done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        velocity = torch.zeros_like(x)  # used by momentum variants only
        for _ in range(self.steps):
            active = (~done).nonzero().squeeze(1)  # the search shrinks to the points still robust
            on_active, x_active, y_active = oracle.view(active), x_adv[active], y[active]
            _, grad, logits = on_active.loss_grad(x_active, y_active, self.loss, on_active.targets)
            if not self.early_stop:
                x_adv[active] = self._step(x[active], x_active, self._direction(grad, velocity, active), threat)
                continue
            fooled = on_active.fooled(x_active, y_active, logits)  # early stop: a fooling point stays
            done[active] = fooled
            active, grad = active[~fooled], grad[~fooled]
            if len(active) == 0:
                break
            direction = self._direction(grad, velocity, active)
            x_adv[active] = self._step(x[active], x_adv[active], direction, threat)
        return x_adv

    def _direction(self, grad: Tensor, velocity: Tensor, active: Tensor) -> Tensor:
        """The ascent direction from this step's gradient (momentum variants update `velocity`)."""
        return grad

    def _perturb(self, oracle: Oracle, x: Tensor, y: Tensor, threat: Threat, generator: torch.Generator) -> Tensor:
        if threat.eps == 0:
            return x.clone()
        best = x.clone()
        broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for restart in range(self.restarts):
            todo = (~broken).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            x_adv = self._one_run(oracle.view(todo), x[todo], y[todo], threat, generator)
            best[todo] = x_adv  # the last restart's point stands for points nobody broke
            if restart + 1 < self.restarts:  # after the last one the base class checks success itself
                exact = oracle.exact().view(todo)
                broken[todo] = exact.fooled(x_adv, y[todo], exact.logits(x_adv))
        return best

    def _perturb_sweep(
        self,
        model: torch.nn.Module,
        x: Tensor,
        y: Tensor,
        threats: list[Threat],
        generator: torch.Generator,
        targets: Tensor | None = None,
    ) -> list[tuple[Oracle, Tensor]]:
        if self.shares_sweep():
            # Single step from x: one gradient serves every eps (FGSM / FGM on a list of budgets).
            oracle = self._new_oracle(model, x, targets)
            _, grad, _ = oracle.loss_grad(x, y, self.loss, targets)
            return [(oracle, self._step(x, x, grad, t) if t.eps > 0 else x.clone()) for t in threats]
        return super()._perturb_sweep(model, x, y, threats, generator, targets)


@dataclass(frozen=True)
class FGSM(GradientAttack):
    """Fast Gradient Sign Method (Goodfellow et al. 2015): `x + eps * sign(grad)` under Linf.

    Under L2 the same settings give FGM: one step of length eps along the normalized gradient.
    Defaults: one step (`steps=1`) of the whole budget (`rel_step_size=1.0`) from x itself
    (`random_start=False`); one gradient then serves every eps of a sweep.
    """

    name: ClassVar[str] = "fgsm"
    steps: int = 1
    rel_step_size: float = 1.0
    random_start: bool = False


@dataclass(frozen=True)
class PGD(GradientAttack):
    """Projected Gradient Descent (Madry et al. 2018) with random start and restarts.

    Defaults: `steps=40`, `rel_step_size=2.5 / 40`, `random_start=True` (uniform in the eps-ball),
    one restart, cross-entropy loss. The default step is 2.5 * eps / 40, Madry et al.'s rule (the
    walk can cross the ball) for the default 40 steps. It does not follow `steps`: with fewer steps,
    set `rel_step_size=2.5 / steps` too, or the walk covers less than 2.5 eps (PGD-20 at the default
    step can do worse than FGSM).
    """

    name: ClassVar[str] = "pgd"
    steps: int = 40
    rel_step_size: float = 2.5 / 40
    random_start: bool = True


@dataclass(frozen=True)
class BIM(GradientAttack):
    """Basic Iterative Method (Kurakin et al. 2017): PGD without the random start.

    Defaults: `steps=10` of `rel_step_size=0.1` (0.1 * eps each, so the walk can reach the ball's
    edge), from x itself (`random_start=False`).
    """

    name: ClassVar[str] = "bim"
    steps: int = 10
    rel_step_size: float = 0.1
    random_start: bool = False


@dataclass(frozen=True)
class MIFGSM(GradientAttack):
    """Momentum Iterative FGSM (Dong et al. 2018): steps follow an accumulated, L1-normalized gradient.

    Defaults: `steps=10` of `rel_step_size=0.1` from x itself (`random_start=False`), momentum
    `decay=1.0` (the paper's mu: velocity = decay * velocity + grad / ||grad||_1).
    """

    name: ClassVar[str] = "mifgsm"
    steps: int = 10
    rel_step_size: float = 0.1
    random_start: bool = False
    decay: float = 1.0

    def _direction(self, grad: Tensor, velocity: Tensor, active: Tensor) -> Tensor:
        l1 = grad.abs().flatten(1).sum(1).clamp_min(1e-12).view(-1, *([1] * (grad.dim() - 1)))
        velocity[active] = self.decay * velocity[active] + grad / l1
        return velocity[active]
