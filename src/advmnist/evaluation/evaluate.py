"""Robust accuracy of a model under one or more attacks at several budgets, resumable.

A point counts as robust at eps when it is classified correctly both clean and after the attack.
Per batch, one JSONL row per point (label, clean prediction, and for every attack and eps: the
adversarial prediction, success, perturbation norm, queries spent on it, which attack broke it
first) is appended and flushed, then one line to the batch log with the batch's cost per attack.
A killed evaluation resumes after the last logged batch and ends with the same result; the batch
log carries a fingerprint of the configuration (model weights included), so a resume into results
of another configuration is refused instead of mixed. The summary is a pure function of the rows.

Budgets are attacked in increasing order and a point broken at a smaller eps is not attacked
again at a larger one: its adversarial example is inside the larger ball too, so it stays broken
(this only makes the evaluation stronger, never weaker, and saves most of the work of a sweep).
Points misclassified clean are not attacked at all (AutoAttack does the same).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from advmnist.attacks import Attack, AttackResult, Threat, parse_attacks
from advmnist.errors import ModelError, RunDirError
from advmnist.evaluation.checks import SAMPLE, Check, cross_attack_checks, monotone_check, pre_checks, unbounded_check
from advmnist.evaluation.epsilons import eps_label
from advmnist.evaluation.results import EvalResult, Evaluation, summarize
from advmnist.io import append_jsonl, atomic_write_text, read_jsonl

Tensor = torch.Tensor


@dataclass(frozen=True)
class Plan:
    """What an evaluation does to each point: attacks, norm, budgets, batch size and seed.

    Build it with `Plan.build(attack="fgsm,pgd", norm="linf", epsilons=[0.1, 0.3])`; a command's
    spec builds one and passes it down whole. Defaults: `batch_size=256`, attack `seed=0`, and
    `checks=True` (run the sanity checks of `advmnist.evaluation.checks` and record them).
    """

    attacks: tuple[Attack, ...]
    norm: str
    budgets: tuple[tuple[str, float], ...]  # (label, eps), in increasing eps
    batch_size: int = 256
    seed: int = 0
    checks: bool = True

    @classmethod
    def build(
        cls,
        attack: str | Attack | Sequence[str | Attack] = "fgsm",
        *,
        norm: str = "linf",
        epsilons: Sequence[float] = (2 / 255, 4 / 255, 8 / 255),
        labels: Sequence[str] | None = None,
        batch_size: int = 256,
        seed: int = 0,
        checks: bool = True,
        bf16: bool = False,
    ) -> Plan:
        """`attack`: a registry name, a comma list with settings ("fgsm,pgd[steps=50],autoattack"), an
        `Attack` or a list of those; `bf16`: attacks given by name search in bf16 (verdicts in fp32)."""
        attacks = _attacks(attack, bf16)
        labels = list(labels) if labels is not None else [eps_label(e) for e in epsilons]
        if len(labels) != len(epsilons) or len(set(labels)) != len(labels):
            raise ValueError(f"need one distinct label per eps, got {labels} for {list(epsilons)}")
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        Threat(norm, max(epsilons, default=0.0))  # validates the norm and the largest eps
        budgets = sorted(zip(labels, (float(e) for e in epsilons), strict=True), key=lambda b: b[1])
        return cls(tuple(attacks), norm, tuple(budgets), batch_size, seed, checks)

    @property
    def threat(self) -> Threat:
        return Threat(self.norm, max((e for _, e in self.budgets), default=0.0))


def evaluate(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    attack: str | Attack | Sequence[str | Attack] = "fgsm",
    norm: str = "linf",
    epsilons: Sequence[float] = (2 / 255, 4 / 255, 8 / 255),
    labels: Sequence[str] | None = None,
    batch_size: int = 256,
    seed: int = 0,
    checks: bool = True,
    bf16: bool = False,
    indices: Sequence[int] | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> Evaluation:
    """Attack every point with every attack at every eps; accuracies with 95% Clopper-Pearson CIs.

    `attack` (default "fgsm"): a registry name, a comma list of names with optional settings
    ("fgsm,pgd[steps=50,restarts=10],autoattack"), an `Attack`, or a list of those; each is
    evaluated on its own. `norm` (default "linf", or "l2") and `epsilons` (default 2/255, 4/255,
    8/255) make the threats; `labels` names the budgets in the results (default: from the values).
    `batch_size=256` points at a time; `seed=0` seeds the attacks' random draws. With `checks`
    (default True), the sanity checks of `advmnist.evaluation.checks` land in `Evaluation.checks`.
    `bf16` (default False): attacks given by name search under bf16 autocast (~2.5x faster on a
    CPU); whether a point is fooled is still decided in fp32. `indices` name the rows of `x` in
    the dataset (default 0..n-1); `out`, when given, is the per-sample JSONL file, which `resume`
    continues; `progress` (default False) shows a progress bar.
    """
    plan = Plan.build(
        attack, norm=norm, epsilons=epsilons, labels=labels, batch_size=batch_size, seed=seed, checks=checks, bf16=bf16
    )
    return run_plan(model, x, y, plan, indices=indices, out=out, resume=resume, progress=progress)


def run_plan(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    plan: Plan,
    *,
    indices: Sequence[int] | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
) -> Evaluation:
    """Evaluate `plan` on (x, y). `indices` name the rows of `x` in the dataset (default 0..n-1).

    `out`, when given, is the per-sample JSONL file; its batch log sits beside it
    (`<name>.batches.jsonl`). With `resume`, rows already there are kept and the rest computed.
    """
    index = list(range(len(y))) if indices is None else [int(i) for i in indices]
    if len(index) != len(y):
        raise ValueError(f"{len(index)} indices for {len(y)} points")
    log = _Log(Path(out), _fingerprint(model, x, y, index, plan)) if out is not None else None
    rows, costs = log.load(resume, index) if log is not None else ([], [])
    device = next(model.parameters()).device
    found = pre_checks(model, x[:SAMPLE].to(device), y[:SAMPLE].to(device)) if plan.checks else []
    starts = range(len(rows), len(y), plan.batch_size)
    bar = tqdm(starts, desc="+".join(a.name for a in plan.attacks), disable=not progress, leave=False)
    for start in bar:
        stop = min(start + plan.batch_size, len(y))
        xb, yb = x[start:stop].to(device), y[start:stop].to(device)
        batch_rows, cost = _attack_batch(model, plan, xb, yb, index[start:stop], plan.seed + start)
        rows.extend(batch_rows)
        costs.append(cost)
        if log is not None:
            log.append(batch_rows, {"start": start, "size": stop - start, "cost": cost})
    named = [(a.name, attack_settings(a)) for a in plan.attacks]
    clean, results = summarize(rows, costs, named, plan.norm, list(plan.budgets), plan.seed)
    if plan.checks:
        found += _post_checks(model, x[:SAMPLE].to(device), y[:SAMPLE].to(device), plan, results)
    return Evaluation(plan.norm, len(y), plan.seed, clean, results, found, rows)


def _post_checks(model: nn.Module, x: Tensor, y: Tensor, plan: Plan, results: list[EvalResult]) -> list[Check]:
    found = []
    for result in results:
        fractions = [r.robust_accuracy.value for r in result.results]
        found.append(monotone_check([r.eps for r in result.results], fractions, result.attack))
    found.append(unbounded_check(model, x, y, plan.norm))
    return found + cross_attack_checks([(r.attack, [e.to_json() for e in r.results]) for r in results])


def _attacks(attack: str | Attack | Sequence[str | Attack], bf16: bool = False) -> list[Attack]:
    built: list[Attack]
    if isinstance(attack, str):
        built = parse_attacks(attack, bf16=bf16)
    elif isinstance(attack, Attack):
        built = [attack]
    else:
        built = [b for a in attack for b in (parse_attacks(a, bf16=bf16) if isinstance(a, str) else [a])]
    names = [a.name for a in built]
    if not built or len(set(names)) != len(names):
        raise ValueError(f"need a list of distinct attacks, got {names}")
    return built


def attack_settings(attack: Attack) -> dict[str, Any]:
    """The attack's settings as recorded next to its name (a cascade's members keep theirs)."""
    return {k: v for k, v in attack.settings().items() if k != "name"}


def _attack_batch(
    model: nn.Module, plan: Plan, x: Tensor, y: Tensor, index: list[int], seed: int
) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]]]:
    clean_pred = _predict(model, x, index)
    budgets = list(plan.budgets)
    per_attack, cost = {}, {}
    for attack in plan.attacks:
        start = time.perf_counter()
        cells, forwards, backwards = _one_attack(model, attack, x, y, clean_pred, plan.threat, budgets, seed)
        per_attack[attack.name] = cells
        cost[attack.name] = {"seconds": time.perf_counter() - start, "forwards": forwards, "backwards": backwards}
    rows = [
        {
            "index": i,
            "label": int(y[k]),
            "clean_pred": int(clean_pred[k]),
            "attacks": {name: {label: cells[label][k] for label, _ in budgets} for name, cells in per_attack.items()},
        }
        for k, i in enumerate(index)
    ]
    return rows, cost


def _one_attack(
    model: nn.Module,
    attack: Attack,
    x: Tensor,
    y: Tensor,
    clean_pred: Tensor,
    threat: Threat,
    budgets: list[tuple[str, float]],
    seed: int,
) -> tuple[dict[str, list[dict[str, Any]]], int, int]:
    """Per eps label, one cell per point; plus the forward and backward passes spent."""
    state = _Cells(clean_pred, y)
    cells: dict[str, list[dict[str, Any]]] = {}
    forwards = backwards = 0
    if attack.shares_sweep():  # one call serves every eps (FGSM's one gradient, a minimum-norm search)
        idx = state.todo.nonzero().squeeze(1)
        results = attack.sweep(model, x[idx], y[idx], threat, [e for _, e in budgets], seed=seed) if len(idx) else []
        for k, (label, _) in enumerate(budgets):
            if results:
                state.fill(idx, results[k], attack.name, fresh=True)
                forwards, backwards = results[k].forwards, results[k].backwards
            cells[label] = state.cells()
        return cells, forwards, backwards
    for label, eps in budgets:
        idx = state.todo.nonzero().squeeze(1)  # points broken at a smaller eps stay broken
        if len(idx):
            r = attack.sweep(model, x[idx], y[idx], threat.with_eps(eps), [eps], seed=seed)[0]
            forwards, backwards = forwards + r.forwards, backwards + r.backwards
            state.fill(idx, r, attack.name, fresh=False)
        cells[label] = state.cells()
    return cells, forwards, backwards


class _Cells:
    """What one attack did to each point of a batch at the current eps."""

    def __init__(self, clean_pred: Tensor, y: Tensor) -> None:
        clean_pred, y = clean_pred.cpu(), y.cpu()
        n = len(y)
        self.y, self.clean_pred = y, clean_pred
        self.todo = clean_pred == y  # misclassified points are not attacked
        self.pred, self.dist = clean_pred.clone(), torch.zeros(n)
        self.queries: Tensor | None = torch.zeros(n, dtype=torch.long)
        self.norm_found = torch.full((n,), float("nan"))
        self.broken_by: list[str | None] = [None] * n

    def fill(self, idx: Tensor, r: AttackResult, name: str, *, fresh: bool) -> None:
        """Record result `r` on points `idx`; `fresh`: `r` replaces the previous eps's outcome."""
        idx = idx.cpu()
        self.pred[idx], self.dist[idx] = r.pred.cpu(), r.distance.float().cpu()
        if r.norm_found is not None:
            self.norm_found[idx] = r.norm_found.float().cpu()
        if r.queries is None or self.queries is None:
            self.queries = None
        elif fresh:
            self.queries = torch.zeros_like(self.pred).index_copy(0, idx, r.queries.cpu())
        else:  # cumulative over the budgets: what it took to reach this eps's outcome
            self.queries[idx] += r.queries.cpu()
        fooled = (r.pred.cpu() != self.y[idx]).tolist()
        for j, (i, hit) in enumerate(zip(idx.tolist(), fooled, strict=True)):
            if hit:
                self.broken_by[i] = (r.broken_by[j] if r.broken_by is not None else None) or name
            elif fresh:
                self.broken_by[i] = None
        if not fresh:
            self.todo[idx] = ~torch.tensor(fooled, dtype=torch.bool)

    def cells(self) -> list[dict[str, Any]]:
        out = []
        rows = zip(self.pred.tolist(), self.y.tolist(), self.dist.tolist(), self.broken_by, strict=True)
        for k, (p, t, d, by) in enumerate(rows):
            cell: dict[str, Any] = {
                "pred": p,
                "success": p != t,
                "norm": round(d, 7),
                "queries": None if self.queries is None else int(self.queries[k]),
                "broken_by": by,
            }
            found = float(self.norm_found[k])
            if found == found:  # not NaN: a minimum-norm attack reported it (None: nothing found)
                cell["norm_found"] = round(found, 7) if found != float("inf") else None
            out.append(cell)
        return out


def _predict(model: nn.Module, x: Tensor, index: list[int]) -> Tensor:
    """The clean predictions; NaN or infinite logits stop the evaluation (no accuracy would mean anything)."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            logits = model(x.contiguous(memory_format=torch.channels_last))
    finally:
        model.train(was_training)
    bad = (~torch.isfinite(logits)).flatten(1).any(1)
    if bool(bad.any()):
        first = [index[i] for i in bad.nonzero().squeeze(1).tolist()[:5]]
        raise ModelError(f"the model returns NaN or infinite logits (test images {first}, ...); refusing to evaluate")
    return logits.argmax(1)


def _fingerprint(model: nn.Module, x: Tensor, y: Tensor, index: list[int], plan: Plan) -> str:
    """sha256 of everything the rows depend on: weights, points, attacks and their settings, budgets."""
    h = hashlib.sha256()
    for name, t in [*model.state_dict().items(), ("x", x), ("y", y)]:
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    budgets = [list(b) for b in plan.budgets]
    spec = [index, [(a.name, attack_settings(a)) for a in plan.attacks], plan.norm, budgets, plan.batch_size, plan.seed]
    h.update(json.dumps(spec, sort_keys=True, default=str).encode())
    return h.hexdigest()


class _Log:
    """The per-sample JSONL file and its batch log: append per batch, reload on resume."""

    def __init__(self, rows_path: Path, fingerprint: str) -> None:
        self.rows_path = rows_path
        self.batches_path = rows_path.with_name(rows_path.name.removesuffix(".jsonl") + ".batches.jsonl")
        self.fingerprint = fingerprint

    def load(self, resume: bool, index: list[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        there = [p for p in (self.rows_path, self.batches_path) if p.exists() and p.stat().st_size]
        if not resume:
            if there:
                raise RunDirError(f"{there[0]}: exists; resume it or remove it first")
            return [], []
        batches = list(read_jsonl(self.batches_path)) if self.batches_path.exists() else []
        if any(b.get("fingerprint") != self.fingerprint for b in batches):
            raise RunDirError(f"{self.batches_path}: results of another configuration; refusing to mix")
        done = sum(int(b["size"]) for b in batches)
        rows = list(read_jsonl(self.rows_path))[:done] if self.rows_path.exists() else []
        if len(rows) != done or [r["index"] for r in rows] != index[:done]:
            raise RunDirError(f"{self.rows_path}: does not match its batch log; refusing to resume")
        # Rows written after the last logged batch (a kill between the two appends) are dropped.
        atomic_write_text(self.rows_path, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))
        return rows, [b["cost"] for b in batches]

    def append(self, rows: list[dict[str, Any]], record: dict[str, Any]) -> None:
        append_jsonl(self.rows_path, rows)
        append_jsonl(self.batches_path, [{**record, "fingerprint": self.fingerprint}])
