"""How well a detector does: ROC AUC against attacks that ignore it, and accuracy against one that does not.

Rates are the project's proportion objects (`value`, the count as `correct`, `n` and a 95%
Clopper-Pearson interval). "Accuracy with the detector" counts a point as safe when its attacked
image is classified correctly or flagged. The threshold is calibrated on clean images held out from
the evaluated ones, and the clean false-positive rate is measured again on the evaluated images.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from advmnist.attacks import Attack, Threat, create_attack, eval_mode
from advmnist.defenses.squeeze import FeatureSqueezing, adaptive_attack
from advmnist.evaluation.stats import accuracy

Tensor = torch.Tensor
ROC_POINTS = 101  # at most this many points of each ROC curve go into the results


def roc_auc(scores_clean: Any, scores_adv: Any) -> tuple[float, np.ndarray, np.ndarray]:
    """Exact ROC AUC and curve of "adversarial scores higher", from two 1-d score arrays.

    AUC = P(s_adv > s_clean) + P(s_adv == s_clean) / 2 (the Mann-Whitney U over m * n). The curve
    flags `score >= t` for every distinct score t from the highest down: (fpr, tpr) arrays from
    (0, 0) to (1, 1); its trapezoid area equals the AUC.
    """
    clean, adv = _scores(scores_clean, "clean"), _scores(scores_adv, "adversarial")
    values, inverse, counts = np.unique(np.concatenate([clean, adv]), return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # 1-based ranks, ties share their average
    m, n = len(adv), len(clean)
    auc = (ranks[n:].sum() - m * (m + 1) / 2) / (m * n)
    clean_hits = np.bincount(inverse[:n], minlength=len(values))[::-1]  # per distinct score, highest first
    adv_hits = np.bincount(inverse[n:], minlength=len(values))[::-1]
    fpr = np.concatenate([[0.0], np.cumsum(clean_hits) / n])
    tpr = np.concatenate([[0.0], np.cumsum(adv_hits) / m])
    return float(auc), fpr, tpr


def _scores(scores: Any, what: str) -> np.ndarray:
    array = np.asarray(scores.detach().cpu() if isinstance(scores, Tensor) else scores, dtype=np.float64).ravel()
    if len(array) == 0:
        raise ValueError(f"need at least one {what} score")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} scores must be finite")
    return array


def evaluate_detector(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    attacks: Sequence[str | Attack] = ("fgsm", "pgd"),
    *,
    fpr: float = 0.05,
    seed: int = 0,
    calibration: tuple[Tensor, Tensor] | None = None,
    detector: FeatureSqueezing | None = None,
    adaptive_steps: int = 100,
) -> dict[str, Any]:
    """Calibrate on `calibration` (clean images, never the evaluated ones), then attack `x` at Linf `eps`.

    Each attack in `attacks` ignores the detector; the adaptive attack always runs last and targets
    classifier and detector together. Its accuracy with the detector, and the per-point worst case
    over all attacks, are the numbers that measure the defense (`verdict`).
    """
    if calibration is None:
        raise ValueError("calibration=(x_cal, y_cal) is required: clean images held out from the evaluated ones")
    detector = detector or FeatureSqueezing()
    threshold = detector.calibrate(model, calibration[0], fpr)
    calibration_flags = detector.score(model, calibration[0]) > threshold
    clean_scores = detector.score(model, x)
    correct = _predict(model, x, detector.batch_size) == y
    flagged = clean_scores > threshold
    rows, safe = [], torch.ones_like(correct)
    for attack in [create_attack(a) if isinstance(a, str) else a for a in attacks]:
        start = time.perf_counter()
        x_adv = torch.cat(
            [attack(model, xb, yb, Threat("linf", eps), seed=seed).x_adv for xb, yb in _batches(x, y, detector)]
        )
        pred, scores = _predict(model, x_adv, detector.batch_size), detector.score(model, x_adv)
        row, ok = _row(attack.name, pred, scores, y, correct, clean_scores, threshold)
        rows.append({**row, "settings": _settings(attack), "seconds": time.perf_counter() - start})
        safe &= ok
    row, ok = _adaptive_row(model, detector, x, y, eps, threshold, adaptive_steps, seed, correct, clean_scores)
    rows.append(row)
    safe &= ok
    worst = accuracy(int(safe.sum()), len(y))
    return {
        "detector": {"name": "feature-squeezing", "bits": detector.bits, "median": detector.median},
        "norm": "linf",
        "eps": eps,
        "fpr_target": fpr,
        "seed": seed,
        "threshold": threshold,
        "n": len(y),
        "calibration": {
            "n": len(calibration[0]),
            "false_positive_rate": accuracy(int(calibration_flags.sum()), len(calibration_flags)),
        },
        "clean": {
            "accuracy": accuracy(int(correct.sum()), len(y)),
            "false_positive_rate": accuracy(int(flagged.sum()), len(y)),
            "correct_and_accepted": accuracy(int((correct & ~flagged).sum()), len(y)),
        },
        "attacks": rows,
        "worst_case_accuracy_with_detector": worst,
        "verdict": _verdict(rows, worst, eps),
    }


def _adaptive_row(
    model: nn.Module,
    detector: FeatureSqueezing,
    x: Tensor,
    y: Tensor,
    eps: float,
    threshold: float,
    steps: int,
    seed: int,
    correct: Tensor,
    clean_scores: Tensor,
) -> tuple[dict[str, Any], Tensor]:
    """The adaptive attack (BPDA on classifier + detector together): its row, and the points left safe."""
    start = time.perf_counter()
    parts = [
        adaptive_attack(model, detector, xb, yb, eps, threshold, steps=steps, seed=seed)
        for xb, yb in _batches(x, y, detector)
    ]
    pred, scores = torch.cat([p.pred for p in parts]), torch.cat([p.score for p in parts])
    row, ok = _row("adaptive", pred, scores, y, correct, clean_scores, threshold)
    settings = {**_defaults(adaptive_attack), "steps": steps, "bpda": "bit depth rounding as the identity"}
    return {**row, "adaptive": True, "settings": settings, "seconds": time.perf_counter() - start}, ok


def _row(
    name: str,
    pred: Tensor,
    scores: Tensor,
    y: Tensor,
    correct: Tensor,
    clean_scores: Tensor,
    threshold: float,
) -> tuple[dict[str, Any], Tensor]:
    """One attack's numbers, and which points stayed safe (classified right, or flagged)."""
    n = len(y)
    wrong, flagged = pred != y, scores > threshold
    broken = wrong & correct  # successful adversarial examples: the clean image was classified right
    caught = int((broken & flagged).sum())
    auc, fpr, tpr = roc_auc(clean_scores, scores[broken]) if broken.any() else (None, np.zeros(0), np.zeros(0))
    safe = ~wrong | flagged
    row = {
        "attack": name,
        "adaptive": False,
        "robust_accuracy": accuracy(int((~wrong).sum()), n),
        "successful": int(broken.sum()),
        "auc": auc,
        "detection_rate": accuracy(caught, int(broken.sum())) if broken.any() else None,
        "evasion_rate": accuracy(int((wrong & ~flagged).sum()), n),
        "accuracy_with_detector": accuracy(int(safe.sum()), n),
        "roc": _downsample(fpr, tpr),
    }
    return row, safe


def _verdict(rows: list[dict[str, Any]], worst: dict[str, Any], eps: float) -> str:
    adaptive, others = rows[-1]["accuracy_with_detector"], rows[:-1]
    text = (
        f"Only the adaptive number counts: an attacker who knows the detector (BPDA through the bit-depth "
        f"squeezer) leaves {adaptive['value']:.1%} [{adaptive['ci_low']:.1%}, {adaptive['ci_high']:.1%}] accuracy "
        f"with the detector at Linf eps {eps:g}; the per-point worst case over all attacks is {worst['value']:.1%}."
    )
    higher = [r for r in others if r["accuracy_with_detector"]["value"] > adaptive["value"]]
    lower = [r for r in others if r["accuracy_with_detector"]["value"] < adaptive["value"]]
    if higher:
        listed = ", ".join(f"{r['attack']} {r['accuracy_with_detector']['value']:.1%}" for r in higher)
        text += f" Attacks that ignore the detector ({listed}) overstate what it buys."
    if lower:
        listed = ", ".join(r["attack"] for r in lower)
        text += f" The adaptive attack did worse than {listed}: it is too weak here, so trust the worst case."
    return text


def _settings(attack: Attack) -> dict[str, Any]:
    return {k: v for k, v in attack.settings().items() if k != "name"}


def _predict(model: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    with eval_mode(model), torch.no_grad():
        return torch.cat([model(chunk).argmax(1) for chunk in x.split(batch_size)])


def _batches(x: Tensor, y: Tensor, detector: FeatureSqueezing) -> list[tuple[Tensor, Tensor]]:
    return list(zip(x.split(detector.batch_size), y.split(detector.batch_size), strict=True))


def _defaults(fn: Any) -> dict[str, Any]:
    """The keyword-only settings of `fn` and their defaults (sequences as lists, for JSON)."""
    params = inspect.signature(fn).parameters.values()
    return {
        p.name: list(p.default) if isinstance(p.default, tuple) else p.default
        for p in params
        if p.kind is p.KEYWORD_ONLY and p.name != "seed"
    }


def _downsample(fpr: np.ndarray, tpr: np.ndarray, points: int = ROC_POINTS) -> dict[str, list[float]]:
    """At most `points` points of a curve, evenly spaced along it, first and last kept."""
    if len(fpr) > points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, points).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr]}
