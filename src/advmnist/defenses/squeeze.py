"""Feature squeezing (Xu et al. 2018): flag an image whose prediction moves when the image is squeezed.

The score of an image is the largest L1 distance between the softmax at x and the softmax at a
squeezed copy of x; the paper's MNIST setting squeezes to 1-bit depth and with a 2x2 median filter.
An image scoring above a threshold calibrated on clean images is flagged as adversarial.

A detector is only as good as the best attack that knows about it. `adaptive_attack` is that
attack: PGD on the classifier and the detector together, with the rounding of the bit-depth
squeezer differentiated as the identity (BPDA, Athalye et al. 2018) and the median filter as it is.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from advmnist.attacks import Threat, create_attack, eval_mode
from advmnist.attacks.losses import margin

Tensor = torch.Tensor
Squeezer = Callable[[Tensor], Tensor]


def bit_depth(x: Tensor, bits: int) -> Tensor:
    """Round every pixel to the nearest of 2^bits evenly spaced levels in [0, 1] (1 bit: 0 or 1)."""
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    levels = 2**bits - 1
    return torch.round(x * levels) / levels  # round half to even, like the paper's np.rint


def median_smooth(x: Tensor, size: int) -> Tensor:
    """The median of each size x size window of x (B, C, H, W); the edges repeat the border pixels.

    The window is placed like scipy's `median_filter` (its centre at offset size // 2, so a 2x2
    window covers the pixel and its upper-left neighbours) and an even window takes the upper of
    its two middle values, as scipy does. For size <= 3 the replicated border is exactly scipy's
    'reflect' mode, which the paper's code uses; for larger sizes it is scipy's 'nearest'.
    """
    if size < 2:
        raise ValueError(f"median window size must be >= 2, got {size}")
    if x.dim() != 4:
        raise ValueError(f"x must be (B, C, H, W), got {tuple(x.shape)}")
    b, c, h, w = x.shape
    before, after = size // 2, size - 1 - size // 2
    padded = F.pad(x, (before, after, before, after), mode="replicate")
    windows = F.unfold(padded, size).view(b, c, size * size, h * w)  # (B, C, size^2, H*W)
    return windows.kthvalue(size * size // 2 + 1, dim=2).values.view(b, c, h, w)


def _straight_through(squeeze: Squeezer) -> Squeezer:
    """BPDA: the squeezer's value in the forward pass, the identity's gradient in the backward pass."""
    return lambda x: x + (squeeze(x) - x).detach()


def l1_score(logits: Tensor) -> Tensor:
    """(1 + S, B, K) logits at x and at S squeezed copies -> (B,) largest L1 distance of the softmaxes."""
    probs = logits.softmax(dim=-1)
    return (probs[1:] - probs[:1]).abs().sum(dim=-1).amax(dim=0)


@dataclass(frozen=True)
class FeatureSqueezing:
    """The detector: `bits`-bit depth and a `median` x `median` filter (None switches one off).

    The defaults are the paper's MNIST setting. Scores are computed in eval mode without gradients,
    `batch_size` images at a time.
    """

    bits: int | None = 1
    median: int | None = 2
    batch_size: int = 500

    def __post_init__(self) -> None:
        if self.bits is None and self.median is None:
            raise ValueError("feature squeezing needs at least one squeezer (bits or median)")
        if self.bits is not None and not 1 <= self.bits <= 8:
            raise ValueError(f"bits must be in 1..8, got {self.bits}")
        if self.median is not None and self.median < 2:
            raise ValueError(f"median window size must be >= 2, got {self.median}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def squeezers(self, *, straight_through: bool = False) -> list[Squeezer]:
        """The squeezers in use; `straight_through` gives bit depth the identity's gradient (BPDA)."""
        out: list[Squeezer] = []
        if self.bits is not None:
            depth = partial(bit_depth, bits=self.bits)
            out.append(_straight_through(depth) if straight_through else depth)
        if self.median is not None:
            out.append(partial(median_smooth, size=self.median))
        return out

    def branch_logits(self, model: nn.Module, x: Tensor, *, straight_through: bool = False) -> Tensor:
        """(1 + S, B, K): the logits at x and at each squeezed copy, in one forward pass (caller sets the mode)."""
        views = [x, *(squeeze(x) for squeeze in self.squeezers(straight_through=straight_through))]
        return model(torch.cat(views)).float().view(len(views), len(x), -1)

    def score(self, model: nn.Module, x: Tensor) -> Tensor:
        """(B,) the detector score of each image: max over squeezers of L1(softmax(x), softmax(squeezed x))."""
        with eval_mode(model), torch.no_grad():
            return torch.cat([l1_score(self.branch_logits(model, chunk)) for chunk in x.split(self.batch_size)])

    def calibrate(self, model: nn.Module, x_clean: Tensor, fpr: float = 0.05) -> float:
        """The threshold that flags at most a fraction `fpr` of `x_clean` (exactly floor(fpr * n) if scores differ).

        It is the ceil((1 - fpr) n)-th smallest clean score; `detect` flags scores strictly above it.
        Calibrate on clean images held out from the ones you evaluate.
        """
        if not 0 < fpr < 1:
            raise ValueError(f"fpr must be in (0, 1), got {fpr}")
        if len(x_clean) < 1:
            raise ValueError("need at least one clean image to calibrate on")
        scores = self.score(model, x_clean).sort().values
        allowed = math.floor(fpr * len(scores) + 1e-9)  # clean images allowed above the threshold
        return float(scores[len(scores) - allowed - 1])

    def detect(self, model: nn.Module, x: Tensor, threshold: float) -> Tensor:
        """(B,) bool: True where the image is flagged as adversarial (score > threshold)."""
        return self.score(model, x) > threshold


@dataclass(frozen=True)
class AdaptiveResult:
    """What the adaptive attack found. `evaded[i]`: misclassified and not flagged, checked by `score`."""

    x_adv: Tensor  # (B, C, H, W) in [0, 1], within eps of x (Linf)
    pred: Tensor  # (B,) the classifier's prediction at x_adv
    score: Tensor  # (B,) the detector's score at x_adv
    evaded: Tensor  # (B,) bool


def adaptive_attack(
    model: nn.Module,
    detector: FeatureSqueezing,
    x: Tensor,
    y: Tensor,
    eps: float,
    threshold: float,
    *,
    steps: int = 100,
    rel_step_size: float = 0.05,
    lams: Sequence[float] = (0.1, 1.0, 10.0),
    kappa: float = 10.0,
    seed: int = 0,
) -> AdaptiveResult:
    """Linf PGD against the classifier and the detector together: succeed = misclassified and score <= threshold.

    Each step ascends `sum_b min(margin_b, kappa) - lam * score`, where margin_b is the logit margin
    of the wrong classes over y at x and at each squeezed copy (BPDA through the rounding) and
    `score` the detector's score: every view is pushed to a wrong class and the views are pulled to
    agree, which is what lowers the score. (Pushing every view, not only x, made the attack several
    times stronger than `CE(x) - lam * score` in our tests.) Two runs per `lam` in `lams` (the step
    halved after 50% and 75% of the steps), each on the points no earlier run broke: one from a random
    start, one from where PGD on the classifier alone (same steps) ended, a misclassified point the
    run then drags past the detector. A point keeps its first successful iterate, else its last. The
    verdict is recomputed with `detector.score`, so it is exactly what `detect` would say.
    """
    threat = Threat("linf", eps)
    if not torch.is_floating_point(x) or x.dim() != 4 or y.dtype != torch.long or y.shape != x.shape[:1]:
        raise ValueError(f"need x (B, C, H, W) float and y (B,) int64, got {tuple(x.shape)} and {y.dtype}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"x must lie in [0, 1], got [{x.min():.4g}, {x.max():.4g}]")
    if steps < 1 or not rel_step_size > 0 or not lams or not math.isfinite(threshold):
        raise ValueError(
            f"need steps >= 1, rel_step_size > 0, some lams, a finite threshold; got {steps}, "
            f"{rel_step_size}, {tuple(lams)}, {threshold}"
        )
    generator = torch.Generator(device=x.device).manual_seed(seed)
    x = x.detach()
    with eval_mode(model):
        with torch.no_grad():
            logits = detector.branch_logits(model, x)
        best = x.clone()
        found = (logits[0].argmax(1) != y) & (l1_score(logits) <= threshold)  # fooled without an attack
        classifier_only = _classifier_pgd(model, x, y, threat, steps, seed) if eps > 0 else x
        for lam, warm in itertools.product(lams if eps > 0 else (), (False, True)):
            todo = (~found).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            start = classifier_only[todo] if warm else None
            best[todo], found[todo] = _run(
                model, detector, x[todo], y[todo], threat, threshold, lam, steps, rel_step_size, kappa, generator, start
            )
        x_adv = (x + (best - x).clamp(-eps, eps)).clamp(0, 1)
        score = detector.score(model, x_adv)
        with torch.no_grad():
            pred = torch.cat([model(chunk).argmax(1) for chunk in x_adv.split(detector.batch_size)])
    return AdaptiveResult(x_adv=x_adv, pred=pred, score=score, evaded=(pred != y) & (score <= threshold))


def _classifier_pgd(model: nn.Module, x: Tensor, y: Tensor, threat: Threat, steps: int, seed: int) -> Tensor:
    """Where PGD on the classifier alone (cross-entropy, random start) ends: the warm starts."""
    return create_attack("pgd", steps=steps)(model, x, y, threat, seed=seed).x_adv.detach()


def _run(
    model: nn.Module,
    detector: FeatureSqueezing,
    x: Tensor,
    y: Tensor,
    threat: Threat,
    threshold: float,
    lam: float,
    steps: int,
    rel_step_size: float,
    kappa: float,
    generator: torch.Generator,
    start: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One PGD run with weight `lam` from `start` (default: random); returns each point's first successful
    iterate (else its last) and success."""
    eps = threat.eps
    x_adv = start.clone() if start is not None else (x + threat.ops.random_init(x, eps, generator)).clamp(0, 1)
    found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for step in range(steps + 1):
        active = (~found).nonzero().squeeze(1)  # the search shrinks to the points not yet successful
        if len(active) == 0:
            break
        x_active = x_adv[active].requires_grad_(True)
        with torch.enable_grad():
            logits = detector.branch_logits(model, x_active, straight_through=True)  # (1 + S, A, K)
            score = l1_score(logits)
            y_views = y[active].repeat(len(logits))
            margins = margin(logits.flatten(0, 1), y_views).view(len(logits), -1)  # (1 + S, A)
            loss = margins.clamp(max=kappa).sum(0) - lam * score
            (grad,) = torch.autograd.grad(loss.sum(), x_active)
        found[active] = (margins[0] > 0).detach() & (score.detach() <= threshold)
        if step == steps:
            break  # the last iterate was only checked
        move = ~found[active]
        active, grad = active[move], grad[move]
        size = rel_step_size * eps * 0.5 ** ((step >= steps // 2) + (step >= 3 * steps // 4))
        stepped = x_adv[active] + size * grad.sign()
        x_adv[active] = (x[active] + threat.ops.project(stepped - x[active], eps)).clamp(0, 1)
    return x_adv, found
