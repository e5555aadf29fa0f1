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

# What the UI offers -> (registry name, the norms it takes, what "steps" sets)
ATTACKS: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "FGSM": ("fgsm", ("linf", "l2"), None),
    "PGD": ("pgd", ("linf", "l2"), "steps"),
    "APGD-CE": ("apgd-ce", ("linf", "l2"), "steps"),
    "CW-L2": ("cw-l2", ("l2",), "steps"),
    "Square": ("square", ("linf", "l2"), "queries"),
}
MAX_STEPS = 1000
NORM_NAMES = {"linf": "Linf", "l2": "L2"}


@dataclass(frozen=True)
class Outcome:
    """One model's result on one image."""

    model: str
    label: int  # the class the attack moves away from (the true label, or the clean prediction)
    probs_before: np.ndarray  # (10,)
    probs_after: np.ndarray  # (10,)
    success: bool
    distance: float  # the perturbation's size in the attack's norm
    seconds: float
    x_adv: np.ndarray  # (28, 28) in [0, 1]

    @property
    def pred_before(self) -> int:
        return int(self.probs_before.argmax())

    @property
    def pred_after(self) -> int:
        return int(self.probs_after.argmax())


def check_request(attack: str, norm: str, eps: float, steps: int) -> str:
    """The registry name of a valid request; `ValueError` with a one-line reason otherwise."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; choose from {', '.join(ATTACKS)}")
    name, norms, _ = ATTACKS[attack]
    if norm not in norms:
        raise ValueError(f"{attack} works in {' or '.join(NORM_NAMES[n] for n in norms)}, not {norm}")
    limit = 1.0 if norm == "linf" else 28.0
    if not 0 < eps <= limit:
        raise ValueError(f"eps must be in (0, {limit:g}] for {NORM_NAMES[norm]}, got {eps}")
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be in [1, {MAX_STEPS}], got {steps}")
    return name


def attack_image(
    models: dict[str, nn.Module],
    image: np.ndarray,
    label: int | None,
    attack: str,
    norm: str,
    eps: float,
    steps: int,
    *,
    seed: int = 0,
) -> list[Outcome]:
    """Attack a (28, 28) image in [0, 1] on every model; untargeted, away from `label` (None: each
    model's own clean prediction, for a drawn digit nobody labelled)."""
    name = check_request(attack, norm, eps, steps)
    knob = ATTACKS[attack][2]
    settings = {knob: int(steps)} if knob else {}
    x = torch.as_tensor(np.asarray(image, dtype=np.float32)).reshape(1, 1, 28, 28).clamp(0, 1)
    outcomes = []
    for model_name, model in models.items():
        model.eval()
        with torch.no_grad():
            before = model(x).softmax(1)[0]
        y = torch.tensor([int(before.argmax()) if label is None else int(label)])
        start = time.perf_counter()
        result = create_attack(name, **settings)(model, x, y, Threat(norm, float(eps)), seed=seed)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            after = model(result.x_adv).softmax(1)[0]
        outcomes.append(
            Outcome(
                model=model_name,
                label=int(y[0]),
                probs_before=before.numpy(),
                probs_after=after.numpy(),
                success=bool(result.success[0]),
                distance=float(result.distance[0]),
                seconds=seconds,
                x_adv=result.x_adv[0, 0].numpy(),
            )
        )
    return outcomes


def summary_markdown(outcomes: list[Outcome], attack: str, norm: str, eps: float) -> str:
    """A markdown table: one row per model."""
    rows = [
        f"| {o.model} | {o.pred_before} ({o.probs_before.max():.0%}) | {o.pred_after} ({o.probs_after.max():.0%}) | "
        f"{'**yes**' if o.success else 'no'} | {o.distance:.3f} | {o.seconds:.2f} s |"
        for o in outcomes
    ]
    head = (
        f"**{attack}, {NORM_NAMES[norm]} eps {eps:g}**\n\n"
        f"| model | before | after | fooled | {NORM_NAMES[norm]} norm | time |\n|:--|--:|--:|:-:|--:|--:|\n"
    )
    return head + "\n".join(rows)


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
