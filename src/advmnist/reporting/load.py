"""Read and validate the files of a run folder (see docs/run-format.md), without torch.

Everything the report shows comes from these files. Validation happens here, once, so that tables,
plots and prose can index the parsed objects without defensive checks: a missing file, invalid JSON,
a missing key or a fraction outside [0, 1] raises `RunDirError` with one line naming the file.
The strong-attack files (`<model>_robust_results.json`) are optional: older runs lack them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
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
ROBUST_FILES = {
    "baseline": "baseline_robust_results.json",
    "defended": "defended_robust_results.json",
}
ROBUST_SCHEMAS = (1, 2)  # 1: the study's robust files, 2: `advmnist eval`'s eval_results.json
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
ROBUST_KEYS = ("norm", "clean_accuracy", "attacks")


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
class AttackCurve:
    """One attack of an evaluation: its robust accuracy at each eps, sorted by eps."""

    attack: str
    points: tuple[SweepPoint, ...]
    broken_by: dict[str, dict[str, int]]  # eps label -> the attack (of a cascade) that broke a point first -> count
    settings: dict[str, Any]

    def point(self, eps_label: str) -> SweepPoint | None:
        return next((p for p in self.points if p.eps_label == eps_label), None)


@dataclass(frozen=True)
class RobustResults:
    """A strong-attack evaluation: `<model>_robust_results.json` of a run, or an `eval_results.json`."""

    source: str  # the file it came from, for messages
    model: str
    norm: str
    every: int  # the points are every `every`-th test image
    clean: Accuracy
    attacks: tuple[AttackCurve, ...]
    checks: tuple[dict[str, Any], ...]  # the evaluation's checks, then each attack's

    @property
    def n(self) -> int:
        return self.clean.n

    def attack(self, name: str) -> AttackCurve | None:
        return next((a for a in self.attacks if a.attack == name), None)


@dataclass(frozen=True)
class RunFiles:
    """The parsed, validated JSON files of one run folder."""

    run_dir: Path
    config: dict[str, Any]
    manifest: dict[str, Any]
    training: dict[str, dict[str, Any]]  # model -> baseline_results.json / defended_training_...
    attacks: dict[str, dict[str, Any]]  # model -> fgsm_attack_results.json / defended_fgsm_...
    robust: dict[str, RobustResults] = field(default_factory=dict)  # model -> <model>_robust_results.json, if any

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
    robust = {m: load_robust(run_dir / f) for m, f in ROBUST_FILES.items() if (run_dir / f).is_file()}
    return RunFiles(
        run_dir=run_dir,
        config=_load_object(run_dir, CONFIG),
        manifest=_load_object(run_dir, MANIFEST),
        training=training,
        attacks=attacks,
        robust=robust,
    )


def load_robust(source: str | Path | Mapping[str, Any], where: str | None = None) -> RobustResults:
    """Read and validate a strong-attack result: a file path, or its already-parsed JSON object.

    Takes `<model>_robust_results.json` (a run's strong attacks), `eval_results.json` (`advmnist eval`)
    and, as a one-attack evaluation, a run's FGSM sweep file. Raises `RunDirError` naming the source.
    """
    if isinstance(source, Mapping):
        obj, where = dict(source), where or "results"
    else:
        path = Path(source)
        if not path.is_file():
            raise RunDirError(f"result file {path} does not exist")
        obj, where = _load_object(path.parent, path.name), where or str(path)
    if "attacks" not in obj and {"attack", "results"} <= obj.keys():
        one = {k: v for k, v in obj.items() if k != "checks"}  # its checks stay at the top, counted once
        obj = {**obj, "attacks": [one]}  # a single-attack file such as fgsm_attack_results.json
    _require(obj, ROBUST_KEYS, where)
    version = obj.get("schema_version", 1)
    if version not in ROBUST_SCHEMAS:
        raise RunDirError(f"{where}: unsupported schema_version {version!r} (this advmnist reads {ROBUST_SCHEMAS})")
    _check_accuracy(obj["clean_accuracy"], f"{where}: clean_accuracy")
    attacks = obj["attacks"]
    if not isinstance(attacks, list) or not attacks:
        raise RunDirError(f"{where}: 'attacks' must be a non-empty list")
    curves = [_attack_curve(row, f"{where}: attacks[{i}]") for i, row in enumerate(attacks)]
    if len({c.attack for c in curves}) != len(curves):
        raise RunDirError(f"{where}: an attack appears twice in 'attacks'")
    every = obj.get("every", 1)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise RunDirError(f"{where}: 'every' must be a positive integer, got {every!r}")
    checks = _checks_list(obj.get("checks", []), f"{where}: checks")
    for i, row in enumerate(attacks):
        checks += _checks_list(row.get("checks", []), f"{where}: attacks[{i}].checks")
    return RobustResults(
        source=where,
        model=str(obj.get("model") or "model"),
        norm=str(obj["norm"]),
        every=every,
        clean=accuracy(obj["clean_accuracy"]),
        attacks=tuple(curves),
        checks=tuple(checks),
    )


def _attack_curve(row: Any, where: str) -> AttackCurve:
    if not isinstance(row, dict):
        raise RunDirError(f"{where}: expected an object")
    _require(row, ("attack", "results"), where)
    if not isinstance(row["attack"], str) or not row["attack"]:
        raise RunDirError(f"{where}: 'attack' must be a name, got {row['attack']!r}")
    _check_results(row["results"], f"{where}.results")
    broken_by = {}
    for i, point in enumerate(row["results"]):
        counts = point.get("broken_by", {})
        if not isinstance(counts, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()
        ):
            raise RunDirError(f"{where}.results[{i}].broken_by: expected {{attack: count}}, got {counts!r}")
        broken_by[str(point["eps_label"])] = {str(k): int(v) for k, v in counts.items()}
    settings = row.get("settings", {})
    return AttackCurve(
        attack=row["attack"],
        points=tuple(sorted((_point(p) for p in row["results"]), key=lambda p: p.eps)),
        broken_by=broken_by,
        settings=settings if isinstance(settings, dict) else {},
    )


def _checks_list(checks: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(checks, list) or not all(isinstance(c, dict) for c in checks):
        raise RunDirError(f"{where}: expected a list of check objects")
    return list(checks)


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
    _check_results(obj["results"], f"{path}: results")


def _check_results(results: Any, name: str) -> None:
    """A non-empty list of sweep points with distinct eps labels; `name` says where it is."""
    if not isinstance(results, list) or not results:
        raise RunDirError(f"{name}: must be a non-empty list")
    labels: set[str] = set()
    for i, row in enumerate(results):
        where = f"{name}[{i}]"
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
