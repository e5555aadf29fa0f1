"""Robust accuracy of a model under an attack at several budgets, with per-sample rows.

A point counts as robust at eps when it is classified correctly both clean and after the attack.
Rows are appended to a JSONL file and flushed per batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from advmnist.attacks import Attack, Threat, create_attack
from advmnist.data.batches import iterate_batches
from advmnist.evaluation.checks import SAMPLE, post_checks, pre_checks
from advmnist.evaluation.epsilons import eps_label
from advmnist.evaluation.stats import accuracy
from advmnist.io import append_jsonl

Tensor = torch.Tensor


@dataclass
class EvalResult:
    attack: str
    norm: str
    n: int
    seed: int
    clean_accuracy: dict[str, Any]
    results: list[dict[str, Any]]
    seconds: float
    forwards: int = 0
    backwards: int = 0
    checks: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "norm": self.norm,
            "n": self.n,
            "seed": self.seed,
            "clean_accuracy": self.clean_accuracy,
            "results": self.results,
            "seconds": self.seconds,
            "forwards": self.forwards,
            "backwards": self.backwards,
            "checks": self.checks,
        }


def evaluate(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    attack: str | Attack = "fgsm",
    norm: str = "linf",
    epsilons: Sequence[float] = (2 / 255, 4 / 255, 8 / 255),
    labels: Sequence[str] | None = None,
    batch_size: int = 256,
    seed: int = 0,
    out: str | Path | None = None,
    progress: bool = False,
    checks: bool = True,
) -> EvalResult:
    """Attack every point at every eps; return accuracies with 95% Clopper-Pearson intervals.

    `out`, when given, receives one JSONL row per point: index, label, clean prediction and the
    adversarial prediction at each eps label. With `checks`, the sanity checks of
    `advmnist.evaluation.checks` run before and after and land in `EvalResult.checks`.
    """
    attack_obj = create_attack(attack) if isinstance(attack, str) else attack
    threat = Threat(norm, max(epsilons, default=0.0))
    labels = list(labels) if labels is not None else [eps_label(e) for e in epsilons]
    if len(labels) != len(epsilons):
        raise ValueError("labels and epsilons differ in length")
    device = next(model.parameters()).device
    clean_correct = 0
    robust = [0] * len(epsilons)
    max_dist = [0.0] * len(epsilons)
    rows: list[dict[str, Any]] = []
    forwards = backwards = 0
    start = time.perf_counter()
    found = pre_checks(model, x[:SAMPLE].to(device), y[:SAMPLE].to(device)) if checks else []
    batches = iterate_batches(x, y, batch_size)
    bar = tqdm(batches, total=-(-len(y) // batch_size), desc=f"{attack_obj.name}", disable=not progress, leave=False)
    for index, xb, yb in bar:
        xb, yb = xb.to(device), yb.to(device)
        results = attack_obj.sweep(model, xb, yb, threat, list(epsilons), seed=seed + int(index[0]))
        with torch.inference_mode():
            clean_pred = _predict(model, xb)
        ok = clean_pred == yb
        clean_correct += int(ok.sum())
        for i, r in enumerate(results):
            robust[i] += int((ok & ~r.success).sum())
            max_dist[i] = max(max_dist[i], float(r.distance.max()) if len(r.distance) else 0.0)
        forwards += results[-1].forwards + 1
        backwards += results[-1].backwards
        batch_rows = _rows(index, yb, clean_pred, results, labels)
        rows.extend(batch_rows)
        if out is not None:
            append_jsonl(out, batch_rows)
    n = len(y)
    if checks:
        fractions = [r / n for r in robust]
        found += post_checks(model, x[:SAMPLE].to(device), y[:SAMPLE].to(device), norm, list(epsilons), fractions)
    return EvalResult(
        attack=attack_obj.name,
        norm=norm,
        n=n,
        seed=seed,
        clean_accuracy=accuracy(clean_correct, n),
        results=[
            {
                "eps": float(e),
                "eps_label": label,
                "robust_accuracy": accuracy(robust[i], n),
                "attack_success_rate": (clean_correct - robust[i]) / n,
                f"max_{norm}": max_dist[i],
            }
            for i, (e, label) in enumerate(zip(epsilons, labels, strict=True))
        ],
        seconds=time.perf_counter() - start,
        forwards=forwards,
        backwards=backwards,
        checks=[c.to_dict() for c in found],
        rows=rows,
    )


def _predict(model: nn.Module, x: Tensor) -> Tensor:
    was_training = model.training
    model.eval()
    try:
        return model(x.contiguous(memory_format=torch.channels_last)).argmax(1)
    finally:
        model.train(was_training)


def _rows(
    index: Tensor, y: Tensor, clean_pred: Tensor, results: list[Any], labels: Sequence[str]
) -> list[dict[str, Any]]:
    preds = torch.stack([r.pred for r in results], dim=1).tolist() if results else [[] for _ in y]
    return [
        {"index": int(i), "label": int(t), "clean_pred": int(c), "adv_pred": dict(zip(labels, p, strict=True))}
        for i, t, c, p in zip(index.tolist(), y.tolist(), clean_pred.tolist(), preds, strict=True)
    ]
