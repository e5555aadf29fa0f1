"""End to end: `advmnist run` writes every output, is deterministic, resumes after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from matplotlib.image import imread

from conftest import run_cli, synthetic_config

PLOTS = [
    "sample_mnist_images",
    "baseline_training_curves",
    "adversarial_examples_fgsm",
    "robustness_curve_baseline",
    "defense_comparison",
    "training_comparison",
    "final_robustness_comparison",
]
ACCURACY = {
    "type": "object",
    "required": ["value", "correct", "n", "ci_low", "ci_high", "method", "confidence"],
    "properties": {
        "value": {"type": "number", "minimum": 0, "maximum": 1},
        "ci_low": {"type": "number", "minimum": 0, "maximum": 1},
        "ci_high": {"type": "number", "minimum": 0, "maximum": 1},
        "n": {"type": "integer", "minimum": 1},
    },
}
TRAINING = {
    "type": "object",
    "required": [
        "model",
        "recipe",
        "arch",
        "params",
        "seed",
        "epochs",
        "history",
        "clean_accuracy",
        "training_seconds",
        "checkpoint",
    ],
    "properties": {
        "clean_accuracy": ACCURACY,
        "history": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy"],
            },
        },
    },
}
ATTACK = {
    "type": "object",
    "required": ["model", "attack", "norm", "n", "clean_accuracy", "results", "seed_eps", "per_sample"],
    "properties": {
        "clean_accuracy": ACCURACY,
        "results": {
            "type": "array",
            "minItems": 6,
            "items": {
                "type": "object",
                "required": ["eps", "eps_label", "robust_accuracy", "attack_success_rate"],
                "properties": {"robust_accuracy": ACCURACY},
            },
        },
    },
}
MANIFEST = {
    "type": "object",
    "required": [
        "seed",
        "advmnist_version",
        "torch",
        "python",
        "data_sha256",
        "timings",
        "total_seconds",
        "peak_rss_mb",
        "command",
        "git_sha",
    ],
    "properties": {"total_seconds": {"type": "number"}, "peak_rss_mb": {"type": "number"}},
}
RESULT_FILES = {
    "baseline_results.json": TRAINING,
    "defended_training_results.json": TRAINING,
    "fgsm_attack_results.json": ATTACK,
    "defended_fgsm_results.json": ATTACK,
    "manifest.json": MANIFEST,
}


def _metrics(out: Path) -> dict[str, Any]:
    """Every number of a run that is not a timing."""

    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if "seconds" not in k}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    return {name: strip(json.loads((out / name).read_text())) for name in RESULT_FILES if name != "manifest.json"}


def check_run_outputs(out: Path, n_test: int) -> None:
    for name, schema in RESULT_FILES.items():
        jsonschema.validate(json.loads((out / name).read_text()), schema)
    assert json.loads((out / "config.json").read_text())["seed"] == 42
    for model in ("baseline", "defended"):
        card = json.loads((out / "models" / f"{model}.json").read_text())
        assert card["arch"] == "seed-cnn" and card["params"] == 3_274_634 and len(card["sha256"]) == 64
        assert "fgsm" in card["metrics"] and "clean_accuracy" in card["metrics"]
        rows = (out / "per_sample" / f"{model}_fgsm.jsonl").read_text().splitlines()
        assert len(rows) == n_test and set(json.loads(rows[0])) == {"index", "label", "clean_pred", "attacks"}
    report = (out / "report.md").read_text()
    text = (out / "report.txt").read_text()
    for plot in PLOTS:
        image = imread(out / "plots" / f"{plot}.png")
        assert image.ndim == 3 and image.shape[0] > 100 and np.ptp(image) > 0, plot
        assert f"plots/{plot}.png" in report and f"{plot}.png" in text
    assert "[" in (out / "results_tables.txt").read_text()  # intervals in the tables
    assert "8/255" in report and "0.3" in report and "natural" in report.lower()


def test_quick_run_writes_everything_and_report_rebuilds_from_files(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    config = synthetic_config(tmp_path, synthetic)
    out = tmp_path / "run"
    proc = run_cli("run", "--config", str(config), "--out", str(out), "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "clean" in proc.stdout and "report.md" in proc.stdout
    check_run_outputs(out, n_test=200)
    tables = (out / "results_tables.txt").read_text()
    for plot in PLOTS:
        (out / "plots" / f"{plot}.png").unlink()
    (out / "report.md").unlink()
    # The report needs only the run folder: no data, no torch.
    env = {"ADVMNIST_CACHE": str(tmp_path / "no-cache")}
    rebuilt = run_cli("report", str(out), "-q", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (out / "results_tables.txt").read_text() == tables
    assert all((out / "plots" / f"{plot}.png").is_file() for plot in PLOTS)
    (out / "fgsm_attack_results.json").write_text("{broken")
    bad = run_cli("report", str(out), "-q")
    assert bad.returncode == 2 and "fgsm_attack_results.json" in bad.stderr


def test_same_seed_same_metrics_and_resume_after_kill(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    # PGD only in the strong section: AutoAttack's cascade would cost most of the time here and
    # is exercised by the test above. The killed-and-resumed run is the second run of the same
    # seed: it must end with exactly the first run's numbers (determinism and resume at once).
    config = synthetic_config(tmp_path, synthetic, epochs=(3, 3), robust_attacks=("pgd",))
    first, killed = tmp_path / "a", tmp_path / "killed"
    proc = run_cli("run", "--config", str(config), "--out", str(first), "-q")
    assert proc.returncode == 0, proc.stderr[-3000:]

    # Kill during the defended model's training, after at least one of its epochs is checkpointed.
    proc = subprocess.Popen(
        [sys.executable, "-m", "advmnist", "run", "--config", str(config), "--out", str(killed), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    state = killed / "checkpoints" / "defended" / "state.json"
    deadline = time.monotonic() + 300
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.exists() and not (killed / "defended_training_results.json").exists(), "killed too late"
    epoch_at_kill = json.loads(state.read_text())["epoch"]
    assert 1 <= epoch_at_kill < 3
    resumed = run_cli("run", "--config", str(config), "--out", str(killed), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed after epoch {epoch_at_kill}" in resumed.stderr
    assert _metrics(killed) == _metrics(first)
    assert json.loads((killed / "manifest.json").read_text())["resumed"] == 1


@pytest.mark.slow
def test_quick_run_on_real_mnist(tmp_path: Path, real_mnist: None) -> None:
    out = tmp_path / "quick"
    proc = run_cli("run", "--quick", "--out", str(out), "-q")
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_run_outputs(out, n_test=1000)
    baseline = json.loads((out / "baseline_results.json").read_text())
    assert baseline["n_train"] == 5000 and baseline["clean_accuracy"]["value"] > 0.85
