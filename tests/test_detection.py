"""Feature squeezing: the squeezers, exact ROC AUC, calibration, the adaptive attack and `advmnist detect`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advmnist.attacks import PGD, Threat, create_attack
from advmnist.data import DatasetSpec, load_mnist
from advmnist.defenses import FeatureSqueezing, adaptive_attack, bit_depth, evaluate_detector, median_smooth, roc_auc
from advmnist.models import create_model, save_model
from conftest import run_cli
from test_cli import assert_one_line_error


def _cnn(seed: int = 0, batchnorm: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Conv2d(8, 16, 5, stride=2, padding=2),
        nn.BatchNorm2d(16) if batchnorm else nn.Identity(),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(16 * 7 * 7, 10),
    )


@pytest.fixture(scope="module")
def trained(synthetic: tuple[Path, Path]) -> tuple[nn.Module, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """A small CNN fit to the synthetic digits (100% test accuracy in a fraction of a second)."""
    spec = DatasetSpec.from_checksums(synthetic[1])
    train, test = load_mnist("train", synthetic[0], spec=spec), load_mnist("test", synthetic[0], spec=spec)
    model = _cnn()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(3):
        for xb, yb in zip(train.x[:500].split(50), train.y[:500].split(50), strict=True):
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    model.eval()
    return model, (test.x[:100], test.y[:100]), (train.x[500:], train.y[500:])  # calibration: held out


def test_bit_depth_levels() -> None:
    x = torch.linspace(0, 1, 784).view(1, 1, 28, 28)
    assert set(bit_depth(x, 1).unique().tolist()) == {0.0, 1.0}
    assert torch.allclose(bit_depth(x, 2).unique(), torch.tensor([0, 1 / 3, 2 / 3, 1]))
    grid = torch.arange(256).float().div(255).view(1, 1, 16, 16)
    assert torch.equal(bit_depth(grid, 8), grid)  # 8 bits keep every 8-bit image
    assert bit_depth(torch.tensor([0.49, 0.51]), 1).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="bits must be in 1..8"):
        bit_depth(x, 0)


def test_median_of_a_known_patch() -> None:
    x = torch.arange(1.0, 10.0).view(1, 1, 3, 3)  # [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    three = median_smooth(x, 3)
    assert three[0, 0, 1, 1] == 5 and three[0, 0, 0, 0] == 2  # corner: 1 1 2 / 1 1 2 / 4 4 5 -> 2
    two = median_smooth(x, 2)  # window = the pixel and its upper-left neighbours; even: upper middle value
    assert two[0, 0].tolist() == [[1, 2, 3], [4, 4, 5], [7, 7, 8]]
    with pytest.raises(ValueError, match=">= 2"):
        median_smooth(x, 1)


def test_median_matches_scipy() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    for size in (2, 3, 4, 5):
        ref = ndimage.median_filter(x.numpy(), size=(1, 1, size, size), mode="nearest")
        assert np.array_equal(median_smooth(x, size).numpy(), ref), size
    for size in (2, 3):  # the paper's code uses scipy's default 'reflect': the same for these sizes
        ref = ndimage.median_filter(x.numpy(), size=(1, 1, size, size), mode="reflect")
        assert np.array_equal(median_smooth(x, size).numpy(), ref), size


def test_roc_auc_on_hand_made_scores() -> None:
    auc, fpr, tpr = roc_auc([0.1, 0.2, 0.3], [0.7, 0.8])
    assert auc == 1.0 and (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert roc_auc([0.7, 0.8], [0.1, 0.2, 0.3])[0] == 0.0
    assert roc_auc([0.5] * 4, [0.5] * 3)[0] == 0.5
    # 0.9 beats all 4 clean; 0.4 beats 0.1 and 0.35, ties 0.4 (1/2); 0.5 beats 3: (4 + 2.5 + 3) / 12
    auc, fpr, tpr = roc_auc(torch.tensor([0.1, 0.4, 0.35, 0.8], dtype=torch.float64), np.array([0.9, 0.4, 0.5]))
    assert auc == pytest.approx(9.5 / 12, abs=1e-12)
    assert float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)) == pytest.approx(auc, abs=1e-12)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    with pytest.raises(ValueError, match="at least one adversarial score"):
        roc_auc([0.1], [])


def test_calibration_gives_the_requested_fpr() -> None:
    model, detector = _cnn(), FeatureSqueezing()
    x = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    scores = detector.score(model, x)
    assert len(scores.unique()) == len(scores)  # distinct scores: the count above is exact
    for fpr in (0.05, 0.1, 0.5):
        threshold = detector.calibrate(model, x, fpr)
        assert int(detector.detect(model, x, threshold).sum()) == math.floor(fpr * len(x))
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match=r"fpr must be in \(0, 1\)"):
            detector.calibrate(model, x, bad)


def test_adaptive_attack_respects_the_ball_and_leaves_the_model_alone() -> None:
    model = _cnn(batchnorm=True).train()
    model[6].eval()  # a submodule in another mode than its parent must get its own mode back
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.arange(8) % 10
    result = adaptive_attack(model, FeatureSqueezing(), x, y, 0.1, 0.5, steps=5)
    assert (result.x_adv - x).abs().max() <= 0.1 + 1e-6
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    assert model.training and not model[6].training and model[3].training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    assert torch.equal(result.evaded, (result.pred != y) & (result.score <= 0.5))
    with pytest.raises(ValueError, match=r"Linf eps must be in \[0, 1\]"):
        adaptive_attack(model, FeatureSqueezing(), x, y, 1.5, 0.5)


def test_adaptive_attack_evades_at_least_as_often_as_pgd(trained) -> None:  # noqa: ANN001
    model, (x, y), calibration = trained
    # the paper's 2x2 median shifts the synthetic 2-pixel bars by a row, i.e. changes the class; 3x3 keeps them
    detector = FeatureSqueezing(median=3)
    report = evaluate_detector(
        model,
        x,
        y,
        0.3,
        ("fgsm", "pgd"),
        calibration=calibration,
        detector=detector,
        adaptive_steps=50,
    )
    assert report["calibration"]["false_positive_rate"]["value"] <= 0.05
    fgsm, pgd, adaptive = report["attacks"]
    assert [r["attack"] for r in report["attacks"]] == ["fgsm", "pgd", "adaptive"] and adaptive["adaptive"]
    assert adaptive["evasion_rate"]["value"] > 0
    assert adaptive["evasion_rate"]["value"] >= pgd["evasion_rate"]["value"]
    worst = report["worst_case_accuracy_with_detector"]["value"]
    assert worst <= min(r["accuracy_with_detector"]["value"] for r in report["attacks"])
    assert all(len(r["roc"]["fpr"]) <= 101 for r in report["attacks"])
    assert report["verdict"].startswith("Only the adaptive number counts")
    json.dumps(report, allow_nan=False)  # goes into a results file as it is
    plain = PGD()(model, x, y, Threat("linf", 0.3))  # the report's PGD row is PGD's own verdict
    flagged = detector.detect(model, plain.x_adv, report["threshold"])
    assert int((plain.success & ~flagged).sum()) == pgd["evasion_rate"]["correct"]


def test_adaptive_attack_keeps_every_point_classifier_pgd_gets_past_the_detector(trained) -> None:  # noqa: ANN001
    model, (x, y), _ = trained
    detector = FeatureSqueezing(median=3)
    plain = create_attack("pgd", steps=20)(model, x, y, Threat("linf", 0.3))
    threshold = detector.score(model, plain.x_adv)[plain.success].median().item()  # lets about half of them pass
    past = plain.success & ~detector.detect(model, plain.x_adv, threshold)  # PGD that ignores the detector, undetected
    assert past.any()
    result = adaptive_attack(model, detector, x, y, 0.3, threshold, steps=20)
    assert bool(result.evaded[past].all())  # the warm start keeps them: the adaptive attack is never the weaker
    assert int(result.evaded.sum()) >= int(past.sum())


def test_cli_writes_results_and_plot(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    model_path = tmp_path / "lin"
    save_model(create_model("linear"), model_path)
    data = ["--data-dir", str(synthetic[0]), "--checksums", str(synthetic[1]), "--calibration", "100"]
    out = tmp_path / "d"
    args = ["detect", "--model", f"{model_path}.safetensors", "--eps", "0.2", "--n", "20", "--every", "2", *data]
    proc = run_cli(*args, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["fgsm", "pgd", "adaptive", "results:"]
    assert "AUC" in lines[0] and "the number that counts" in lines[2]
    results = json.loads((out / "detect_results.json").read_text())
    assert results["n"] == 20 and results["calibration"]["n"] == 100 and "verdict" in results
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    adaptive = results["attacks"][2]["accuracy_with_detector"]
    assert "Only the adaptive number counts" in report and f"{100 * adaptive['value']:.2f}%" in report
    (out / "report.md").unlink()  # `advmnist report` rebuilds it from the JSON
    assert run_cli("report", str(out), "-q").returncode == 0 and (out / "report.md").read_text() == report
    assert_one_line_error(run_cli(*args, "--out", str(out)), "is not empty; use --overwrite")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--eps", "1.5"], "above 1"),
        (["--attack", "fgsm,nosuch"], "unknown attack 'nosuch'"),
        (["--fpr", "1"], "--fpr"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path: Path, flags: list[str], message: str) -> None:
    proc = run_cli("detect", "--model", str(tmp_path / "missing.safetensors"), *flags, "--out", str(tmp_path / "d"))
    assert_one_line_error(proc, message)
    assert not (tmp_path / "d").exists()
