"""The model as an attack sees it: counted logits and input gradients, decided in fp32.

`Oracle` counts every forward and backward pass, per batch and per point, and under a bf16 search
re-checks in fp32 every verdict that bf16 could get wrong. `on_robust_points` is AutoAttack's
protocol for restarts, target classes and cascades: each run sees only the points still robust.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.func import functional_call

from advmnist.attacks.losses import LOSSES, margin

Tensor = torch.Tensor
RECHECK_BAND = 0.01  # bf16 search: fraction of the logit range within which fp32 re-checks a margin


class _Tally:
    """Counters shared by an oracle and its views."""

    def __init__(self, size: int, device: torch.device | None) -> None:
        self.forwards = 0
        self.backwards = 0
        self.queries: Tensor | None = torch.zeros(size, dtype=torch.long, device=device)
        self.notes: dict[str, object] = {}
        self.cast: dict[str, Tensor] | None = None  # the model's weights in the search precision, made once
        self.targets: Tensor | None = None  # targeted attacks: the class each point should reach


class Oracle:
    """The model as an attack sees it: counted logits and input gradients, nothing else.

    Gradients are taken with `torch.autograd.grad` with respect to the input only, so parameter
    `.grad` is never touched. `autocast` (e.g. `torch.bfloat16`) speeds up the search; whether a
    point is fooled is always decided in fp32 (`fooled`, `exact`), and the base class decides the
    final success in fp32 again.

    Per-point query counts: an attack that works on a subset of its batch asks for
    `oracle.view(index)` and calls that; every call then adds one query to exactly the points it
    saw. A call whose batch does not line up with the oracle's points makes the per-point counts
    unknown (`queries` becomes None) rather than wrong.
    """

    def __init__(self, model: nn.Module, autocast: torch.dtype | None = None) -> None:
        self.model = model
        self.autocast = autocast
        self.rows: Tensor | None = None  # for a view: the root batch's indices of its points
        self._tally = _Tally(0, None)

    def reset(self, size: int, device: torch.device, targets: Tensor | None = None) -> Oracle:
        """Start counting for a batch of `size` points (`targets`: each point's target class, if any)."""
        self._tally = _Tally(size, device)
        self._tally.targets = targets
        return self

    def view(self, index: Tensor) -> Oracle:
        """The same oracle restricted to points `index` of this oracle's batch (shared counters)."""
        sub = Oracle(self.model, self.autocast)
        sub._tally = self._tally
        sub.rows = index if self.rows is None else self.rows[index]
        return sub

    @property
    def targets(self) -> Tensor | None:
        """The target class of each of this oracle's points (None: untargeted)."""
        targets = self._tally.targets
        return targets if targets is None or self.rows is None else targets[self.rows]

    def exact(self) -> Oracle:
        """This oracle (same points, same counters) answering in fp32 whatever the search precision."""
        sub = Oracle(self.model, None)
        sub._tally, sub.rows = self._tally, self.rows
        return sub

    def fooled(self, x: Tensor, y: Tensor, logits: Tensor) -> Tensor:
        """Which points `logits` (this oracle's answer at x) fool, decided in fp32. (B,) bool.

        Fooled means misclassified, or for a targeted attack (`targets`) classified as the target.

        Under bf16 autocast a point's margin is off by up to ~0.5% of its logit range (measured on
        the seed CNN), so bf16 alone would stop some points that fp32 says are still robust, and
        those would then stay unbroken for good. Points whose bf16 margin lies within
        `RECHECK_BAND` of the logit range from the boundary get one fp32 forward pass (counted),
        and only that verdict counts; the others are robust by a margin bf16 cannot get wrong.
        """
        targets = self.targets
        if self.autocast is None:
            return verdict(logits, y, targets)
        span = logits.amax(1) - logits.amin(1)  # (B,)
        # distance to the verdict's boundary: the best other class against y, or the target against the rest
        gap = margin(logits, y) if targets is None else -margin(logits, targets)
        near = (gap >= -RECHECK_BAND * span).nonzero().squeeze(1)
        fooled = torch.zeros_like(y, dtype=torch.bool)
        if len(near):
            exact = self.exact().view(near)
            fooled[near] = verdict(exact.logits(x[near]), y[near], exact.targets)
        return fooled

    @property
    def forwards(self) -> int:
        return self._tally.forwards

    @property
    def backwards(self) -> int:
        return self._tally.backwards

    @property
    def queries(self) -> Tensor | None:
        return self._tally.queries

    @property
    def notes(self) -> dict[str, object]:
        """Per-call extras an attack records for its result (e.g. a cascade's `broken_by`)."""
        return self._tally.notes

    def charge(self, forwards: int, backwards: int, queries: Tensor | None) -> None:
        """Count passes made elsewhere on this oracle's points (by a cascade's member, say).

        `queries` (B,) are added to this oracle's points; None (counts not attributable) or a
        length that does not line up makes the per-point counts unknown, as a misaligned call does.
        """
        tally = self._tally
        tally.forwards += forwards
        tally.backwards += backwards
        if tally.queries is None:
            return
        size = len(tally.queries) if self.rows is None else len(self.rows)
        if queries is None or len(queries) != size:
            tally.queries = None
        elif self.rows is None:
            tally.queries += queries
        else:
            tally.queries[self.rows] += queries

    def _count(self, n: int) -> None:
        tally = self._tally
        tally.forwards += 1
        if tally.queries is None:
            return
        if self.rows is None and n == len(tally.queries):
            tally.queries += 1
        elif self.rows is not None and n == len(self.rows):
            tally.queries[self.rows] += 1
        else:
            tally.queries = None

    def _forward(self, x: Tensor, copies: int = 1) -> Tensor:
        for _ in range(copies):  # `copies` stacked copies of one batch: that many passes over it
            self._count(x.shape[0] // copies)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.autocast is None:
            return self.model(x)
        tally = self._tally
        if tally.cast is None:
            tally.cast = _cast_matmul_weights(self.model, self.autocast)
        with torch.autocast(device_type=x.device.type, dtype=self.autocast):
            return functional_call(self.model, tally.cast, (x,)).float()

    @torch.no_grad()
    def logits(self, x: Tensor) -> Tensor:
        return self._forward(x)

    def loss_grad(
        self, x: Tensor, y: Tensor, loss: str = "ce", targets: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample loss (B,), its gradient with respect to x, and the logits (fp32, detached)."""
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self._forward(x).float()
            per_sample = LOSSES[loss](logits, y, targets)
            (grad,) = torch.autograd.grad(per_sample.sum(), x)
        self._tally.backwards += 1
        return per_sample.detach(), grad.detach(), logits.detach()

    def logits_grad(self, x: Tensor, fn: Callable[[Tensor, Tensor], Tensor], outputs: int = 1) -> tuple[Tensor, Tensor]:
        """The fp32 logits at x and the gradient with respect to x of `fn(logits, x)`, fn row-wise.

        `outputs=1`: fn gives one value per point (B,) and the gradient is shaped like x. `outputs=K`:
        fn gives (B, K) and the result is the Jacobian (B, K, ...), computed on K stacked copies of
        the batch (copy j differentiates column j) in one forward and one backward pass over K * B
        points, which on a CPU is ~1.7x faster than K backward passes through one graph. Counted as
        K forward and K backward passes. Points do not interact in eval mode, so the gradient of a
        sum over the batch is each point's own gradient.
        """
        if outputs < 1:
            raise ValueError(f"outputs must be >= 1, got {outputs}")
        copies = x.detach().repeat(outputs, *([1] * (x.dim() - 1))).requires_grad_(True)  # (K * B, ...)
        with torch.enable_grad():
            logits = self._forward(copies, outputs).float()  # (K * B, classes)
            values = [fn(z, xj) for z, xj in zip(logits.chunk(outputs), copies.chunk(outputs), strict=True)]
            total = (
                values[0].sum() if outputs == 1 else torch.stack([v[:, j].sum() for j, v in enumerate(values)]).sum()
            )
            (grad,) = torch.autograd.grad(total, copies)
        self._tally.backwards += outputs
        if outputs > 1:
            grad = grad.view(outputs, *x.shape).transpose(0, 1)  # (B, K, ...)
        return logits[: len(x)].detach(), grad.detach()


def verdict(logits: Tensor, y: Tensor, targets: Tensor | None) -> Tensor:
    return verdict_from_pred(logits.argmax(1), y, targets)


def verdict_from_pred(pred: Tensor, y: Tensor, targets: Tensor | None) -> Tensor:
    return pred != y if targets is None else pred == targets


def _cast_matmul_weights(model: nn.Module, dtype: torch.dtype) -> dict[str, Tensor]:
    """The weights of the conv and linear layers cast to `dtype`, by their `state_dict` names.

    Autocast casts them on every call (~0.5 ms per forward pass of the seed CNN); passed in already
    cast, they go through as they are. Other layers (normalization, ...) keep their fp32 weights,
    as autocast expects.
    """
    cast = {}
    for prefix, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            for name, p in module.named_parameters(recurse=False):
                cast[f"{prefix}.{name}" if prefix else name] = p.to(dtype)
    return cast


Run = Callable[[Tensor], tuple[Tensor, Tensor]]  # indices of points still robust -> (points, fooled)


def on_robust_points(oracle: Oracle, x: Tensor, y: Tensor, runs: Iterable[Run]) -> Tensor:
    """Apply each run in turn only to the points no earlier run fooled (AutoAttack's protocol).

    Points misclassified at x are never attacked; every other point keeps what the last run that
    saw it returned. Used for restarts, target classes and cascades of attacks alike.
    """
    best = x.clone()
    todo = oracle.exact().logits(x).argmax(1) == y
    for run in runs:
        index = todo.nonzero().squeeze(1)
        if len(index) == 0:
            break
        x_adv, fooled = run(index)  # the run should call oracle.view(index)
        best[index] = x_adv
        todo[index] = ~fooled
    return best
