"""The test points a model did not hold, per evaluation: a compact stand-in for per-sample JSONL.

The superseded runs of experiments/results/ keep their summaries but not their per-sample rows
(several MB). Before those rows were deleted, `derive` wrote each run's `broken.json`: for every
evaluation under the run folder (an `advmnist eval` folder's per_sample.jsonl, or a
scripts/gpu_autoattack.py line file), which test points were evaluated, which were misclassified
clean, and, per attack and eps (or per AutoAttack contestant), which were not robust and which
sub-attack broke each first. That is enough to recompute every paired number of
experiments/journal.md (points gained / lost between two models, the exact McNemar p, the points
only Square broke) with `paired`:

    python experiments/scripts/broken.py derive RUN_DIR [RUN_DIR ...]
    python experiments/scripts/broken.py paired SOURCE_A SOURCE_B
    python experiments/scripts/broken.py only SOURCE square

A SOURCE is a per-sample file (per_sample.jsonl or a gpu_autoattack.py line file, as kept for the
shipped model in results/) or `RUN_DIR/broken.json:EVALUATION`, optionally followed by `@VERDICT`
(`pgd@0.3`, `autoattack@0.3`, or a contestant such as `official`; needed only when there are several),
e.g. `experiments/results/robust-seed-cnn-aug/broken.json:autoattack-gpu@official`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# An evaluation: {"indices": [...], "clean_wrong": [...], "verdicts": {name: {"not_robust": [...], "broken_by": {...}}}}
Evaluation = dict[str, Any]


def _pack(indices: Iterable[int]) -> list[int] | dict[str, int]:
    """Sorted indices, as {"start", "stop", "step"} when they form one (the usual every-Kth subset)."""
    values = sorted(indices)
    if len(values) > 2:
        step = values[1] - values[0]
        if step > 0 and all(b - a == step for a, b in zip(values, values[1:], strict=False)):
            return {"start": values[0], "stop": values[-1] + step, "step": step}
    return values


def _unpack(packed: list[int] | dict[str, int]) -> list[int]:
    return list(range(packed["start"], packed["stop"], packed["step"])) if isinstance(packed, dict) else packed


def _from_eval_rows(rows: list[dict[str, Any]]) -> Evaluation:
    """`advmnist eval` rows: a point is not robust at an eps when `success` (clean mistakes included)."""
    verdicts: dict[str, dict[str, Any]] = {}
    for row in rows:
        for attack, per_eps in row["attacks"].items():
            for eps, cell in per_eps.items():
                verdict = verdicts.setdefault(f"{attack}@{eps}", {"not_robust": [], "broken_by": {}})
                if cell["success"]:
                    verdict["not_robust"].append(row["index"])
                    if cell["broken_by"] is not None:
                        verdict["broken_by"].setdefault(cell["broken_by"], []).append(row["index"])
    return {
        "indices": [r["index"] for r in rows],
        "clean_wrong": [r["index"] for r in rows if r["clean_pred"] != r["label"]],
        "verdicts": verdicts,
    }


def _from_gpu_rows(rows: list[dict[str, Any]]) -> Evaluation:
    """scripts/gpu_autoattack.py lines: per contestant null (held), "clean" (a clean mistake) or the breaker."""
    verdicts: dict[str, dict[str, Any]] = {}
    for row in rows:
        for contestant, breaker in row.items():
            if contestant in ("index", "label", "clean"):
                continue
            verdict = verdicts.setdefault(contestant, {"indices": [], "not_robust": [], "broken_by": {}})
            verdict["indices"].append(row["index"])
            if breaker is not None:
                verdict["not_robust"].append(row["index"])
                if breaker != "clean":
                    verdict["broken_by"].setdefault(breaker, []).append(row["index"])
    return {
        "indices": [r["index"] for r in rows],
        "clean_wrong": [r["index"] for r in rows if not r["clean"]],
        "verdicts": verdicts,
    }


def read_rows(path: Path) -> Evaluation:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise SystemExit(f"{path}: no rows")
    return _from_eval_rows(rows) if "attacks" in rows[0] else _from_gpu_rows(rows)


def _packed(evaluation: Evaluation) -> Evaluation:
    verdicts = {}
    for name, verdict in evaluation["verdicts"].items():
        out: dict[str, Any] = {}
        if "indices" in verdict and sorted(verdict["indices"]) != sorted(evaluation["indices"]):
            out["indices"] = _pack(verdict["indices"])
        out["not_robust"] = sorted(verdict["not_robust"])
        out["broken_by"] = {k: sorted(v) for k, v in sorted(verdict["broken_by"].items())}
        verdicts[name] = out
    return {
        "n": len(evaluation["indices"]),
        "indices": _pack(evaluation["indices"]),
        "clean_wrong": sorted(evaluation["clean_wrong"]),
        "verdicts": verdicts,
    }


def derive(run: Path) -> Path:
    """Write RUN/broken.json from every per-sample file under RUN (eval folders and autoattack-gpu/)."""
    sources = sorted(run.glob("**/per_sample.jsonl")) + sorted(run.glob("**/autoattack-gpu/*.jsonl"))
    if not sources:
        raise SystemExit(f"{run}: no per-sample files")
    evaluations = {}
    for source in sources:
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        key = str(source.parent.relative_to(run))  # the eval folder, or autoattack-gpu (one line file each)
        evaluations[key] = {"source": str(source.relative_to(run)), "sha256": digest, **_packed(read_rows(source))}
    out = run / "broken.json"
    doc = {
        "about": "test points not robust per evaluation, derived from the per-sample files named in `source` "
        "(sha256 of each) by experiments/scripts/broken.py derive; not_robust includes clean mistakes",
        "evaluations": evaluations,
    }
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    tmp.replace(out)
    return out


def load(source: str) -> tuple[set[int], set[int], Evaluation]:
    """(points evaluated, points not robust, the evaluation) for a SOURCE (see the module docstring)."""
    spec, _, wanted = source.partition("@")
    path_text, _, key = spec.partition(":") if ".json:" in spec else (spec, "", "")
    path = Path(path_text)
    if path.suffix == ".jsonl":
        evaluation = _packed(read_rows(path))
    else:
        evaluations = json.loads(path.read_text())["evaluations"]
        if not key and len(evaluations) == 1:
            key = next(iter(evaluations))
        if key not in evaluations:
            raise SystemExit(f"{path}: name one evaluation of {', '.join(evaluations)} (PATH:EVALUATION)")
        evaluation = evaluations[key]
    verdicts = evaluation["verdicts"]
    if not wanted:
        wanted = "official" if "official" in verdicts else (next(iter(verdicts)) if len(verdicts) == 1 else "")
    if wanted not in verdicts:
        raise SystemExit(f"{source}: name one verdict of {', '.join(verdicts)} (...@VERDICT)")
    verdict = verdicts[wanted]
    indices = set(_unpack(verdict.get("indices", evaluation["indices"])))
    return indices, set(verdict["not_robust"]), {**evaluation, "verdict": verdict}


def mcnemar_p(gained: int, lost: int) -> float:
    """Exact two-sided McNemar test: the binomial test of the discordant pairs against 1/2."""
    n, k = gained + lost, min(gained, lost)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def paired(a: str, b: str) -> dict[str, Any]:
    """B against A on the points both evaluated: points B holds that A lost (gained) and the reverse."""
    ia, broken_a, _ = load(a)
    ib, broken_b, _ = load(b)
    common = ia & ib
    gained = len((broken_a - broken_b) & common)
    lost = len((broken_b - broken_a) & common)
    return {
        "points": len(common),
        "robust_a": len(common - broken_a),
        "robust_b": len(common - broken_b),
        "gained": gained,
        "lost": lost,
        "p": mcnemar_p(gained, lost),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("derive", help="write RUN_DIR/broken.json from the per-sample files under it")
    p.add_argument("runs", nargs="+", type=Path)
    p = sub.add_parser("paired", help="B against A: points gained, lost, exact McNemar p")
    p.add_argument("a")
    p.add_argument("b")
    p = sub.add_parser("only", help="the points a given sub-attack broke first (e.g. square)")
    p.add_argument("source")
    p.add_argument("attack")
    args = parser.parse_args()
    if args.command == "derive":
        for run in args.runs:
            print(derive(run))
    elif args.command == "paired":
        r = paired(args.a, args.b)
        print(
            f"{r['points']} points: A holds {r['robust_a']}, B holds {r['robust_b']}; "
            f"B gained {r['gained']}, lost {r['lost']} (exact McNemar p = {r['p']:.2g})"
        )
    else:
        _, _, evaluation = load(args.source)
        print(evaluation["verdict"]["broken_by"].get(args.attack, []))


if __name__ == "__main__":
    main()
