"""`advmnist compare`: several models evaluated alike, one table per eps, a plot, sentences from numbers."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from advmnist.data import DatasetSpec, load_mnist
from advmnist.evaluation import accuracy
from advmnist.models import create_model, save_model
from advmnist.reporting.comparison import comparison_sentences, load_comparison, robust_tables
from advmnist.reporting.load import AttackCurve
from advmnist.reporting.load import accuracy as to_accuracy
from conftest import run_cli


def _trained_linear(synthetic: tuple[Path, Path]) -> torch.nn.Module:
    train = load_mnist("train", synthetic[0], spec=DatasetSpec.from_checksums(synthetic[1]))
    torch.manual_seed(0)
    model = create_model("linear")
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(train.x), train.y).backward()
        opt.step()
    return model


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory, synthetic) -> tuple[Path, list[str]]:  # noqa: ANN001
    folder = tmp_path_factory.mktemp("compare")
    torch.manual_seed(1)
    save_model(create_model("linear"), folder / "untrained")
    save_model(_trained_linear(synthetic), folder / "trained")
    data = ["--data-dir", str(synthetic[0]), "--checksums", str(synthetic[1]), "-q"]
    args = [
        "compare",
        "--model",
        f"untrained={folder / 'untrained.safetensors'}",
        "--model",
        f"trained={folder / 'trained.safetensors'}",
        "--eps",
        "0.05,0.3",
        "--every",
        "4",
        "--strong-attack",
        "apgd-ce",
        "--strong-every",
        "10",
        "--out",
        str(folder / "out"),
        *data,
    ]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    return folder / "out", args


def test_compare_writes_tables_plot_and_report(compared: tuple[Path, list[str]]) -> None:
    out, _ = compared
    comp = load_comparison(out)
    assert [r.name for r in comp.rows] == ["untrained", "trained"]
    assert comp.attacks() == ["FGSM", "PGD-50", "APGD-CE"]
    untrained, trained = comp.rows
    assert trained.clean.value > untrained.clean.value + 0.3  # the trained one learned the bars
    assert trained.clean.n == 50 and trained.params == 7850 and trained.inference_us > 0
    # the table cells are the evaluation files' numbers: PGD-50 at 0.3 for the trained model
    evaluated = json.loads((out / "trained" / "attacks" / "eval_results.json").read_text())
    pgd = next(a for a in evaluated["attacks"] if a["attack"] == "pgd")
    row = next(r for r in pgd["results"] if r["eps_label"] == "0.3")
    assert trained.at("PGD-50", "0.3") == to_accuracy(row["robust_accuracy"])
    strong = json.loads((out / "trained" / "strong" / "eval_results.json").read_text())
    assert strong["n"] == 20 and strong["every"] == 10
    report = (out / "report.md").read_text()
    assert "Robust accuracy at Linf eps 0.3" in report and "trained" in report and "comparison.png" in report
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "report.txt").read_text().startswith("Comparison")


def test_compare_resumes_refuses_to_clobber_and_report_rebuilds(compared: tuple[Path, list[str]]) -> None:
    out, args = compared
    before = (out / "comparison.json").read_text()
    again = run_cli(*args)
    assert again.returncode == 2 and "holds a run" in again.stderr
    resumed = run_cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    old, new = json.loads(before)["models"], json.loads((out / "comparison.json").read_text())["models"]
    for a, b in zip(old, new, strict=True):
        a.pop("inference_us_per_image"), b.pop("inference_us_per_image")  # timings differ, nothing else
        assert a == b
    (out / "report.md").unlink()
    rebuilt = run_cli("report", str(out), "--html", "-q")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "Robust accuracy at Linf eps 0.05" in (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    images = re.findall(r'<img src="([^"]*)"', page)
    assert len(images) == 1 and all(base64.b64decode(i.split(",", 1)[1])[:4] == b"\x89PNG" for i in images)
    assert not re.search(r"(src|href)=\"(?!data:)", page) and "<script" not in page  # nothing to fetch or run
    assert "<summary>config.json</summary>" in page and "Robust accuracy at Linf eps 0.3" in page


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (["a=x.safetensors"], "model(s) not found: x.safetensors"),
        (["nameless"], "--model takes NAME=PATH"),
        (["a=M", "a=M"], "distinct name"),
        (["a/b=M"], "model names may hold"),
    ],
)
def test_compare_bad_input_is_one_line_exit_2(tmp_path: Path, models: list[str], message: str) -> None:
    save_model(create_model("linear"), tmp_path / "m")
    flags = [x for m in models for x in ("--model", m.replace("=M", f"={tmp_path / 'm.safetensors'}"))]
    proc = run_cli("compare", *flags, "--out", str(tmp_path / "out"), "-q")
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_sentences_follow_the_numbers(compared: tuple[Path, list[str]]) -> None:
    out, _ = compared
    comp = load_comparison(out)
    trained = comp.rows[1]

    def with_fgsm(row, correct: int):  # noqa: ANN001, ANN202  (FGSM at 0.3 set to `correct` of its n)
        curves = []
        for results in row.results:
            new = []
            for c in results.attacks:
                if c.attack == "fgsm":
                    p = c.point("0.3")
                    acc = to_accuracy(accuracy(correct, p.robust.n))
                    points = tuple(replace(q, robust=acc) if q.eps_label == "0.3" else q for q in c.points)
                    c = AttackCurve(c.attack, points, c.broken_by, c.settings)
                new.append(c)
            curves.append(replace(results, attacks=tuple(new)))
        return replace(row, results=tuple(curves))

    strongest = min(trained.at("PGD-50", "0.3").value, trained.at("APGD-CE", "0.3").value)
    lying = replace(comp, rows=(comp.rows[0], with_fgsm(trained, trained.at("FGSM", "0.3").n)))
    said = " ".join(comparison_sentences(lying))
    assert strongest < 0.9  # eps 0.3 breaks a linear model: FGSM at 100% vs this overstates it
    assert "FGSM overstates trained" in said
    honest = replace(comp, rows=(comp.rows[0], with_fgsm(trained, 0)))
    assert "FGSM overstates trained" not in " ".join(comparison_sentences(honest))
    assert len(robust_tables(comp)) == 2
