"""Read and validate the files of a run folder (see docs/run-format.md), without torch.

Everything the report shows comes from these files. Validation happens here, once, so that tables,
plots and prose can index the parsed objects without defensive checks: a missing file, invalid JSON,
a missing key or a fraction outside [0, 1] raises `RunDirError` with one line naming the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

from advmnist.errors import RunDirError
from advmnist.io import read_json

CONFIG = "config.json"
MANIFEST = "manifest.json"
TRAINING_FILES = {
    "baseline": "baseline_results.json",
    "defended": "defended_training_results.json",
}
ATTACK_FILES = {
    "baseline": "fgsm_attack_results.json",
    "defended": "defended_fgsm_results.json",
}
SAMPLES = "samples.safetensors"
MODELS = ("baseline", "defended")

ACCURACY_KEYS = ("value", "correct", "n", "ci_low", "ci_high")
HISTORY_KEYS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "seconds",
)
TRAINING_KEYS = ("history", "clean_accuracy", "training_seconds")
ATTACK_KEYS = ("clean_accuracy", "results")
POINT_KEYS = ("eps", "eps_label", "robust_accuracy", "attack_success_rate")


@dataclass(frozen=True)
class Accuracy:
    """A measured accuracy: `correct / n` with a two-sided confidence interval."""

    value: float
    correct: int
    n: int
    ci_low: float
    ci_high: float
    confidence: float = 0.95
    method: str = "clopper-pearson"


@dataclass(frozen=True)
class SweepPoint:
    """One eps of an attack sweep."""

    eps: float
    eps_label: str
    robust: Accuracy
    attack_success_rate: float


@dataclass(frozen=True)
class RunFiles:
    """The parsed, validated JSON files of one run folder."""

    run_dir: Path
    config: dict[str, Any]
    manifest: dict[str, Any]
    training: dict[str, dict[str, Any]]  # model -> baseline_results.json / defended_training_...
    attacks: dict[str, dict[str, Any]]  # model -> fgsm_attack_results.json / defended_fgsm_...

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.run_dir.name))

    def clean(self, model: str) -> Accuracy:
        """Clean test accuracy of `model`, as measured by its attack sweep."""
        return accuracy(self.attacks[model]["clean_accuracy"])

    def sweep(self, model: str) -> list[SweepPoint]:
        """The FGSM sweep of `model`, sorted by eps."""
        points = [_point(row) for row in self.attacks[model]["results"]]
        return sorted(points, key=lambda p: p.eps)

    def point(self, model: str, eps_label: str) -> SweepPoint | None:
        return next((p for p in self.sweep(model) if p.eps_label == eps_label), None)

    def seed_eps(self) -> list[str]:
        """The seed's eps labels: from the baseline sweep, else the config, else the seed's own."""
        labels = self.attacks["baseline"].get("seed_eps") or self.config.get("seed_eps")
        return [str(label) for label in (labels or ["2/255", "4/255", "8/255"])]

    def eps_labels(self) -> list[str]:
        """Every eps label of either sweep, ordered by eps."""
        eps = {p.eps_label: p.eps for model in MODELS for p in self.sweep(model)}
        return sorted(eps, key=lambda label: eps[label])


@dataclass(frozen=True)
class Samples:
    """The arrays of samples.safetensors; images come back as `(N, 28, 28)` float arrays."""

    path: Path
    arrays: dict[str, np.ndarray]
    eps_labels: list[str]

    def array(self, key: str) -> np.ndarray:
        if key not in self.arrays:
            raise RunDirError(f"{self.path}: missing tensor {key!r}")
        return self.arrays[key]

    def images(self, key: str) -> np.ndarray:
        x = self.array(key)
        if x.ndim == 4 and x.shape[1] == 1:  # (N, 1, 28, 28) -> (N, 28, 28)
            x = x[:, 0]
        if x.ndim != 3:
            raise RunDirError(f"{self.path}: tensor {key!r} has shape {x.shape}, want (N, 28, 28)")
        return x

    def eps_index(self, eps_label: str) -> int | None:
        return self.eps_labels.index(eps_label) if eps_label in self.eps_labels else None


def accuracy(obj: Mapping[str, Any]) -> Accuracy:
    return Accuracy(
        value=float(obj["value"]),
        correct=int(obj["correct"]),
        n=int(obj["n"]),
        ci_low=float(obj["ci_low"]),
        ci_high=float(obj["ci_high"]),
        confidence=float(obj.get("confidence", 0.95)),
        method=str(obj.get("method", "clopper-pearson")),
    )


def _point(row: Mapping[str, Any]) -> SweepPoint:
    return SweepPoint(
        eps=float(row["eps"]),
        eps_label=str(row["eps_label"]),
        robust=accuracy(row["robust_accuracy"]),
        attack_success_rate=float(row["attack_success_rate"]),
    )


def load_run(run_dir: str | Path) -> RunFiles:
    """Read and validate the JSON files of `run_dir`; raise `RunDirError` naming a bad file."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"run folder {run_dir} does not exist")
    training = {m: _load_object(run_dir, f) for m, f in TRAINING_FILES.items()}
    attacks = {m: _load_object(run_dir, f) for m, f in ATTACK_FILES.items()}
    for model in MODELS:
        _check_training(training[model], run_dir / TRAINING_FILES[model])
        _check_attack(attacks[model], run_dir / ATTACK_FILES[model])
    return RunFiles(
        run_dir=run_dir,
        config=_load_object(run_dir, CONFIG),
        manifest=_load_object(run_dir, MANIFEST),
        training=training,
        attacks=attacks,
    )


def load_samples(run_dir: str | Path) -> Samples:
    """Read samples.safetensors and the eps labels of its metadata."""
    path = Path(run_dir) / SAMPLES
    if not path.is_file():
        raise RunDirError(f"run folder {run_dir} lacks {SAMPLES}")
    try:
        arrays = load_file(path)
        with safe_open(path, framework="numpy") as f:
            metadata = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error type for a corrupt header
        raise RunDirError(f"{path}: unreadable safetensors file ({e})") from e
    try:
        labels = json.loads(metadata.get("eps_labels", "[]"))
    except json.JSONDecodeError as e:
        raise RunDirError(f"{path}: metadata 'eps_labels' is not a JSON list ({e})") from e
    if not isinstance(labels, list):
        raise RunDirError(f"{path}: metadata 'eps_labels' is not a JSON list")
    return Samples(path=path, arrays=arrays, eps_labels=[str(label) for label in labels])


def _load_object(run_dir: Path, name: str) -> dict[str, Any]:
    path = run_dir / name
    if not path.is_file():
        raise RunDirError(f"run folder {run_dir} lacks {name}")
    try:
        obj = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunDirError(f"{path}: invalid JSON ({e})") from e
    if not isinstance(obj, dict):
        raise RunDirError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _require(obj: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in obj]
    if missing:
        raise RunDirError(f"{where}: missing key(s) {', '.join(missing)}")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RunDirError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _fraction(value: Any, where: str) -> float:
    x = _number(value, where)
    if not 0.0 <= x <= 1.0:
        raise RunDirError(f"{where}: fraction {x!r} is outside [0, 1]")
    return x


def _check_accuracy(obj: Any, where: str) -> None:
    if not isinstance(obj, dict):
        raise RunDirError(f"{where}: expected an accuracy object")
    _require(obj, ACCURACY_KEYS, where)
    value, low, high = (_fraction(obj[k], f"{where}.{k}") for k in ("value", "ci_low", "ci_high"))
    correct, n = (_number(obj[k], f"{where}.{k}") for k in ("correct", "n"))
    if n <= 0 or not 0 <= correct <= n:
        raise RunDirError(f"{where}: need 0 <= correct <= n and n > 0, got {correct}/{n}")
    if not low - 1e-9 <= value <= high + 1e-9:
        raise RunDirError(f"{where}: value {value} is outside its interval [{low}, {high}]")


def _check_training(obj: dict[str, Any], path: Path) -> None:
    _require(obj, TRAINING_KEYS, str(path))
    history = obj["history"]
    if not isinstance(history, list) or not history:
        raise RunDirError(f"{path}: 'history' must be a non-empty list of epochs")
    for i, row in enumerate(history):
        where = f"{path}: history[{i}]"
        if not isinstance(row, dict):
            raise RunDirError(f"{where}: expected an object")
        _require(row, HISTORY_KEYS, where)
        for key in HISTORY_KEYS:
            check = _fraction if key.endswith("accuracy") else _number
            check(row[key], f"{where}.{key}")
    _check_accuracy(obj["clean_accuracy"], f"{path}: clean_accuracy")
    if _number(obj["training_seconds"], f"{path}: training_seconds") < 0:
        raise RunDirError(f"{path}: training_seconds is negative")


def _check_attack(obj: dict[str, Any], path: Path) -> None:
    _require(obj, ATTACK_KEYS, str(path))
    _check_accuracy(obj["clean_accuracy"], f"{path}: clean_accuracy")
    results = obj["results"]
    if not isinstance(results, list) or not results:
        raise RunDirError(f"{path}: 'results' must be a non-empty list")
    labels: set[str] = set()
    for i, row in enumerate(results):
        where = f"{path}: results[{i}]"
        if not isinstance(row, dict):
            raise RunDirError(f"{where}: expected an object")
        _require(row, POINT_KEYS, where)
        if _number(row["eps"], f"{where}.eps") < 0:
            raise RunDirError(f"{where}: eps is negative")
        label = row["eps_label"]
        if not isinstance(label, str) or label in labels:
            raise RunDirError(f"{where}: eps_label {label!r} is not a new string")
        labels.add(label)
        _check_accuracy(row["robust_accuracy"], f"{where}.robust_accuracy")
        _fraction(row["attack_success_rate"], f"{where}.attack_success_rate")
