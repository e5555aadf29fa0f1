"""Sanity checks before and after a robustness evaluation (in the spirit of AutoAttack's flags).

A robust accuracy means little when the attack could not work: a model left in train mode,
outputs that are already probabilities, inputs outside the box, gradients that are zero or NaN
(gradient masking, e.g. an input-quantization layer), accuracy that rises with eps, or an
attack that cannot break anything even with an unbounded budget. Each check reports what it
measured and why it matters; a failed check does not stop the evaluation, it flags it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advmnist.attacks import PGD, Threat, eval_mode

Tensor = torch.Tensor
SAMPLE = 64  # points used by the checks that need gradients or extra attacks


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    measured: str
    why: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def pre_checks(model: nn.Module, x: Tensor, y: Tensor) -> list[Check]:
    """Checks on the model and the data, before any attack."""
    x, y = x[:SAMPLE], y[:SAMPLE]
    with eval_mode(model), torch.no_grad():
        first, second = model(x), model(x)
    in_unit = bool((first >= 0).all() and (first <= 1).all())
    looks_like_probs = in_unit and bool(torch.allclose(first.sum(1), torch.ones_like(first[:, 0]), atol=1e-3))
    return [
        Check(
            "deterministic in eval mode",
            torch.equal(first, second),
            f"max |difference| between two forward passes: {(first - second).abs().max():.3g}",
            "randomness at test time (dropout left on, noise layers) makes attacks and accuracy unreliable",
        ),
        Check(
            "outputs are logits",
            not looks_like_probs,
            "outputs in [0, 1] summing to 1" if looks_like_probs else "unnormalized scores",
            "attacks need logits: probabilities saturate the cross-entropy gradient and hide vulnerabilities",
        ),
        Check(
            "inputs in [0, 1]",
            bool(x.min() >= 0 and x.max() <= 1),
            f"range [{x.min():.3g}, {x.max():.3g}]",
            "the threat model is defined on pixels in [0, 1]; normalization belongs inside the model",
        ),
        _gradient_check(model, x, y),
    ]


def _gradient_check(model: nn.Module, x: Tensor, y: Tensor) -> Check:
    with eval_mode(model), torch.enable_grad():
        x_req = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_req), y, reduction="sum"), x_req)
    finite = bool(torch.isfinite(grad).all())
    zero = (grad.flatten(1).abs().amax(1) == 0).float().mean().item()
    return Check(
        "input gradients informative",
        finite and zero <= 0.1,
        f"{zero:.0%} of {len(x)} points have an all-zero gradient" + ("" if finite else "; NaN/inf present"),
        "zero or NaN gradients (gradient masking, e.g. input quantization) make gradient attacks fail "
        "without the model being robust",
    )


def monotone_check(epsilons: Sequence[float], robust: Sequence[float], attack: str = "") -> Check:
    """Robust accuracy must not rise with eps."""
    order = sorted(range(len(epsilons)), key=lambda i: epsilons[i])
    rises = [
        f"{robust[a]:.2%} at {epsilons[a]:g} < {robust[b]:.2%} at {epsilons[b]:g}"
        for a, b in zip(order, order[1:], strict=False)
        if robust[b] > robust[a]
    ]
    return Check(
        "robust accuracy does not rise with eps" + (f" ({attack})" if attack else ""),
        not rises,
        "; ".join(rises) if rises else "non-increasing",
        "a larger ball contains the smaller one: a rise means the attack is failing, not the model succeeding",
    )


def post_checks(
    model: nn.Module, x: Tensor, y: Tensor, norm: str, epsilons: Sequence[float], robust: Sequence[float]
) -> list[Check]:
    """Checks on the results: monotone in eps, and an unbounded budget breaks (almost) everything."""
    return [monotone_check(epsilons, robust), unbounded_check(model, x, y, norm)]


# Attacks in increasing strength: a later tier must leave no more points robust than an earlier one.
TIERS: tuple[tuple[str, ...], ...] = (("fgsm",), ("bim", "pgd", "mifgsm"), ("autoattack", "cascade"))
WHITE_BOX = ("pgd", "bim", "mifgsm", "apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "autoattack", "cascade")
SLACK = 0.002  # 0.2 pp: different random starts may differ on a point or two


def cross_attack_checks(results: Sequence[tuple[str, Sequence[dict[str, Any]]]]) -> list[Check]:
    """clean >= FGSM >= PGD >= AutoAttack, and a black-box attack never beating the white-box ones."""
    robust = {name: {r["eps_label"]: r["robust_accuracy"]["value"] for r in rows} for name, rows in results}
    tier = {name: t for t, names in enumerate(TIERS) for name in names}
    ranked = sorted((name for name in robust if name in tier), key=tier.__getitem__)
    checks = []
    if len({tier[n] for n in ranked}) > 1:
        bad = [
            f"{strong} {robust[strong][e]:.2%} > {weak} {robust[weak][e]:.2%} at {e}"
            for weak in ranked
            for strong in ranked
            if tier[strong] > tier[weak]
            for e in robust[weak]
            if robust[strong][e] > robust[weak][e] + SLACK
        ]
        checks.append(
            Check(
                "stronger attacks find more: clean >= FGSM >= PGD >= AutoAttack",
                not bad,
                "; ".join(bad) if bad else " >= ".join(["clean", *ranked]) + " at every eps",
                "an iterative attack that does worse than a single step, or AutoAttack worse than PGD, "
                "means the gradients mislead the stronger attack (masking) or an attack is broken",
            )
        )
    checks += _black_box_checks(results, robust)
    return checks


def _black_box_checks(
    results: Sequence[tuple[str, Sequence[dict[str, Any]]]], robust: dict[str, dict[str, float]]
) -> list[Check]:
    why = (
        "a score-based attack that finds what gradient attacks miss means the gradients are masked: "
        "the white-box numbers overstate robustness"
    )
    checks = []
    white = [name for name in robust if name in WHITE_BOX]
    if "square" in robust and white:
        strongest = {e: min((robust[w][e], w) for w in white)[1] for e in robust["square"]}
        bad = [
            f"square {robust['square'][e]:.2%} < {w} {robust[w][e]:.2%} at {e}"
            for e, w in strongest.items()
            if robust["square"][e] < robust[w][e] - SLACK
        ]
        checks.append(Check("black-box (Square) not beating white-box", not bad, "; ".join(bad) or "it does not", why))
    for name, rows in results:
        found = {r["eps_label"]: r.get("broken_by", {}).get("square", 0) for r in rows}
        if name in ("autoattack", "cascade") and any(r.get("broken_by") for r in rows):
            last = [f"{count} point(s) at {e}" for e, count in found.items() if count]
            checks.append(
                Check(
                    f"{name}: Square breaks nothing the gradient attacks left",
                    not last,
                    "Square broke " + "; ".join(last) if last else "Square broke no point the gradient attacks left",
                    why,
                )
            )
    return checks


def unbounded_check(model: nn.Module, x: Tensor, y: Tensor, norm: str) -> Check:
    eps = 1.0 if norm == "linf" else float(x[0].numel()) ** 0.5  # the whole box
    result = PGD(steps=20, rel_step_size=0.1)(model, x, y, Threat(norm, eps), seed=0)
    left = 1 - result.success.float().mean().item()
    return Check(
        "an unbounded budget breaks every point",
        left <= 0.01,
        f"PGD-20 at {norm} eps {eps:g} leaves {left:.1%} of {len(x)} points correct",
        "with the whole input box allowed any image can be made into another class; "
        "if the attack cannot, it is blind (masked or broken gradients)",
    )
