"""The attack contract, enforced once here so no attack can forget it.

An attack holds hyperparameters, never a model. `Attack.__call__` / `Attack.sweep` validate the
inputs, put the model in eval mode and freeze its weights (both restored in `finally`, also when the
attack raises), run the subclass's `_perturb`, project onto the eps-ball and clamp to the bounds,
check the norm bound, compute success under `no_grad` in fp32, and count forward/backward passes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn
from torch.func import functional_call

from advmnist.attacks.losses import LOSSES, margin
from advmnist.attacks.norms import Threat

Tensor = torch.Tensor
_NORM_TOLERANCE = 1e-6
RECHECK_BAND = 0.01  # bf16 search: fraction of the logit range within which fp32 re-checks a margin


@dataclass(frozen=True)
class AttackResult:
    """Adversarial points and what they did. `success[i]` is `pred[i] != y[i]` (targeted: `== targets[i]`)."""

    x_adv: Tensor  # (B, C, H, W) in bounds, within eps of x
    pred: Tensor  # (B,) argmax of the fp32 logits at x_adv
    success: Tensor  # (B,) bool
    distance: Tensor  # (B,) perturbation size in the threat's norm
    threat: Threat
    seed: int
    forwards: int  # forward passes over the batch, counted per image-batch call
    backwards: int
    queries: Tensor | None = None  # (B,) forward passes that included each point; None if not attributable
    broken_by: tuple[str | None, ...] | None = None  # cascades: the first attack that fooled each point
    norm_found: Tensor | None = None  # (B,) minimum-norm attacks: smallest adversarial norm found (inf: none)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode, frozen weights and channels_last conv weights inside; all restored after.

    Frozen weights spare autograd the weight gradients; channels_last weights let oneDNN use its
    fastest convolution kernels (the values of every tensor stay the same).
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    weights = [(p, p.data) for p in model.parameters() if p.dim() == 4]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        for p, data in weights:
            # `.to`, not `.contiguous`: a (out, 1, kH, kW) weight passes as contiguous in both formats,
            # and only real channels_last strides make oneDNN keep the first conv's output channels_last
            p.data = data.to(memory_format=torch.channels_last)
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)
        for p, data in weights:
            p.data = data


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

    def reset(self, size: int, device: torch.device) -> Oracle:
        """Start counting for a batch of `size` points."""
        self._tally = _Tally(size, device)
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
            return _verdict(logits, y, targets)
        span = logits.amax(1) - logits.amin(1)  # (B,)
        # distance to the verdict's boundary: the best other class against y, or the target against the rest
        gap = margin(logits, y) if targets is None else -margin(logits, targets)
        near = (gap >= -RECHECK_BAND * span).nonzero().squeeze(1)
        fooled = torch.zeros_like(y, dtype=torch.bool)
        if len(near):
            exact = self.exact().view(near)
            fooled[near] = _verdict(exact.logits(x[near]), y[near], exact.targets)
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


def _verdict(logits: Tensor, y: Tensor, targets: Tensor | None) -> Tensor:
    return _verdict_from_pred(logits.argmax(1), y, targets)


def _verdict_from_pred(pred: Tensor, y: Tensor, targets: Tensor | None) -> Tensor:
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


@dataclass(frozen=True)
class Attack:
    """Base class of every attack: subclasses implement `_perturb` (or `_perturb_sweep`).

    `bf16=True` runs the search under bf16 autocast (~2.5x faster forward and backward passes on a
    CPU); every decision that a point is fooled is still made in fp32 (`Oracle.fooled`).
    Attacks with `targetable` also take `targets=`: each point should then be classified as its
    target, and `success` means exactly that.
    """

    name: ClassVar[str] = "attack"
    norms: ClassVar[tuple[str, ...]] = ("linf", "l2")  # the threat norms the attack supports
    targetable: ClassVar[bool] = False  # accepts `targets=` (the gradient engine)
    bf16: bool = field(default=False, kw_only=True)

    def __call__(
        self, model: nn.Module, x: Tensor, y: Tensor, threat: Threat, *, seed: int = 0, targets: Tensor | None = None
    ) -> AttackResult:
        if not isinstance(threat, Threat):
            raise TypeError(f"threat must be a Threat, got {type(threat).__name__}")
        return self.sweep(model, x, y, threat, [threat.eps], seed=seed, targets=targets)[0]

    def sweep(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        threat: Threat,
        epsilons: Sequence[float],
        *,
        seed: int = 0,
        targets: Tensor | None = None,
    ) -> list[AttackResult]:
        """Attack the same points at several budgets (sharing work where the attack allows)."""
        self._check_inputs(model, x, y, threat, targets)
        threats = [threat.with_eps(float(eps)) for eps in epsilons]
        generator = torch.Generator(device=x.device).manual_seed(seed)
        with eval_mode(model):
            x = x.detach()
            raw = self._perturb_sweep(model, x, y, threats, generator, targets)
            return [
                self._finish(oracle, x, y, t, x_adv, seed, targets)
                for t, (oracle, x_adv) in zip(threats, raw, strict=True)
            ]

    def generate(
        self, model: nn.Module, x: Tensor, y: Tensor, threat: Threat, *, seed: int = 0, targets: Tensor | None = None
    ) -> Tensor:
        """Only the adversarial points (same contract, no success check): for training loops."""
        self._check_inputs(model, x, y, threat, targets)
        generator = torch.Generator(device=x.device).manual_seed(seed)
        with eval_mode(model):
            x = x.detach()
            x_adv = self._perturb_sweep(model, x, y, [threat], generator, targets)[0][1]
            return self._project(x, x_adv, threat)[0]

    def shares_sweep(self) -> bool:
        """True when one search serves every eps of a sweep (the evaluation then calls it once)."""
        return False

    def _oracle(self, model: nn.Module) -> Oracle:
        return Oracle(model, torch.bfloat16 if self.bf16 else None)

    def _new_oracle(self, model: nn.Module, x: Tensor, targets: Tensor | None = None) -> Oracle:
        oracle = self._oracle(model).reset(len(x), x.device)
        oracle._tally.targets = targets
        return oracle

    def _perturb(self, oracle: Oracle, x: Tensor, y: Tensor, threat: Threat, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def _perturb_sweep(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        threats: list[Threat],
        generator: torch.Generator,
        targets: Tensor | None = None,
    ) -> list[tuple[Oracle, Tensor]]:
        """One (oracle, raw adversarial points) per threat; by default an independent run each.

        An attack that shares work across budgets (FGSM's one gradient, a minimum-norm search)
        overrides this and returns the same oracle for every threat. `targets` reach `_perturb`
        as `oracle.targets`.
        """
        runs = []
        for t in threats:
            oracle = self._new_oracle(model, x, targets)
            runs.append((oracle, self._perturb(oracle, x, y, t, generator)))
        return runs

    def _check_inputs(
        self, model: nn.Module, x: Tensor, y: Tensor, threat: Threat, targets: Tensor | None = None
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(threat, Threat):
            raise TypeError(f"threat must be a Threat, got {type(threat).__name__}")
        if threat.norm not in self.norms:
            raise ValueError(f"{self.name} supports only {', '.join(self.norms)} threats, got {threat.norm!r}")
        if not torch.is_floating_point(x) or x.dim() < 2:
            raise ValueError(f"x must be a float tensor (B, ...), got {x.dtype} {tuple(x.shape)}")
        if y.dtype != torch.long or y.shape != x.shape[:1]:
            raise ValueError(f"y must be int64 of shape ({x.shape[0]},), got {y.dtype} {tuple(y.shape)}")
        if targets is not None:
            if not self.targetable:
                raise ValueError(f"{self.name} is untargeted; targets= works with fgsm, bim, pgd and mifgsm")
            if targets.dtype != torch.long or targets.shape != y.shape:
                raise ValueError(
                    f"targets must be int64 of shape ({len(y)},), got {targets.dtype} {tuple(targets.shape)}"
                )
            if bool((targets == y).any()):
                raise ValueError("every target must differ from its point's label")
        low, high = threat.bounds
        if x.numel() and (x.min() < low - _NORM_TOLERANCE or x.max() > high + _NORM_TOLERANCE):
            raise ValueError(f"x must lie in the bounds {threat.bounds}, got [{x.min():.4g}, {x.max():.4g}]")

    def _project(self, x: Tensor, x_adv: Tensor, threat: Threat) -> tuple[Tensor, Tensor]:
        """Project onto the eps-ball and clamp to the bounds; check the budget holds."""
        ops = threat.ops
        x_adv = (x + ops.project(x_adv.detach() - x, threat.eps)).clamp(*threat.bounds)
        distance = ops.distance(x_adv, x)
        if distance.numel() and distance.max() > threat.eps + _NORM_TOLERANCE:
            raise RuntimeError(f"{self.name}: perturbation {distance.max():.6g} exceeds eps {threat.eps}")
        return x_adv, distance

    def _finish(
        self,
        oracle: Oracle,
        x: Tensor,
        y: Tensor,
        threat: Threat,
        x_adv: Tensor,
        seed: int,
        targets: Tensor | None = None,
    ) -> AttackResult:
        x_adv, distance = self._project(x, x_adv, threat)
        fp32 = Oracle(oracle.model)
        pred = fp32.logits(x_adv).argmax(dim=1)
        queries = oracle.queries
        broken_by = oracle.notes.get("broken_by")
        norm_found = oracle.notes.get("norm_found")
        return AttackResult(
            x_adv=x_adv,
            pred=pred,
            success=_verdict_from_pred(pred, y, targets),
            distance=distance,
            threat=threat,
            seed=seed,
            forwards=oracle.forwards + 1,
            backwards=oracle.backwards,
            queries=None if queries is None else queries + 1,
            broken_by=tuple(broken_by) if isinstance(broken_by, (list, tuple)) else None,
            norm_found=norm_found if isinstance(norm_found, Tensor) else None,
        )
