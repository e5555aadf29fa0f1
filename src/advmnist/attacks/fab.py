"""FAB, the Fast Adaptive Boundary attack (Croce & Hein, ICML 2020): minimally distorted adversarials.

FAB walks along the decision boundary instead of climbing a loss. At the iterate x_k it linearises
the logit differences f_j - f_y, takes the hyperplane of the nearest one (untargeted) or of the
target (targeted), and projects both x_k and the clean point x onto it inside the box. The next
iterate mixes the two projections, overshooting by `eta`, with weight at most `alpha_max` on the
one from x: that pull towards x is what keeps the perturbation small. Whenever an iterate is
adversarial it is kept if it is the smallest so far and pulled back towards x by `beta`, so the
search goes on shrinking it. Under a threat a point counts as broken when the smallest adversarial
found lies within eps; restarts (random starts at eps / 2 around x) and target classes run only on
the points still robust, as in AutoAttack.

Differences from the official code (same robust accuracy, less work): the check of a new iterate
and the gradient for the next step share one forward pass where the iterate is expected not to be
adversarial; a point leaves a run as soon as it is broken at eps (`early_stop`); and without
restarts one search serves every eps of a sweep, since the run then does not depend on eps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import torch

from advmnist.attacks.minnorm import MinNormAttack
from advmnist.attacks.norms import Threat
from advmnist.attacks.oracle import Oracle, Run, on_robust_points

Tensor = torch.Tensor


def project_onto_hyperplane(t: Tensor, w: Tensor, c: Tensor, norm: str, bounds: tuple[float, float]) -> Tensor:
    """The smallest step d (Linf or L2) onto the hyperplane c + <w, d> = 0 with t + d inside the box.

    t, w: (n, D); c: (n,), the value at t of the affine function whose zero set is the hyperplane,
    row by row. Where the box does not reach the hyperplane, d goes to the corner of the box closest
    to it. With the signs flipped so that c >= 0, every coordinate moves against the sign of its
    weight, by at most `room` before it meets the box. A step of size lam lowers c + <w, d> by
    h(lam) = sum_i |w_i| min(lam, room_i) under Linf (each coordinate moves by min(lam, room_i)) and
    by h(lam) = sum_i w_i^2 min(lam, room_i / |w_i|) under L2 (it moves by |w_i| min(lam, room_i /
    |w_i|)). Either way h is increasing, concave and piecewise linear with a kink at each
    coordinate's limit; `_solve` finds the lam with h(lam) = c. Coordinates with no weight stay put.
    """
    low, high = bounds
    w = torch.where((c < 0).unsqueeze(1), -w, w)
    room = torch.where(w > 0, t - low, high - t)  # (n, D)
    live = w != 0 if norm == "linf" else w.abs() > 1e-8
    size = w.abs()
    weight = torch.where(live, size if norm == "linf" else size.square(), 0.0)
    kink = torch.where(live, room if norm == "linf" else room / size.clamp_min(1e-8), 0.0)
    lam = _solve(weight, kink, c.abs().unsqueeze(1))  # (n, 1), inf where the box cannot reach
    move = torch.minimum(lam if norm == "linf" else lam * size, room)  # (n, D), never past the box
    return torch.where(live, -w.sign() * move, 0.0)


def _solve(weight: Tensor, kink: Tensor, c: Tensor, newton_steps: int = 8) -> Tensor:
    """The lam >= 0 with sum_i weight_i min(lam, kink_i) = c per row (inf where c is out of reach).

    Newton's method from lam = 0: h is concave, so each tangent step lands at or below the root, and
    a step that crosses no kink lands exactly on it. On FAB's problems that takes 2 to 4 steps,
    against a sort of every row; rows that need more than `newton_steps` are solved by sorting.
    """
    lam, h = torch.zeros_like(c), torch.zeros_like(c)  # (n, 1)
    slope = torch.where(kink > 0, weight, 0.0).sum(1, keepdim=True)
    done = torch.zeros_like(c, dtype=torch.bool)
    for _ in range(newton_steps):
        gap = c - h
        lam_next = lam + torch.where(gap > 0, gap / slope, 0.0)  # gap > 0 with no slope left: inf
        h = (weight * torch.minimum(kink, lam_next)).sum(1, keepdim=True)
        slope_next = torch.where(kink > lam_next, weight, 0.0).sum(1, keepdim=True)
        done = (slope_next == slope) | torch.isinf(lam_next)  # no kink crossed: exact
        lam, slope = lam_next, slope_next
        if done.all():
            return lam
    rest = (~done).squeeze(1).nonzero().squeeze(1)
    lam[rest] = _solve_sorted(weight[rest], kink[rest], c[rest])
    return lam


def _solve_sorted(weight: Tensor, kink: Tensor, c: Tensor) -> Tensor:
    """`_solve` by sorting the kinks: h at every kink from two cumulative sums, then its segment's line."""
    kinks, order = kink.sort(dim=1)
    weights = weight.gather(1, order)
    below_w = weights.cumsum(1)  # (n, D): weight of the coordinates saturated at each kink
    below_wr = (weights * kinks).cumsum(1)
    total = below_w[:, -1:]
    h = below_wr + kinks * (total - below_w)  # (n, D): h at each kink, non-decreasing
    passed = (h < c).sum(1, keepdim=True)  # (n, 1): kinks below the solution
    zero = torch.zeros_like(c)
    prev_w = torch.cat([zero, below_w], 1).gather(1, passed)
    prev_wr = torch.cat([zero, below_wr], 1).gather(1, passed)
    lam = (c - prev_wr) / (total - prev_w).clamp_min(1e-30)
    return torch.where(passed == kink.shape[1], math.inf, lam)  # out of reach: all the way to the box


def _differences(logits: Tensor, y: Tensor, targets: Tensor | None) -> Tensor:
    """f_j - f_y for the target j (n, 1), or for every class j != y (n, classes - 1)."""
    own = logits.gather(1, y.unsqueeze(1))
    if targets is not None:
        return logits.gather(1, targets.unsqueeze(1)) - own
    classes = torch.arange(logits.shape[1], device=y.device).expand(len(y), -1)
    others = classes[classes != y.unsqueeze(1)].view(len(y), -1)  # (n, classes - 1)
    return logits.gather(1, others) - own


def _take(t: Tensor | None, idx: Tensor) -> Tensor | None:
    return None if t is None else t[idx]


@dataclass
class _State:
    """One FAB run; every tensor has the run's points as its first dimension."""

    x_k: Tensor  # (n, C, H, W) the iterate
    diff: Tensor  # (n, M) logit differences at x_k: M = 1 targeted, classes - 1 untargeted
    jac: Tensor  # (n, M, C, H, W) their gradients at x_k
    was_adv: Tensor  # (n,) bool: the last check found the iterate adversarial
    norm: Tensor  # (n,) the smallest adversarial norm found, inf while none
    x_adv: Tensor  # (n, C, H, W) that adversarial point (x while none)


@dataclass(frozen=True)
class FAB(MinNormAttack):
    """Untargeted FAB (Croce & Hein 2020), Linf and L2, with the official settings.

    `steps=100` iterations, `alpha_max=0.1`, `eta=1.05` (overshoot), `beta=0.9` and `restarts=1`,
    the defaults of the official class (AutoAttack's "plus" version runs it with 5 restarts); the
    first run starts at x, later ones at
    random points at distance eps / 2. An iteration costs a forward pass for the check and one
    forward and one backward pass per other class for the gradients. `early_stop=False` keeps
    minimising the norm of points already broken at eps, as the official code does (same robust
    accuracy, slower, and then `norm_found` is the smallest norm the whole search found).
    """

    name: ClassVar[str] = "fab"
    steps: int = 100
    restarts: int = 1
    alpha_max: float = 0.1
    eta: float = 1.05
    beta: float = 0.9
    early_stop: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1 or self.restarts < 1:
            raise ValueError(f"steps and restarts must be >= 1, got {self.steps}, {self.restarts}")
        if not 0 <= self.alpha_max <= 1 or not self.eta > 0 or not 0 < self.beta <= 1:
            raise ValueError(
                f"need 0 <= alpha_max <= 1, eta > 0, 0 < beta <= 1, got {self.alpha_max}, {self.eta}, {self.beta}"
            )

    def shares_sweep(self) -> bool:
        return self.restarts == 1  # without random starts a run does not depend on eps, only where it stops

    def _perturb_sweep(
        self,
        model: torch.nn.Module,
        x: Tensor,
        y: Tensor,
        threats: list[Threat],
        generator: torch.Generator,
        targets: Tensor | None = None,  # refused by the base: these attacks are untargeted
    ) -> list[tuple[Oracle, Tensor]]:
        """One search for all budgets, stopping at the smallest positive eps, where it is exact.

        A point broken at that eps is broken at every larger one; any other point runs every
        target exactly as a search at a larger eps would, so each budget gets the result its own
        search would give. Random restarts start at eps / 2, so with them each budget searches alone.
        """
        if not self.shares_sweep():
            return [self._search_once(model, x, y, [t], t, generator)[0] for t in threats]
        positive = [t for t in threats if t.eps > 0]
        stop = min(positive, key=lambda t: t.eps) if positive else threats[0]
        return self._search_once(model, x, y, threats, stop, generator)

    def _search_once(
        self, model: torch.nn.Module, x: Tensor, y: Tensor, threats: list[Threat], stop: Threat, g: torch.Generator
    ) -> list[tuple[Oracle, Tensor]]:
        oracle = self._new_oracle(model, x)
        x_adv, norm = self._checked_search(oracle, x, y, stop, g)
        oracle.notes["norm_found"] = norm
        return [(oracle, x_adv) for _ in threats]

    def _search(self, oracle: Oracle, x: Tensor, y: Tensor, threat: Threat, generator: torch.Generator) -> Tensor:
        """The smallest adversarial point per point over every run (x where none was found)."""
        if threat.eps == 0:
            return x.clone()
        logits = oracle.logits(x)  # (B, classes) at the clean points: the targets and M
        outputs = 1 if self._targeted else logits.shape[1] - 1
        best_norm = torch.full((len(x),), math.inf, device=x.device, dtype=x.dtype)
        x_best = x.clone()

        def run(targets: Tensor | None, random_start: bool, index: Tensor) -> tuple[Tensor, Tensor]:
            s = self._run(
                oracle.view(index), x[index], y[index], _take(targets, index), threat, outputs, generator, random_start
            )
            better = s.norm < best_norm[index]
            best_norm[index[better]], x_best[index[better]] = s.norm[better], s.x_adv[better]
            return s.x_adv, s.norm <= threat.eps

        def runs() -> Iterator[Run]:
            for targets in self._target_sets(logits):
                for restart in range(self.restarts):
                    yield partial(run, targets, restart > 0)

        on_robust_points(oracle, x, y, runs())
        return x_best

    @property
    def _targeted(self) -> bool:
        return False

    def _target_sets(self, logits: Tensor) -> list[Tensor | None]:
        return [None]

    def _run(
        self,
        oracle: Oracle,
        x: Tensor,
        y: Tensor,
        targets: Tensor | None,
        threat: Threat,
        outputs: int,
        generator: torch.Generator,
        random_start: bool,
    ) -> _State:
        """One FAB run on the given points."""
        s = self._start(oracle, x, y, targets, threat, outputs, generator, random_start)
        for i in range(self.steps):
            done = (s.norm <= threat.eps) & self.early_stop
            active = (~done).nonzero().squeeze(1)
            if len(active) == 0:
                break
            self._step(s, x, active, threat)
            self._check(oracle, s, x, y, targets, active, threat, last=i == self.steps - 1)
        return s

    def _start(
        self,
        oracle: Oracle,
        x: Tensor,
        y: Tensor,
        targets: Tensor | None,
        threat: Threat,
        outputs: int,
        generator: torch.Generator,
        random_start: bool,
    ) -> _State:
        """The first iterate (x, or a random point at distance eps / 2) and the gradients there."""
        x_k = x.clone()
        if random_start:
            ops = threat.ops
            x_k = (x + ops.rescale(ops.random_direction(x, generator), 0.5 * threat.eps)).clamp(*threat.bounds)
        n = len(x)
        s = _State(
            x_k=x_k,
            diff=x.new_zeros(n, outputs),
            jac=x.new_zeros(n, outputs, *x.shape[1:]),
            was_adv=torch.zeros(n, dtype=torch.bool, device=x.device),
            norm=torch.full((n,), math.inf, device=x.device, dtype=x.dtype),
            x_adv=x.clone(),
        )
        every = torch.arange(n, device=x.device)
        self._record(oracle, s, x, every, self._gradients(oracle, s, every, y, targets), y, threat)  # may fool
        return s

    def _gradients(self, oracle: Oracle, s: _State, idx: Tensor, y: Tensor, targets: Tensor | None) -> Tensor:
        """The differences and their gradients at the iterates idx, into s; returns the logits there."""
        if len(idx) == 0:  # no pass over an empty batch: it would count as one
            return s.diff.new_zeros(0, 0)
        y_i, t_i = y[idx], _take(targets, idx)
        outputs = s.diff.shape[1]
        logits, grad = oracle.view(idx).logits_grad(s.x_k[idx], lambda z, _: _differences(z, y_i, t_i), outputs)
        s.diff[idx] = _differences(logits, y_i, t_i)
        s.jac[idx] = grad.unsqueeze(1) if outputs == 1 else grad
        return logits

    def _step(self, s: _State, x: Tensor, idx: Tensor, threat: Threat) -> None:
        """Move the iterates idx to the next FAB point (from the differences and gradients at x_k)."""
        n, norm = len(idx), threat.norm
        x0, x_k = x[idx].flatten(1), s.x_k[idx].flatten(1)  # (n, D)
        diff, jac = s.diff[idx], s.jac[idx].flatten(2)  # (n, M), (n, M, D)
        rows = torch.arange(n, device=x.device)
        nearest = torch.zeros_like(rows)  # targeted: the one boundary
        if diff.shape[1] > 1:  # untargeted: the closest linearised boundary, |f_j - f_y| / ||grad||_dual
            dual = jac.abs().sum(2) if norm == "linf" else jac.norm(dim=2)  # (n, M)
            nearest = (diff.abs() / (dual + 1e-12)).argmin(1)
        w, c_k = jac[rows, nearest], diff[rows, nearest]  # (n, D), (n,): the boundary is c_k + <w, z - x_k> = 0
        c_0 = c_k + (w * (x0 - x_k)).sum(1)  # its affine function at the clean point
        t, ww, c = torch.cat([x_k, x0]), torch.cat([w, w]), torch.cat([c_k, c_0])
        d = project_onto_hyperplane(t, ww, c, norm, threat.bounds)  # (2n, D)
        d_k, d_0 = d[:n], d[n:]  # from the iterate and from the clean point
        size = threat.ops.size
        size_k, size_0 = size(d_k).clamp_min(1e-8), size(d_0).clamp_min(1e-8)
        alpha = (size_k / (size_k + size_0)).clamp(0, self.alpha_max).unsqueeze(1)  # (n, 1)
        x_next = (x_k + self.eta * d_k) * (1 - alpha) + (x0 + self.eta * d_0) * alpha
        s.x_k[idx] = x_next.clamp(*threat.bounds).view(-1, *x.shape[1:])

    def _check(
        self,
        oracle: Oracle,
        s: _State,
        x: Tensor,
        y: Tensor,
        targets: Tensor | None,
        idx: Tensor,
        threat: Threat,
        last: bool,
    ) -> None:
        """Check the new iterates idx, pull the adversarial ones back, get the gradients for the next step.

        Targeted, a gradient is one backward pass: an iterate whose last check was not adversarial
        (the usual case) is checked by the same forward pass that gives its next gradient; if it
        turns out adversarial that gradient is at the wrong point and is taken again after the
        pull-back. Untargeted, a gradient costs a forward and backward pass per class, too much to
        gamble: a plain forward pass checks first, as in the official code.
        """
        fuse = ~s.was_adv[idx] & (targets is not None) & (not last)
        fused, plain = idx[fuse], idx[~fuse]
        hit_fused = fused[self._record(oracle, s, x, fused, self._gradients(oracle, s, fused, y, targets), y, threat)]
        hit_plain = plain[self._record(oracle, s, x, plain, self._logits(oracle, s, plain), y, threat)]
        hit = torch.cat([hit_fused, hit_plain])
        s.was_adv[idx] = False
        s.was_adv[hit] = True
        s.x_k[hit] = x[hit] + self.beta * (s.x_k[hit] - x[hit])
        if not last:
            stale = torch.cat([plain, hit_fused])
            # the forward pass of a gradient is a free check: a pulled-back point may fool as well
            self._record(oracle, s, x, stale, self._gradients(oracle, s, stale, y, targets), y, threat)

    @staticmethod
    def _logits(oracle: Oracle, s: _State, idx: Tensor) -> Tensor:
        if len(idx) == 0:  # no pass over an empty batch: it would count as one
            return s.diff.new_zeros(0, 0)
        return oracle.view(idx).logits(s.x_k[idx])

    def _record(
        self, oracle: Oracle, s: _State, x: Tensor, idx: Tensor, logits: Tensor, y: Tensor, threat: Threat
    ) -> Tensor:
        """Keep the adversarial iterates among idx that are the smallest so far; returns which fooled.

        The verdict steers the walk (adversarial iterates are pulled back) and comes from the search's
        precision. Under bf16 a point within eps is only called adversarial on an fp32 verdict
        (`Oracle.fooled`): that is what breaks it. FAB's iterates sit on the boundary, so checking
        every one in fp32 would cost a pass per iteration; beyond eps a bf16 record only guides the
        search, and `confirm` checks the final point in fp32 before any norm is reported.
        """
        if len(idx) == 0:  # no pass over an empty batch: it would count as one
            return idx.new_zeros(0, dtype=torch.bool)
        adv = logits.argmax(1) != y[idx]
        norm = threat.ops.distance(s.x_k[idx], x[idx])  # (n,)
        if oracle.autocast is not None:
            within = (norm <= threat.eps).nonzero().squeeze(1)
            rows = idx[within]
            adv[within] = oracle.view(rows).fooled(s.x_k[rows], y[rows], logits[within])
        hit = adv.nonzero().squeeze(1)
        smaller = hit[norm[hit] < s.norm[idx[hit]]]
        s.norm[idx[smaller]], s.x_adv[idx[smaller]] = norm[smaller], s.x_k[idx[smaller]]
        return adv


@dataclass(frozen=True)
class FABT(FAB):
    """Targeted FAB (Croce & Hein 2020), once per target among the `n_targets` most likely other
    classes at the clean point, one run each (`restarts=1`; AutoAttack's FAB-T: 9 targets). An
    iteration costs one forward and one backward pass, plus a forward pass after an adversarial
    iterate. The other settings are FAB's (`steps`, `alpha_max`, `eta`, `beta`, `early_stop`)."""

    name: ClassVar[str] = "fab-t"
    restarts: int = 1
    n_targets: int = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_targets < 1:
            raise ValueError(f"n_targets must be >= 1, got {self.n_targets}")

    @property
    def _targeted(self) -> bool:
        return True

    def _target_sets(self, logits: Tensor) -> list[Tensor | None]:
        ranked = logits.argsort(dim=1, descending=True)  # (B, classes)
        n = min(self.n_targets, ranked.shape[1] - 1)
        # rank 0 is the predicted class (= y for the points attacked): targets are ranks 1..n
        return [ranked[:, r] for r in range(1, n + 1)]
