"""The summary of an evaluation, computed from its per-sample rows and batch costs only.

Because it is a pure function of the rows, a resumed evaluation summarizes exactly like one that
ran through, and anyone can recompute it from `per_sample.jsonl`.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import TYPE_CHECKING, Any

from advmnist.evaluation.stats import accuracy

if TYPE_CHECKING:
    from advmnist.evaluation.evaluate import EvalResult


def summarize(
    rows: list[dict[str, Any]],
    costs: list[dict[str, dict[str, float]]],
    attacks: list[tuple[str, dict[str, Any]]],
    norm: str,
    budgets: list[tuple[str, float]],
    seed: int,
) -> tuple[dict[str, Any], list[EvalResult]]:
    """Clean accuracy, and per attack: robust accuracy per eps (95% CI), breakers, queries, cost."""
    from advmnist.evaluation.evaluate import EvalResult

    n = len(rows)
    ok = [r["clean_pred"] == r["label"] for r in rows]
    clean = accuracy(sum(ok), n)
    results = []
    for name, settings in attacks:
        per_eps = [_per_eps(rows, ok, name, label, eps, norm) for label, eps in budgets]
        spent = [c[name] for c in costs if name in c]
        results.append(
            EvalResult(
                attack=name,
                norm=norm,
                n=n,
                seed=seed,
                clean_accuracy=clean,
                results=per_eps,
                seconds=sum(float(c["seconds"]) for c in spent),
                forwards=sum(int(c["forwards"]) for c in spent),
                backwards=sum(int(c["backwards"]) for c in spent),
                settings=settings,
            )
        )
    return clean, results


def _per_eps(
    rows: list[dict[str, Any]], ok: list[bool], name: str, label: str, eps: float, norm: str
) -> dict[str, Any]:
    cells = [r["attacks"][name][label] for r in rows]
    robust = sum(1 for good, c in zip(ok, cells, strict=True) if good and not c["success"])
    broken = [c for good, c in zip(ok, cells, strict=True) if good and c["success"]]
    queries = [c["queries"] for good, c in zip(ok, cells, strict=True) if good]
    known = all(q is not None for q in queries)
    out: dict[str, Any] = {
        "eps": eps,
        "eps_label": label,
        "robust_accuracy": accuracy(robust, len(rows)),
        "attack_success_rate": (sum(ok) - robust) / len(rows) if rows else 0.0,
        f"max_{norm}": max((c["norm"] for c in cells), default=0.0),
        "broken_by": dict(Counter(c["broken_by"] or name for c in broken)),
        "queries": {
            "total": sum(queries) if known else None,
            "median_broken": statistics.median(c["queries"] for c in broken) if known and broken else None,
        },
    }
    found = [c["norm_found"] for c in cells if "norm_found" in c and c["norm_found"] is not None]
    if any("norm_found" in c for c in cells):
        out["norm_found_median"] = statistics.median(found) if found else None
    return out
