"""The results of an evaluation as typed objects; `to_json()` gives the dicts of `eval_results.json`.

Results are built from the per-sample rows and the batch costs only (`summarize`), so a resumed
evaluation summarizes exactly like one that ran through, and anyone can recompute the summary
from `per_sample.jsonl`.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from advmnist.evaluation.checks import Check
from advmnist.evaluation.stats import Accuracy


@dataclass(frozen=True)
class EpsResult:
    """One attack at one budget: robust accuracy (95% CI), which attack broke the points, queries."""

    eps: float
    eps_label: str
    norm: str
    robust_accuracy: Accuracy
    attack_success_rate: float  # fraction of all points that were correct clean and broken
    max_norm: float  # the largest perturbation the attack returned, in the threat's norm
    broken_by: dict[str, int]  # attack (a cascade's member) -> points it broke first
    queries_total: int | None  # forward passes that included the points (None: not attributable)
    queries_median_broken: float | None
    norm_found_median: float | None = None  # minimum-norm attacks: median smallest norm found
    has_norm_found: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "eps": self.eps,
            "eps_label": self.eps_label,
            "robust_accuracy": self.robust_accuracy.to_json(),
            "attack_success_rate": self.attack_success_rate,
            f"max_{self.norm}": self.max_norm,
            "broken_by": dict(self.broken_by),
            "queries": {"total": self.queries_total, "median_broken": self.queries_median_broken},
        }
        if self.has_norm_found:
            out["norm_found_median"] = self.norm_found_median
        return out


@dataclass
class EvalResult:
    """One attack's results: robust accuracy per eps with 95% CIs, and what it cost.

    Filled by the evaluation: `forwards` and `backwards` (passes over the batch, 0 when not
    counted), the attack's `settings` (its hyperparameters) and the sanity `checks` run on it
    (empty by default).
    """

    attack: str
    norm: str
    n: int
    seed: int
    clean_accuracy: Accuracy
    results: list[EpsResult]
    seconds: float
    forwards: int = 0
    backwards: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    def at(self, eps_label: str) -> EpsResult:
        for r in self.results:
            if r.eps_label == eps_label:
                return r
        raise KeyError(f"no eps {eps_label!r} in this result; have {', '.join(r.eps_label for r in self.results)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "norm": self.norm,
            "n": self.n,
            "seed": self.seed,
            "clean_accuracy": self.clean_accuracy.to_json(),
            "results": [r.to_json() for r in self.results],
            "seconds": self.seconds,
            "forwards": self.forwards,
            "backwards": self.backwards,
            "settings": self.settings,
            "checks": [c.to_json() for c in self.checks],
        }


@dataclass
class Evaluation:
    """Every attack of one evaluation, the sanity checks, and the per-sample rows.

    `checks` (the sanity checks of the whole evaluation) and `rows` (one dict per test point, as in
    the per-sample JSONL) are empty until the evaluation fills them. `evaluation["pgd"]` is an attack's
    `EvalResult`.
    """

    norm: str
    n: int
    seed: int
    clean_accuracy: Accuracy
    attacks: list[EvalResult]
    checks: list[Check] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def __getitem__(self, name: str) -> EvalResult:
        for result in self.attacks:
            if result.attack == name:
                return result
        raise KeyError(f"no attack {name!r} in this evaluation; have {', '.join(a.attack for a in self.attacks)}")

    @property
    def flagged(self) -> list[Check]:
        """The sanity checks that failed: read them before quoting any robust accuracy."""
        return [c for c in self.checks if not c.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "norm": self.norm,
            "n": self.n,
            "seed": self.seed,
            "clean_accuracy": self.clean_accuracy.to_json(),
            "attacks": [a.to_json() for a in self.attacks],
            "checks": [c.to_json() for c in self.checks],
        }


def summarize(
    rows: list[dict[str, Any]],
    costs: list[dict[str, dict[str, float]]],
    attacks: list[tuple[str, dict[str, Any]]],
    norm: str,
    budgets: list[tuple[str, float]],
    seed: int,
) -> tuple[Accuracy, list[EvalResult]]:
    """Clean accuracy, and per attack: robust accuracy per eps (95% CI), breakers, queries, cost."""
    n = len(rows)
    ok = [r["clean_pred"] == r["label"] for r in rows]
    clean = Accuracy.of(sum(ok), n)
    results = []
    for name, settings in attacks:
        spent = [c[name] for c in costs if name in c]
        results.append(
            EvalResult(
                attack=name,
                norm=norm,
                n=n,
                seed=seed,
                clean_accuracy=clean,
                results=[_per_eps(rows, ok, name, label, eps, norm) for label, eps in budgets],
                seconds=sum(float(c["seconds"]) for c in spent),
                forwards=sum(int(c["forwards"]) for c in spent),
                backwards=sum(int(c["backwards"]) for c in spent),
                settings=settings,
            )
        )
    return clean, results


def _per_eps(rows: list[dict[str, Any]], ok: list[bool], name: str, label: str, eps: float, norm: str) -> EpsResult:
    cells = [r["attacks"][name][label] for r in rows]
    robust = sum(1 for good, c in zip(ok, cells, strict=True) if good and not c["success"])
    broken = [c for good, c in zip(ok, cells, strict=True) if good and c["success"]]
    queries = [c["queries"] for good, c in zip(ok, cells, strict=True) if good]
    known = all(q is not None for q in queries)
    found = [c["norm_found"] for c in cells if c.get("norm_found") is not None]
    return EpsResult(
        eps=eps,
        eps_label=label,
        norm=norm,
        robust_accuracy=Accuracy.of(robust, len(rows)),
        attack_success_rate=(sum(ok) - robust) / len(rows) if rows else 0.0,
        max_norm=max((c["norm"] for c in cells), default=0.0),
        broken_by=dict(Counter(c["broken_by"] or name for c in broken)),
        queries_total=sum(queries) if known else None,
        queries_median_broken=statistics.median(c["queries"] for c in broken) if known and broken else None,
        norm_found_median=statistics.median(found) if found else None,
        has_norm_found=any("norm_found" in c for c in cells),
    )
