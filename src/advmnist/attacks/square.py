"""Square Attack (Andriushchenko et al., ECCV 2020): score-based random search, no gradients.

Each query changes the perturbation on one random square window, keeps the change only when the
margin loss (true logit minus the best other logit) goes down, and stops for a point as soon as
it is misclassified. The window shrinks on a fixed schedule of the query index. Under Linf the
window is set to +-eps per channel; under L2 mass moves from a second window into a
centre-weighted pattern on the first, keeping the total norm at eps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from advmnist.attacks.base import Attack
from advmnist.attacks.losses import margin
from advmnist.attacks.norms import Threat
from advmnist.attacks.oracle import Oracle, on_robust_points

Tensor = torch.Tensor
_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128), (8000, 256))


def window_fraction(p_init: float, query: int, queries: int) -> float:
    """The paper's schedule of the fraction of pixels changed, rescaled to a budget of `queries`."""
    it = int(query / queries * 10000)
    for bound, divisor in _SCHEDULE:
        if it <= bound:
            return p_init / divisor
    return p_init / 512


def _rings(h: int, w: int, device: torch.device) -> Tensor:
    """Centre-weighted pattern: nested rectangles with weights 1 / (k + 1)^2, unit L2 norm."""
    out = torch.zeros(h, w, device=device)
    top, left = h // 2, w // 2
    for k in range(max(h // 2 + 1, w // 2 + 1)):
        out[max(top - k, 0) : min(top + k + 1, h), max(left - k, 0) : min(left + k + 1, w)] += 1.0 / (k + 1) ** 2
    return out / out.norm()


def l2_pattern(s: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """An s x s pattern: +rings on one half, -rings on the other, randomly transposed (unit norm)."""
    pattern = torch.cat([_rings(s // 2, s, device), -_rings(s - s // 2, s, device)])
    if torch.rand((), generator=generator, device=device) > 0.5:
        pattern = pattern.T
    return pattern / pattern.norm()


@dataclass(frozen=True)
class Square(Attack):
    """Square Attack (Andriushchenko et al. 2020), Linf and L2, untargeted, on the margin loss.

    Defaults: `queries=5000` forward passes per point and run (AutoAttack's budget), `p_init=0.8`
    (the window's initial share of the pixels, shrunk on the paper's schedule), one run
    (`restarts=1`; a later run searches only the points still robust). It needs no gradients and
    always searches in fp32, also with `bf16=True`.
    """

    name: ClassVar[str] = "square"
    queries: int = 5000
    p_init: float = 0.8
    restarts: int = 1

    def __post_init__(self) -> None:
        if self.queries < 1 or self.restarts < 1:
            raise ValueError(f"queries and restarts must be >= 1, got {self.queries}, {self.restarts}")
        if not 0 < self.p_init <= 1:
            raise ValueError(f"p_init must be in (0, 1], got {self.p_init}")

    def _perturb(self, oracle: Oracle, x: Tensor, y: Tensor, threat: Threat, generator: torch.Generator) -> Tensor:
        if threat.eps == 0:
            return x.clone()
        # Always fp32, also under `bf16=True`: the search keeps a change only when the margin goes
        # down, and bf16 rounding (~0.5% of the logit range) hides the small steps it lives on. On
        # 5,000 test images of the robust checkpoint, Square in bf16 broke 30 points that the white-box
        # attacks had not, in fp32 54 (the official code 48); experiments/journal.md, "AutoAttack on a GPU".
        oracle = oracle.exact()
        runs = (
            lambda index: self._run(oracle.view(index), x[index], y[index], threat, generator)
            for _ in range(self.restarts)
        )
        return on_robust_points(oracle, x, y, runs)

    def _run(self, oracle: Oracle, x: Tensor, y: Tensor, threat: Threat, g: torch.Generator) -> tuple[Tensor, Tensor]:
        x_best = self._init(x, threat, g)
        logits = oracle.logits(x_best)
        loss = margin(logits, y).neg()  # the margin loss: > 0 while the point is classified right
        found = oracle.fooled(x_best, y, logits)  # decided in fp32 even when the search runs in bf16
        for query in range(self.queries):
            active = (~found).nonzero().squeeze(1)
            if len(active) == 0:
                break
            p = window_fraction(self.p_init, query, self.queries)
            x_new = self._propose(x[active], x_best[active], p, threat, g)
            on_active = oracle.view(active)
            logits = on_active.logits(x_new)
            new_loss = margin(logits, y[active]).neg()
            better = (new_loss < loss[active]).nonzero().squeeze(1)  # only a lower loss is kept
            improved = active[better]
            x_best[improved], loss[improved] = x_new[better], new_loss[better]
            found[improved] = on_active.view(better).fooled(x_new[better], y[improved], logits[better])
        return x_best, found

    def _init(self, x: Tensor, threat: Threat, g: torch.Generator) -> Tensor:
        b, c, h, w = x.shape
        if threat.norm == "linf":  # vertical stripes of +-eps
            signs = _signs((b, c, 1, w), g, x)
            return (x + threat.eps * signs).clamp(*threat.bounds)
        s = h // 5
        start = (h - 5 * s) // 2
        delta = torch.zeros_like(x)
        for top in range(start, start + 5 * s, s):  # a 5 x 5 grid of +-pattern tiles
            for left in range(start, start + 5 * s, s):
                delta[..., top : top + s, left : left + s] += l2_pattern(s, g, x.device) * _signs((b, c, 1, 1), g, x)
        return (x + threat.eps * threat.ops.unit(delta)).clamp(*threat.bounds)

    def _propose(self, x: Tensor, x_best: Tensor, p: float, threat: Threat, g: torch.Generator) -> Tensor:
        b, c, h, w = x.shape
        s = min(max(round((p * h * w) ** 0.5), 1), h)
        if threat.norm == "linf":
            top, left = _corner(h, w, s, g, x.device)
            x_new = x_best.clone()
            x_new[..., top : top + s, left : left + s] += 2 * threat.eps * _signs((b, c, 1, 1), g, x)
            return threat.project(x, x_new)
        s = max(s, 3) + (1 - max(s, 3) % 2)  # odd, >= 3
        s = min(s, h - 1)
        return self._propose_l2(x, x_best, s, threat, g)

    def _propose_l2(self, x: Tensor, x_best: Tensor, s: int, threat: Threat, g: torch.Generator) -> Tensor:
        b, c, h, w = x.shape
        delta = x_best - x
        (t1, l1), (t2, l2) = _corner(h, w, s, g, x.device), _corner(h, w, s, g, x.device)
        window = delta[..., t1 : t1 + s, l1 : l1 + s]
        window_norm = window.flatten(2).norm(dim=2).view(b, c, 1, 1)
        mask = torch.zeros_like(x)
        mask[..., t1 : t1 + s, l1 : l1 + s] = 1
        mask[..., t2 : t2 + s, l2 : l2 + s] = 1
        free = (threat.eps**2 - threat.ops.size(delta).view(b, 1, 1, 1) ** 2).clamp_min(0) / c  # (B, 1, 1, 1)
        mass = (free + (delta * mask).flatten(2).pow(2).sum(2).view(b, c, 1, 1)).sqrt()  # per channel
        new = l2_pattern(s, g, x.device) * _signs((b, c, 1, 1), g, x) + window / window_norm.clamp_min(1e-12)
        new = new / new.flatten(2).norm(dim=2).view(b, c, 1, 1).clamp_min(1e-12) * mass
        delta = delta.clone()
        delta[..., t2 : t2 + s, l2 : l2 + s] = 0
        delta[..., t1 : t1 + s, l1 : l1 + s] = new
        return (x + threat.eps * threat.ops.unit(delta)).clamp(*threat.bounds)


def _signs(shape: tuple[int, ...], g: torch.Generator, like: Tensor) -> Tensor:
    return torch.randint(0, 2, shape, generator=g, device=like.device).to(like.dtype) * 2 - 1


def _corner(h: int, w: int, s: int, g: torch.Generator, device: torch.device) -> tuple[int, int]:
    top = int(torch.randint(0, h - s + 1, (), generator=g, device=device))
    left = int(torch.randint(0, w - s + 1, (), generator=g, device=device))
    return top, left
