"""Carlini & Wagner's L2 attack (IEEE S&P 2017): a small L2 perturbation that fools the model.

For each point it minimises ||x' - x||_2^2 + c * max(Z_y(x') - max_{i != y} Z_i(x'), -kappa) with
Adam over w, where x' = low + (high - low) * (tanh(w) + 1) / 2: the change of variables keeps x'
inside the bounds without clipping, so Adam sees a smooth, unconstrained problem. A per-point
binary search over the constant c trades the two terms: c grows tenfold until some iterate fools
the model, then the bracket is bisected. The smallest adversarial iterate of the whole search is
the result, and one search serves every budget of a sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import torch

from advmnist.attacks.losses import margin
from advmnist.attacks.minnorm import MinNormAttack
from advmnist.attacks.norms import Threat
from advmnist.attacks.oracle import Oracle

Tensor = torch.Tensor
_BETAS = (0.9, 0.999)  # Adam's defaults, as in the paper's code
_ADAM_EPS = 1e-8
_WARMUP = 0.1  # fraction of the steps over which the learning rate ramps up linearly
_EDGE = 1 - 2e-4  # atanh(+-1) is infinite: pixels at the bounds start 1e-4 inside them


def to_tanh_space(x: Tensor, bounds: tuple[float, float]) -> Tensor:
    low, high = bounds
    return torch.atanh(((x - low) / (high - low) * 2 - 1).clamp(-_EDGE, _EDGE))


def from_tanh_space(w: Tensor, bounds: tuple[float, float]) -> Tensor:
    low, high = bounds
    return low + (high - low) * (torch.tanh(w) + 1) / 2


@dataclass
class _Best:
    """The smallest adversarial point found so far, per point of the batch."""

    norm: Tensor  # (B,) L2 norm, inf while none was found
    x: Tensor  # (B, C, H, W), x while none was found


@dataclass(frozen=True)
class CWL2(MinNormAttack):
    """Untargeted Carlini-Wagner L2 (Carlini & Wagner 2017) with a binary search over c per point.

    Defaults: `binary_search_steps=9` of at most `steps=100` Adam steps each (the paper's code: up
    to 10000 steps, too many for a CPU), learning rate `lr=0.05`, c starting at `initial_const=0.01`,
    confidence margin `kappa=0`, early abort (`abort_early=True`). Three
    changes make 100 steps enough on MNIST, where most pixels sit at 0 or 1, i.e. where tanh is flat:

    - pixels at the bounds start 1e-4 inside them (w = +-4.6), not 5e-7 (w = +-7.25): Adam moves w
      by about lr per step, so a background pixel needs ~50 fewer steps before it can change;
    - lr 0.05 rather than 0.01, which with 100 steps leaves much of the background frozen (it found
      adversarials for 10 of 20 MNIST test points on the seed CNN, against 20 of 20 here);
    - a linear warm-up of the learning rate over the first 10 steps: Adam's first step moves every
      coordinate by lr whatever c is, and on gray images that jump alone crosses the boundary,
      which misleads the binary search (norms 1.4x the exact ones on a linear model without it).

    c = 0.01 rather than 1e-3 spends one binary-search step less on the tenfold growth (on MNIST
    models the c that just fools is typically 0.1 - 10). Early abort stops a point's run at one c
    when its objective fell by less than 0.01% over the last tenth of the steps, as in the paper's
    code (there for the whole batch, here per point): runs at a hopeless c end after ~10 steps.
    """

    name: ClassVar[str] = "cw-l2"
    norms: ClassVar[tuple[str, ...]] = ("l2",)
    binary_search_steps: int = 9
    steps: int = 100
    lr: float = 0.05
    initial_const: float = 1e-2
    kappa: float = 0.0
    abort_early: bool = True

    def __post_init__(self) -> None:
        if self.binary_search_steps < 1 or self.steps < 1:
            raise ValueError(
                f"binary_search_steps and steps must be >= 1, got {self.binary_search_steps}, {self.steps}"
            )
        if not self.lr > 0 or not self.initial_const > 0:
            raise ValueError(f"lr and initial_const must be > 0, got {self.lr}, {self.initial_const}")
        if not self.kappa >= 0:
            raise ValueError(f"kappa must be >= 0, got {self.kappa}")

    def _search(self, oracle: Oracle, x: Tensor, y: Tensor, threat: Threat, generator: torch.Generator) -> Tensor:
        best = _Best(torch.full((len(x),), float("inf"), device=x.device, dtype=x.dtype), x.clone())
        todo = (oracle.exact().logits(x).argmax(1) == y).nonzero().squeeze(1)  # misclassified points stay at x
        if len(todo) == 0:
            return best.x
        const = torch.full((len(todo),), self.initial_const, device=x.device, dtype=x.dtype)
        lower, upper = torch.zeros_like(const), torch.full_like(const, float("inf"))
        for _ in range(self.binary_search_steps):
            fooled = self._minimize(oracle.view(todo), x[todo], y[todo], const, threat.bounds, best, todo)
            # a c that fooled bounds the smallest useful c from above, one that failed from below
            upper = torch.where(fooled, torch.minimum(upper, const), upper)
            lower = torch.where(fooled, lower, torch.maximum(lower, const))
            const = torch.where(upper.isinf(), const * 10, (lower + upper) / 2)
        return best.x

    def _objective(self, x0: Tensor, y: Tensor, const: Tensor, logits: Tensor, x_adv: Tensor) -> Tensor:
        """||x_adv - x0||^2 + c * max(Z_y - max_{i != y} Z_i, -kappa), per point (B,)."""
        return (x_adv - x0).flatten(1).pow(2).sum(1) + const * (-margin(logits, y)).clamp_min(-self.kappa)

    def _minimize(
        self,
        oracle: Oracle,
        x: Tensor,
        y: Tensor,
        const: Tensor,
        bounds: tuple[float, float],
        best: _Best,
        rows: Tensor,
    ) -> Tensor:
        """Adam on w at fixed c per point, from w(x); updates `best[rows]`; returns which points fooled."""
        w = to_tanh_space(x, bounds)  # (n, C, H, W)
        m, v = torch.zeros_like(w), torch.zeros_like(w)
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        last = torch.full_like(const, float("inf"))  # objective at the last early-abort check
        active = torch.arange(len(x), device=x.device)
        every = max(self.steps // 10, 1)
        for step in range(self.steps):
            x_adv = from_tanh_space(w[active], bounds)
            x0, y_a, c_a = x[active], y[active], const[active]
            logits, grad = oracle.view(active).logits_grad(x_adv, partial(self._objective, x0, y_a, c_a))
            adversarial = self._adversarial(oracle.view(active), x_adv, y_a, logits)
            fooled[active[adversarial]] = True
            _keep_closest(best, rows[active], adversarial, x_adv, x0)
            # chain rule through the change of variables: dx'/dw = (high - low) / 2 * (1 - tanh(w)^2)
            grad = grad * (bounds[1] - bounds[0]) / 2 * (1 - torch.tanh(w[active]).pow(2))
            lr = self.lr * min(1.0, (step + 1) / max(_WARMUP * self.steps, 1))
            w[active] = _adam_step(w[active], grad, m, v, active, step + 1, lr)
            if self.abort_early and step % every == 0:
                loss = self._objective(x0, y_a, c_a, logits, x_adv)
                stalled = loss > 0.9999 * last[active]
                last[active] = loss
                active = active[~stalled]
                if len(active) == 0:
                    break
        return fooled

    def _adversarial(self, oracle: Oracle, x_adv: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        """Misclassified (in fp32), and with kappa > 0 by a logit margin above kappa (the paper's success)."""
        fooled = oracle.fooled(x_adv, y, logits)
        return fooled & (margin(logits, y) > self.kappa) if self.kappa > 0 else fooled


def _keep_closest(best: _Best, rows: Tensor, adversarial: Tensor, x_adv: Tensor, x0: Tensor) -> None:
    """Record the adversarial points of `x_adv` that are closer to x than the best so far."""
    norm = (x_adv - x0).flatten(1).norm(dim=1)  # (n,)
    better = adversarial & (norm < best.norm[rows])
    best.norm[rows[better]] = norm[better]
    best.x[rows[better]] = x_adv[better]


def _adam_step(w: Tensor, grad: Tensor, m: Tensor, v: Tensor, active: Tensor, t: int, lr: float) -> Tensor:
    """One Adam step on the active rows (moments updated in place); every active row is at step t."""
    b1, b2 = _BETAS
    m[active] = b1 * m[active] + (1 - b1) * grad
    v[active] = b2 * v[active] + (1 - b2) * grad.pow(2)
    m_hat, v_hat = m[active] / (1 - b1**t), v[active] / (1 - b2**t)
    return w - lr * m_hat / (v_hat.sqrt() + _ADAM_EPS)
