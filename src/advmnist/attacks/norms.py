"""Threat models and the four small pure functions each norm needs.

`random_init` draws a start inside the ball, `normalize_grad` turns a gradient into the steepest
ascent direction of unit norm, `project` maps a perturbation back onto the ball, and `distance`
measures per-sample perturbation size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Tensor = torch.Tensor


def _flat_norm(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))  # (B, 1, 1, 1)


def linf_random_init(x: Tensor, eps: float, generator: torch.Generator | None) -> Tensor:
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (2 * u - 1) * eps


def linf_normalize_grad(grad: Tensor) -> Tensor:
    return grad.sign()


def linf_project(delta: Tensor, eps: float) -> Tensor:
    return delta.clamp(-eps, eps)


def linf_distance(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).flatten(1).abs().amax(dim=1)


def l2_random_init(x: Tensor, eps: float, generator: torch.Generator | None) -> Tensor:
    """Uniform in the L2 ball: a Gaussian direction times radius eps * U^(1/d)."""
    g = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    d = x[0].numel()
    r = torch.rand((x.shape[0],), generator=generator, device=x.device, dtype=x.dtype) ** (1.0 / d)
    return g / _flat_norm(g).clamp_min(1e-12) * (eps * r).view(-1, *([1] * (x.dim() - 1)))


def l2_normalize_grad(grad: Tensor) -> Tensor:
    return grad / _flat_norm(grad).clamp_min(1e-12)


def l2_project(delta: Tensor, eps: float) -> Tensor:
    scale = (eps / _flat_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    return delta * scale


def l2_distance(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).flatten(1).norm(dim=1)


@dataclass(frozen=True)
class NormOps:
    random_init: Callable[[Tensor, float, torch.Generator | None], Tensor]
    normalize_grad: Callable[[Tensor], Tensor]
    project: Callable[[Tensor, float], Tensor]
    distance: Callable[[Tensor, Tensor], Tensor]


NORMS: dict[str, NormOps] = {
    "linf": NormOps(linf_random_init, linf_normalize_grad, linf_project, linf_distance),
    "l2": NormOps(l2_random_init, l2_normalize_grad, l2_project, l2_distance),
}


@dataclass(frozen=True)
class Threat:
    """What the adversary may do: a norm ball of radius `eps` intersected with the pixel `bounds`."""

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
