"""Threat models and the small pure functions each norm needs; every start and projection is here.

Per norm: `random_init` draws a start uniformly inside the ball (PGD), `random_direction` the noise
that `random_sphere` puts on a sphere (APGD's start; FAB's restarts rescale it with `rescale`),
`normalize_grad` turns a gradient into the steepest-ascent direction of unit norm, `project` maps
a perturbation back onto the ball, `size` measures a perturbation per sample and `distance` two
points. `Threat.project` moves points into the ball around x and the bounds in one call, and
`gaussian_noise` is the small Gaussian start of TRADES, the same for every norm.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Tensor = torch.Tensor


def _per_sample(v: Tensor, like: Tensor) -> Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))  # (B,) -> (B, 1, 1, 1)


def linf_random_init(x: Tensor, eps: float, generator: torch.Generator | None) -> Tensor:
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (2 * u - 1) * eps


def linf_random_direction(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Uniform noise in the cube [-1, 1]^D, shaped like x (not yet of unit norm)."""
    return 2 * torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) - 1


def linf_normalize_grad(grad: Tensor) -> Tensor:
    return grad.sign()


def linf_project(delta: Tensor, eps: float) -> Tensor:
    return delta.clamp(-eps, eps)


def linf_size(t: Tensor) -> Tensor:
    return t.flatten(1).abs().amax(dim=1)


def l2_random_init(x: Tensor, eps: float, generator: torch.Generator | None) -> Tensor:
    """Uniform in the L2 ball: a Gaussian direction times radius eps * U^(1/d)."""
    g = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    d = x[0].numel()
    r = torch.rand((x.shape[0],), generator=generator, device=x.device, dtype=x.dtype) ** (1.0 / d)
    return g / _per_sample(l2_size(g), g).clamp_min(1e-12) * _per_sample(eps * r, x)


def l2_random_direction(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard Gaussian noise shaped like x: its direction is uniform on the sphere."""
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def l2_normalize_grad(grad: Tensor) -> Tensor:
    return grad / _per_sample(l2_size(grad), grad).clamp_min(1e-12)


def l2_project(delta: Tensor, eps: float) -> Tensor:
    scale = (eps / _per_sample(l2_size(delta), delta).clamp_min(1e-12)).clamp(max=1.0)
    return delta * scale


def l2_size(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1)


def gaussian_noise(x: Tensor, sigma: float, generator: torch.Generator | None) -> Tensor:
    """N(0, sigma^2) noise shaped like x, for any norm (TRADES starts at x + 0.001 * N(0, 1))."""
    return sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


@dataclass(frozen=True)
class NormOps:
    """The functions of one norm. Sizes are per sample, (B,); the others keep the input's shape."""

    random_init: Callable[[Tensor, float, torch.Generator | None], Tensor]
    random_direction: Callable[[Tensor, torch.Generator | None], Tensor]
    normalize_grad: Callable[[Tensor], Tensor]
    project: Callable[[Tensor, float], Tensor]
    size: Callable[[Tensor], Tensor]

    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        """Per-sample size of a - b, (B,)."""
        return self.size(a - b)

    def unit(self, t: Tensor) -> Tensor:
        """t / size(t) per sample: norm 1 (0 stays 0)."""
        return t / _per_sample(self.size(t), t).clamp_min(1e-12)

    def rescale(self, t: Tensor, r: float) -> Tensor:
        """r * t / size(t) per sample: norm r, rounded as (r * t) / size (FAB's order of operations)."""
        return r * t / _per_sample(self.size(t), t).clamp_min(1e-12)

    def random_sphere(self, x: Tensor, r: float, generator: torch.Generator | None) -> Tensor:
        """A random perturbation of norm exactly r per sample (before any bounds), r * unit(direction).

        Linf: a random point of the cube's surface (noise over its largest coordinate); L2: uniform
        on the sphere. `rescale(random_direction(...), r)` is the same point up to rounding.
        """
        return r * self.unit(self.random_direction(x, generator))


NORMS: dict[str, NormOps] = {
    "linf": NormOps(linf_random_init, linf_random_direction, linf_normalize_grad, linf_project, linf_size),
    "l2": NormOps(l2_random_init, l2_random_direction, l2_normalize_grad, l2_project, l2_size),
}


@dataclass(frozen=True)
class Threat:
    """What the adversary may do: a norm ball of radius `eps` intersected with the pixel `bounds`.

    Defaults: `norm="linf"` (or `"l2"`), `eps=0.3` (the MNIST Linf standard), `bounds=(0.0, 1.0)`.
    """

    norm: str = "linf"
    eps: float = 0.3
    bounds: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose from {', '.join(NORMS)}")
        if not isinstance(self.eps, (int, float)) or not math.isfinite(self.eps) or self.eps < 0:
            raise ValueError(f"eps must be a finite number >= 0, got {self.eps!r}")
        if self.norm == "linf" and self.eps > 1:
            raise ValueError(f"Linf eps must be in [0, 1] for images in [0, 1], got {self.eps}")
        low, high = self.bounds
        if not low < high:
            raise ValueError(f"bounds must be (low, high) with low < high, got {self.bounds}")

    @property
    def ops(self) -> NormOps:
        return NORMS[self.norm]

    def with_eps(self, eps: float) -> Threat:
        return Threat(self.norm, eps, self.bounds)

    def project(self, x: Tensor, x_adv: Tensor) -> Tensor:
        """x_adv moved into the eps-ball around x, then into the bounds: `clamp(x + project(x_adv - x))`."""
        return (x + self.ops.project(x_adv - x, self.eps)).clamp(*self.bounds)
