"""The evaluation harness: several attacks, per-sample rows, resume, refusal to mix, cross-attack checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from advmnist.attacks import BIM, FGSM, PGD, AutoAttack, Square
from advmnist.errors import RunDirError
from advmnist.evaluation import evaluate
from advmnist.evaluation.checks import cross_attack_checks
from advmnist.evaluation.results import summarize
from advmnist.io import read_jsonl, write_json
from advmnist.rundir import prepare_run_dir
from test_checks import Quantized

EPS = [0.02, 0.05, 0.1]


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))


def _data(n: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 1, 28, 28, generator=g)
    y = _model()(x).argmax(1)
    y[::7] = (y[::7] + 1) % 10  # some points misclassified clean
    return x, y


CASCADE = AutoAttack(version="custom", attacks=(FGSM(), BIM()))


def _run(out: Path | None = None, **kwargs) -> object:  # noqa: ANN003
    x, y = _data()
    settings = {"attack": ["fgsm", PGD(steps=10), CASCADE], "epsilons": EPS, "batch_size": 16, "checks": False}
    return evaluate(kwargs.pop("model", _model()), x, y, out=out, **{**settings, **kwargs})


def test_rows_hold_every_attack_and_eps_and_the_summary_follows_from_them(tmp_path: Path) -> None:
    ev = _run(tmp_path / "rows.jsonl")
    rows = list(read_jsonl(tmp_path / "rows.jsonl"))
    assert rows == ev.rows and [r["index"] for r in rows] == list(range(60))
    for row in rows:
        for name in ("fgsm", "pgd", "autoattack"):
            for label in ("0.02", "0.05", "0.1"):
                cell = row["attacks"][name][label]
                assert {"pred", "success", "norm", "queries", "broken_by"} <= set(cell)
                assert cell["norm"] <= float(label) + 1e-6
                assert cell["success"] == (cell["pred"] != row["label"])
                assert (cell["broken_by"] is not None) == (cell["success"] and row["clean_pred"] == row["label"])
    aa = ev["autoattack"]
    for r in aa.results:
        broken = round((ev.clean_accuracy.value - r.robust_accuracy.value) * 60)
        assert sum(r.broken_by.values()) == broken and set(r.broken_by) <= {"fgsm", "bim"}
        assert r.queries_total is not None and r.queries_total > 0
    batches = list(read_jsonl(tmp_path / "rows.batches.jsonl"))
    assert [b["start"] for b in batches] == [0, 16, 32, 48]
    assert aa.forwards == sum(b["cost"]["autoattack"]["forwards"] for b in batches) > 0
    costs = [b["cost"] for b in batches]
    budgets = [(r.eps_label, r.eps) for r in aa.results]
    attacks = [(a.attack, a.settings) for a in ev.attacks]
    clean, again = summarize(rows, costs, attacks, "linf", budgets, 0)
    assert clean == ev.clean_accuracy and [a.results for a in again] == [a.results for a in ev.attacks]


def test_a_point_broken_at_a_small_eps_stays_broken_at_larger_ones() -> None:
    ev = _run()
    for row in ev.rows:
        for cells in row["attacks"].values():
            hits = [cells[label]["success"] for label in ("0.02", "0.05", "0.1")]
            assert hits == sorted(hits)  # False ... False True ... True
    for result in ev.attacks:
        values = [r.robust_accuracy.value for r in result.results]
        assert values == sorted(values, reverse=True)


def test_the_cascade_breaks_every_point_its_first_member_breaks_alone() -> None:
    # FGSM, the cascade's first member, is deterministic: alone it treats a point as in the cascade
    ev = _run()
    by_bim = 0
    for row in ev.rows:
        broken_before = False  # the cascade keeps a point broken at a smaller eps, with its breaker
        for label in ("0.02", "0.05", "0.1"):
            fgsm, aa = row["attacks"]["fgsm"][label], row["attacks"]["autoattack"][label]
            assert aa["success"] >= fgsm["success"]
            if row["clean_pred"] == row["label"] and not broken_before:
                assert (aa["broken_by"] == "fgsm") == fgsm["success"]
                by_bim += aa["broken_by"] == "bim"
            broken_before = aa["success"]
    assert by_bim > 0  # the second member breaks points of its own


def test_a_killed_evaluation_resumes_to_the_same_result(tmp_path: Path) -> None:
    full = _run(tmp_path / "full" / "rows.jsonl")
    part = tmp_path / "part"
    part.mkdir()
    lines = (tmp_path / "full" / "rows.jsonl").read_text().splitlines(keepends=True)
    batches = (tmp_path / "full" / "rows.batches.jsonl").read_text().splitlines(keepends=True)
    # Killed after two logged batches, while writing the rows of the third (a torn last line too).
    (part / "rows.jsonl").write_text("".join(lines[:40]) + lines[40][:25])
    (part / "rows.batches.jsonl").write_text("".join(batches[:2]))
    resumed = _run(part / "rows.jsonl", resume=True)
    assert resumed.rows == full.rows
    assert [a.results for a in resumed.attacks] == [a.results for a in full.attacks]
    assert (part / "rows.jsonl").read_text() == (tmp_path / "full" / "rows.jsonl").read_text()


def test_resume_refuses_another_configuration_and_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    _run(out)
    before = out.read_bytes()
    with pytest.raises(RunDirError, match="exists"):
        _run(out)
    with pytest.raises(RunDirError, match="another configuration"):
        _run(out, resume=True, epsilons=[0.02, 0.05, 0.2])
    with pytest.raises(RunDirError, match="another configuration"):
        _run(out, resume=True, model=_model(seed=5))  # other weights, same architecture
    assert out.read_bytes() == before
    shutil.copy(out, tmp_path / "copy.jsonl")
    assert _run(out, resume=True).rows == [json.loads(line) for line in before.decode().splitlines()]


def test_a_run_folder_resumes_when_its_settings_hold_tuples(tmp_path: Path) -> None:
    # AutoAttack's settings hold tuples, which the config file stores as lists: still the same run.
    config = {"attacks": {"autoattack": {"attacks": (), "targets": (1, 2)}}, "eps": ["0.3"]}
    write_json(tmp_path / "config.json", config)
    assert prepare_run_dir(tmp_path, config, overwrite=False, resume=True) is True
    other = {"attacks": {"autoattack": {"attacks": ("apgd-ce",), "targets": (1, 2)}}, "eps": ["0.3"]}
    with pytest.raises(RunDirError, match=r"another configuration \(attacks\)"):
        prepare_run_dir(tmp_path, other, overwrite=False, resume=True)


def test_distinct_attacks_and_labels_are_required() -> None:
    x, y = _data()
    with pytest.raises(ValueError, match="distinct attacks"):
        evaluate(_model(), x, y, attack="pgd,pgd", epsilons=[0.1])
    with pytest.raises(ValueError, match="one distinct label per eps"):
        evaluate(_model(), x, y, epsilons=[0.1, 0.2], labels=["a", "a"])


def _results(values: dict[str, list[float]]) -> list[tuple[str, list[dict]]]:
    return [
        (name, [{"eps_label": str(e), "robust_accuracy": {"value": v}} for e, v in zip(EPS, vs, strict=True)])
        for name, vs in values.items()
    ]


def test_cross_attack_checks_flag_an_order_violation_and_a_winning_black_box() -> None:
    fine = {c.name: c.passed for c in cross_attack_checks(_results({"fgsm": [0.9, 0.8, 0.5], "pgd": [0.8, 0.6, 0.3]}))}
    assert fine == {"stronger attacks find more: clean >= FGSM >= PGD >= AutoAttack": True}
    bad = cross_attack_checks(
        _results({"fgsm": [0.9, 0.8, 0.5], "pgd": [0.8, 0.85, 0.3], "autoattack": [0.7, 0.6, 0.2], "square": [0.6] * 3})
    )
    flags = {c.name: c for c in bad}
    assert not flags["stronger attacks find more: clean >= FGSM >= PGD >= AutoAttack"].passed
    assert (
        "pgd 85.00% > fgsm 80.00% at 0.05"
        in flags["stronger attacks find more: clean >= FGSM >= PGD >= AutoAttack"].measured
    )
    assert not flags["black-box (Square) not beating white-box"].passed


def test_a_masking_model_is_flagged_by_the_black_box_check() -> None:
    x, y = _data()
    model = Quantized(_model())
    with torch.no_grad():
        y = model(x).argmax(1)
    ev = evaluate(model, x, y, attack=[PGD(steps=5), Square(queries=300)], epsilons=[0.3], batch_size=64)
    flags = {c.name: c for c in ev.checks}
    assert not flags["input gradients informative"].passed
    assert not flags["black-box (Square) not beating white-box"].passed, flags
