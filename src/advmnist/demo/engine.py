"""What the demo does with one 28x28 image, without any UI: attack it on each model, measure, draw.

Kept apart from the Gradio app so it is tested directly, and so the app stays a thin layout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from advmnist.attacks import Threat, create_attack
from advmnist.demo.figure import render
from advmnist.errors import CheckpointError
from advmnist.models.pretrained import pretrained_path


@dataclass(frozen=True)
class Budget:
    """An attack's own budget control: what it is called, its default and the slider's range."""

    knob: str  # the attack's setting: "steps" or "queries"
    default: int
    low: int
    high: int
    step: int = 1


@dataclass(frozen=True)
class DemoAttack:
    """What the UI offers for one attack."""

    registry: str
    norms: tuple[str, ...]
    budget: Budget | None  # None: a single step (FGSM)
    targetable: bool  # takes a target class (the gradient engine: FGSM, PGD)


# Defaults chosen so that each attack fools the undefended baseline at the MNIST standard eps:
# Square needs ~1000 queries for that, CW-L2 its own 100 Adam steps per binary-search step.
ATTACKS: dict[str, DemoAttack] = {
    "FGSM": DemoAttack("fgsm", ("linf", "l2"), None, targetable=True),
    "PGD": DemoAttack("pgd", ("linf", "l2"), Budget("steps", 40, 1, 200), targetable=True),
    "APGD-CE": DemoAttack("apgd-ce", ("linf", "l2"), Budget("steps", 50, 1, 200), targetable=False),
    "CW-L2": DemoAttack("cw-l2", ("l2",), Budget("steps", 100, 10, 500, 10), targetable=False),
    "Square": DemoAttack("square", ("linf", "l2"), Budget("queries", 1000, 100, 5000, 100), targetable=False),
}
TARGETABLE = tuple(name for name, a in ATTACKS.items() if a.targetable)
NORM_NAMES = {"linf": "Linf", "l2": "L2"}


@dataclass(frozen=True)
class EpsRange:
    """The eps slider of one norm: its top and the MNIST standard budget (Madry et al.; Croce & Hein)."""

    high: float
    standard: float
    step: float


EPS = {"linf": EpsRange(0.5, 0.3, 0.01), "l2": EpsRange(5.0, 2.0, 0.05)}


@dataclass(frozen=True)
class Outcome:
    """One model's result on one image."""

    model: str
    label: int  # the class the attack moves away from (the true label, or the clean prediction)
    probs_before: np.ndarray  # (10,)
    probs_after: np.ndarray  # (10,)
    success: bool  # untargeted: predicted != label after; targeted: predicted == target
    distance: float  # the perturbation's size in the attack's norm
    seconds: float
    x_adv: np.ndarray  # (28, 28) in [0, 1]
    labelled: bool = False  # the label was given (by the user or the dataset), not the clean prediction
    target: int | None = None  # the class a targeted attack pulls towards

    @property
    def pred_before(self) -> int:
        return int(self.probs_before.argmax())

    @property
    def pred_after(self) -> int:
        return int(self.probs_after.argmax())


def check_request(attack: str, norm: str, eps: float, steps: int, target: int | None = None) -> str:
    """The registry name of a valid request; `ValueError` with a one-line reason otherwise."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; choose from {', '.join(ATTACKS)}")
    spec = ATTACKS[attack]
    if norm not in spec.norms:
        raise ValueError(f"{attack} works in {' or '.join(NORM_NAMES[n] for n in spec.norms)}, not {norm}")
    limit = 1.0 if norm == "linf" else 28.0
    if not 0 < eps <= limit:
        raise ValueError(f"eps must be in (0, {limit:g}] for {NORM_NAMES[norm]}, got {eps}")
    if spec.budget is not None and not 1 <= steps <= spec.budget.high:
        raise ValueError(f"{spec.budget.knob} must be in [1, {spec.budget.high}] for {attack}, got {steps}")
    if target is not None:
        if not spec.targetable:
            raise ValueError(f"{attack} is untargeted: choose {' or '.join(TARGETABLE)} to reach a class")
        if not 0 <= target <= 9:
            raise ValueError(f"the target must be a digit 0-9, got {target}")
    return spec.registry


def attack_image(
    models: dict[str, nn.Module],
    image: np.ndarray,
    label: int | None,
    attack: str,
    norm: str,
    eps: float,
    steps: int | None = None,
    *,
    target: int | None = None,
    seed: int = 0,
) -> list[Outcome]:
    """Attack a (28, 28) image in [0, 1] on every model: away from `label` (None: each model's own
    clean prediction, for a digit nobody labelled), or, with `target`, towards that class.
    `steps` sets the attack's budget (steps or queries; None: the demo's default for it)."""
    spec = ATTACKS.get(attack)
    if steps is None:
        steps = spec.budget.default if spec and spec.budget else 1
    name = check_request(attack, norm, eps, steps, target)
    if label is not None and target == label:
        raise ValueError(f"the target {target} is the true label: choose another class to reach")
    settings = {spec.budget.knob: int(steps)} if spec and spec.budget else {}
    x = torch.as_tensor(np.asarray(image, dtype=np.float32)).reshape(1, 1, 28, 28).clamp(0, 1)
    outcomes = []
    for model_name, model in models.items():
        model.eval()
        with torch.no_grad():
            before = model(x).softmax(1)[0]
        y = torch.tensor([int(before.argmax()) if label is None else int(label)])
        start = time.perf_counter()
        if target is not None and target == int(y[0]):  # unlabelled and already predicted as the target
            x_adv, success, distance = x, True, 0.0
        else:
            targets = None if target is None else torch.tensor([target])
            result = create_attack(name, **settings)(model, x, y, Threat(norm, float(eps)), seed=seed, targets=targets)
            x_adv, success, distance = result.x_adv, bool(result.success[0]), float(result.distance[0])
        seconds = time.perf_counter() - start
        with torch.no_grad():
            after = model(x_adv).softmax(1)[0]
        outcomes.append(
            Outcome(
                model=model_name,
                label=int(y[0]),
                probs_before=before.numpy(),
                probs_after=after.numpy(),
                success=success,
                distance=distance,
                seconds=seconds,
                x_adv=x_adv[0, 0].numpy(),
                labelled=label is not None,
                target=target,
            )
        )
    return outcomes


def summary_markdown(outcomes: list[Outcome], attack: str, norm: str, eps: float) -> str:
    """A markdown table, one row per model, under a line that says what "fooled" was measured against."""
    rows = [
        f"| {o.model} | {o.pred_before} ({o.probs_before.max():.0%}) | {o.pred_after} ({o.probs_after.max():.0%}) | "
        f"{'**yes**' if o.success else 'no'} | {o.distance:.3f} | {o.seconds:.2f} s |"
        for o in outcomes
    ]
    head = (
        f"**{attack}, {NORM_NAMES[norm]} eps {eps:g}**, {_measured_against(outcomes)}\n\n"
        f"| model | before | after | fooled | {NORM_NAMES[norm]} norm | time |\n|:--|--:|--:|:-:|--:|--:|\n"
    )
    notes = [
        f"\n\n{o.model} was already wrong before the attack (predicted {o.pred_before}, true label {o.label})."
        for o in outcomes
        if o.labelled and o.target is None and o.pred_before != o.label
    ]
    return head + "\n".join(rows) + "".join(notes)


def _measured_against(outcomes: list[Outcome]) -> str:
    first = outcomes[0] if outcomes else None
    if first is not None and first.target is not None:
        return f"targeted at {first.target}: fooled = the model now predicts {first.target}"
    if first is not None and first.labelled:
        return f"fooled = the prediction differs from the true label {first.label}"
    return "fooled = the prediction differs from each model's clean prediction (no true label given)"


def draw(image: np.ndarray, outcomes: list[Outcome], attack: str, norm: str, eps: float) -> bytes:
    """PNG: per model, a 2x2 block: original | adversarial over perturbation (colour scale) | class
    probabilities before/after; the models one under another, sized to stay legible on a phone."""
    return render(image, outcomes, f"{attack}, {NORM_NAMES[norm]} eps {eps:g}", NORM_NAMES[norm])


def default_model_paths() -> list[Path]:
    """The shipped robust checkpoint (`advmnist.pretrained_path()`), when this installation has it."""
    try:
        return [pretrained_path()]
    except CheckpointError:
        return []
