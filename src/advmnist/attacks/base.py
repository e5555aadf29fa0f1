"""The attack contract, enforced once here so no attack can forget it.

An attack holds hyperparameters, never a model. `Attack.__call__` / `Attack.sweep` validate the
inputs, put the model in eval mode and freeze its weights (both restored in `finally`, also when the
attack raises), run the subclass's `_perturb`, project onto the eps-ball and clamp to the bounds,
check the norm bound, compute success under `no_grad` in fp32, and count forward/backward passes.
These entry points (and `generate`) are final: a subclass that defines one is refused when it is
created, so every attack, a cascade's members included, goes through the same checks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, final

import torch
from torch import nn

from advmnist.attacks.norms import Threat
from advmnist.attacks.oracle import Oracle, verdict_from_pred
from advmnist.precision import use_bf16

Tensor = torch.Tensor
_NORM_TOLERANCE = 1e-6
FINAL = ("__call__", "sweep", "generate")  # the contract's entry points: no subclass may override them


@dataclass(frozen=True)
class AttackResult:
    """Adversarial points and what they did. `success[i]` is `pred[i] != y[i]` (targeted: `== targets[i]`).

    Filled by the attack, never passed by a user: `queries` (per-point forward passes; None where
    they cannot be attributed), `broken_by` (cascades: the attack that fooled each point first; None
    otherwise) and `norm_found` (minimum-norm attacks: each point's smallest adversarial norm, inf
    where none was found; None otherwise).
    """

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
    """Search under bf16 autocast (default False: fp32); whether a point is fooled is always decided in fp32."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = [name for name in FINAL if name in vars(cls)]
        if overridden:
            raise TypeError(
                f"{cls.__name__} overrides {', '.join(overridden)}: the entry points of the attack contract "
                "are final; implement _perturb (or _perturb_sweep) instead"
            )

    @final
    def __call__(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        threat: Threat,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        targets: Tensor | None = None,
    ) -> AttackResult:
        """Attack (x, y) within `threat`. Random draws come from `generator` if given, else from a
        new generator seeded with `seed` (default 0); the result records that seed."""
        if not isinstance(threat, Threat):
            raise TypeError(f"threat must be a Threat, got {type(threat).__name__}")
        return self.sweep(model, x, y, threat, [threat.eps], seed=seed, generator=generator, targets=targets)[0]

    @final
    def sweep(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        threat: Threat,
        epsilons: Sequence[float],
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        targets: Tensor | None = None,
    ) -> list[AttackResult]:
        """Attack the same points at several budgets (sharing work where the attack allows)."""
        self._check_inputs(model, x, y, threat, targets)
        threats = [threat.with_eps(float(eps)) for eps in epsilons]
        generator, seed = _random_stream(x, seed, generator)
        with eval_mode(model):
            x = x.detach()
            raw = self._perturb_sweep(model, x, y, threats, generator, targets)
            return [
                self._finish(oracle, x, y, t, x_adv, seed, targets)
                for t, (oracle, x_adv) in zip(threats, raw, strict=True)
            ]

    @final
    def generate(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        threat: Threat,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        targets: Tensor | None = None,
    ) -> Tensor:
        """Only the adversarial points (same contract, no success check): for training loops."""
        self._check_inputs(model, x, y, threat, targets)
        generator, _ = _random_stream(x, seed, generator)
        with eval_mode(model):
            x = x.detach()
            x_adv = self._perturb_sweep(model, x, y, [threat], generator, targets)[0][1]
            return self._project(x, x_adv, threat)[0]

    def settings(self) -> dict[str, Any]:
        """The attack's name and hyperparameters, JSON-able: tuples become lists, and attacks held
        as settings (a cascade's members) become their own `settings()`, names included."""
        return {"name": self.name, **{f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}}

    def shares_sweep(self) -> bool:
        """True when one search serves every eps of a sweep (the evaluation then calls it once)."""
        return False

    def _oracle(self, model: nn.Module) -> Oracle:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        return Oracle(model, torch.bfloat16 if use_bf16(self.bf16, device) else None)

    def _new_oracle(self, model: nn.Module, x: Tensor, targets: Tensor | None = None) -> Oracle:
        return self._oracle(model).reset(len(x), x.device, targets)

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
        x_adv = threat.project(x, x_adv.detach())
        distance = threat.ops.distance(x_adv, x)
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
            success=verdict_from_pred(pred, y, targets),
            distance=distance,
            threat=threat,
            seed=seed,
            forwards=oracle.forwards + 1,
            backwards=oracle.backwards,
            queries=None if queries is None else queries + 1,
            broken_by=tuple(broken_by) if isinstance(broken_by, (list, tuple)) else None,
            norm_found=norm_found if isinstance(norm_found, Tensor) else None,
        )


def _random_stream(x: Tensor, seed: int | None, generator: torch.Generator | None) -> tuple[torch.Generator, int]:
    """The generator of a call and the seed to record: the caller's generator (its initial seed),
    or a new one on x's device seeded with `seed` (0 by default)."""
    if generator is None:
        seed = 0 if seed is None else seed
        return torch.Generator(device=x.device).manual_seed(seed), seed
    if seed is not None:
        raise ValueError("pass seed or generator, not both")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != x.device.type:
        raise ValueError(f"the generator is on {generator.device} but x is on {x.device}")
    return generator, generator.initial_seed()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Attack):
        return value.settings()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value
