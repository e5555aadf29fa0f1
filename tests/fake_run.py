"""A complete, fabricated run folder (docs/run-format.md) for reporting tests; numpy only, no torch."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

N_TEST = 10_000
EPS = {
    "2/255": 2 / 255,
    "4/255": 4 / 255,
    "8/255": 8 / 255,
    "0.1": 0.1,
    "0.2": 0.2,
    "0.3": 0.3,
}
SEED_EPS = ["2/255", "4/255", "8/255"]
# Fractions shaped like a real MNIST run: the seed's numbers at small eps, a collapse at 0.3.
ACCURACY = {
    "baseline": {
        "clean": 0.9901,
        "2/255": 0.9868,
        "4/255": 0.9835,
        "8/255": 0.9695,
        "0.1": 0.62,
        "0.2": 0.12,
        "0.3": 0.02,
    },
    "defended": {
        "clean": 0.9913,
        "2/255": 0.9892,
        "4/255": 0.9865,
        "8/255": 0.9785,
        "0.1": 0.85,
        "0.2": 0.40,
        "0.3": 0.10,
    },
}
K = 5
# The strong attacks (`<model>_robust_results.json`) on every 10th test image: far below FGSM.
N_ROBUST = 1000
ROBUST_EPS = {"0.1": 0.1, "0.2": 0.2, "0.3": 0.3}
ROBUST_CLEAN = {"baseline": 0.991, "defended": 0.992}
ROBUST_ACCURACY = {
    "baseline": {"pgd": {"0.1": 0.30, "0.2": 0.01, "0.3": 0.0}, "autoattack": {"0.1": 0.25, "0.2": 0.0, "0.3": 0.0}},
    "defended": {
        "pgd": {"0.1": 0.55, "0.2": 0.08, "0.3": 0.012},
        "autoattack": {"0.1": 0.50, "0.2": 0.05, "0.3": 0.004},
    },
}
ROBUST_SETTINGS = {"pgd": {"steps": 40, "rel_step_size": 0.025, "restarts": 1}, "autoattack": {"version": "standard"}}


def accuracy_object(value: float, n: int = N_TEST) -> dict[str, Any]:
    """An accuracy object with a Wilson interval (close enough to Clopper-Pearson for a fake)."""
    correct = round(value * n)
    p, z = correct / n, 1.959964
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {
        "value": p,
        "correct": correct,
        "n": n,
        "ci_low": max(0.0, centre - half),
        "ci_high": min(1.0, centre + half),
        "method": "clopper-pearson",
        "confidence": 0.95,
    }


def _write(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def _training(model: str, epochs: int, seconds: float, train_eps: float | None) -> dict[str, Any]:
    slow = 1.0 if train_eps is None else 1.5  # the defended model learns more slowly
    history = [
        {
            "epoch": e,
            "train_loss": 0.5 * slow / e,
            "train_accuracy": 1 - 0.1 * slow / e,
            "test_loss": 0.2 * slow / e,
            "test_accuracy": 0.995 - 0.03 * slow / e,
            "seconds": seconds / epochs,
        }
        for e in range(1, epochs + 1)
    ]
    return {
        "schema_version": 1,
        "model": model,
        "recipe": "standard" if train_eps is None else "fgsm-mix",
        "arch": "seed-cnn",
        "params": 3274634,
        "seed": 42,
        "epochs": epochs,
        "batch_size": 128,
        "lr": 0.01,
        "momentum": 0.9,
        "train_eps": train_eps,
        "precision": "fp32",
        "n_train": 60000,
        "n_test": N_TEST,
        "history": history,
        "clean_accuracy": accuracy_object(ACCURACY[model]["clean"]),
        "training_seconds": seconds,
        "checkpoint": f"models/{model}.safetensors",
    }


def _attack(model: str) -> dict[str, Any]:
    results = [
        {
            "eps": eps,
            "eps_label": label,
            "robust_accuracy": accuracy_object(ACCURACY[model][label]),
            "attack_success_rate": ACCURACY[model]["clean"] - ACCURACY[model][label],
            "max_linf": eps,
        }
        for label, eps in EPS.items()
    ]
    return {
        "schema_version": 1,
        "model": model,
        "attack": "fgsm",
        "norm": "linf",
        "n": N_TEST,
        "seed": 42,
        "clean_accuracy": accuracy_object(ACCURACY[model]["clean"]),
        "results": results,
        "seed_eps": SEED_EPS,
        "seconds": 4.1,
        "per_sample": f"per_sample/{model}_fgsm.jsonl",
    }


def _broken_by(attack: str, broken: int) -> dict[str, int]:
    """Which attack broke the points first: all of them for PGD, mostly APGD-CE in AutoAttack."""
    if attack != "autoattack":
        return {attack: broken}
    apgd_t = min(5, broken)
    fab_t = min(1, broken - apgd_t)
    return {"apgd-ce": broken - apgd_t - fab_t, "apgd-t": apgd_t, "fab-t": fab_t}


def robust_results(
    model: str,
    accuracies: dict[str, dict[str, float]] | None = None,
    clean: float | None = None,
    n: int = N_ROBUST,
    flagged: bool = False,
) -> dict[str, Any]:
    """The body of `<model>_robust_results.json` (and of an `eval_results.json`): attack -> eps label -> accuracy."""
    accuracies = accuracies or ROBUST_ACCURACY[model]
    clean = ROBUST_CLEAN[model] if clean is None else clean
    clean_acc = accuracy_object(clean, n)
    attacks = []
    for attack, by_eps in accuracies.items():
        results = []
        for label, value in by_eps.items():
            robust = accuracy_object(value, n)
            broken = clean_acc["correct"] - robust["correct"]
            results.append(
                {
                    "eps": ROBUST_EPS[label],
                    "eps_label": label,
                    "robust_accuracy": robust,
                    "attack_success_rate": broken / n,
                    "max_linf": ROBUST_EPS[label],
                    "broken_by": _broken_by(attack, broken),
                    "queries": {"total": 40 * n, "median_broken": 7},
                }
            )
        attacks.append(
            {
                "attack": attack,
                "norm": "linf",
                "n": n,
                "seed": 42,
                "clean_accuracy": clean_acc,
                "results": results,
                "seconds": 12.3,
                "forwards": 40 * n,
                "backwards": 39 * n,
                "settings": ROBUST_SETTINGS.get(attack, {}),
                "checks": [],
            }
        )
    checks = [
        {"name": "eval mode is deterministic", "passed": True, "measured": "max |diff| 0", "why": "fixed logits"},
        {
            "name": "stronger attacks find more",
            "passed": not flagged,
            "measured": "autoattack <= pgd at every eps",
            "why": "a stronger attack must not leave more points robust",
        },
    ]
    return {
        "schema_version": 1,
        "model": model,
        "every": 10,
        "norm": "linf",
        "n": n,
        "seed": 42,
        "clean_accuracy": clean_acc,
        "attacks": attacks,
        "checks": checks,
        "per_sample": f"per_sample/{model}_robust.jsonl",
    }


def eval_results(model_path: str, **kwargs: Any) -> dict[str, Any]:
    """An `eval_results.json` of `advmnist eval` (schema 2) for the checkpoint `model_path`."""
    body = robust_results("defended", **kwargs)
    return {**body, "schema_version": 2, "model": model_path, "arch": "seed-cnn", "per_sample": "per_sample.jsonl"}


def _samples(path: Path) -> None:
    rng = np.random.default_rng(0)
    images = (rng.random((16 + K, 28, 28)) ** 6).astype(np.float32)  # sparse bright "strokes"
    labels = rng.integers(0, 10, size=16 + K).astype(np.int64)
    tensors = {
        "samples/x": images[:16],
        "samples/y": labels[:16],
        "examples/x": images[16:],
        "examples/y": labels[16:],
    }
    for model in ACCURACY:
        tensors[f"{model}/clean_pred"] = labels[16:].copy()
        for i, eps in enumerate(EPS.values()):
            sign = np.sign(rng.normal(size=(K, 28, 28))).astype(np.float32)
            tensors[f"{model}/adv/{i}"] = np.clip(images[16:] + eps * sign, 0, 1)
            tensors[f"{model}/adv_pred/{i}"] = np.where(rng.random(K) < eps * 3, 3, labels[16:])
    save_file(tensors, str(path), metadata={"eps_labels": json.dumps(list(EPS))})


def make_fake_run(path: Path, robust: bool = False) -> Path:
    """Write every file of a finished run (except model weights) into `path`; return `path`.

    With `robust`, also the strong-attack files `<model>_robust_results.json` of newer runs.
    """
    path.mkdir(parents=True, exist_ok=True)
    _write(
        path / "config.json",
        {
            "name": "fake",
            "seed": 42,
            "data": {"root": "data/mnist"},
            "batch_size": 128,
            "lr": 0.01,
            "momentum": 0.9,
            "eval_eps": list(EPS),
            "seed_eps": SEED_EPS,
            "baseline": {"epochs": 5, "recipe": "standard"},
            "defended": {"epochs": 8, "recipe": "fgsm-mix", "train_eps": "8/255"},
            "precision": "fp32",
            "quick": False,
            "n_train": 60000,
            "n_test": N_TEST,
        },
    )
    _write(
        path / "manifest.json",
        {
            "schema_version": 1,
            "advmnist_version": "0.1.0",
            "seed": 42,
            "python": "3.11.2",
            "torch": "2.5.1",
            "numpy": "2.1.0",
            "platform": "Linux-x86_64",
            "git_sha": "0123abcd",
            "data_sha256": {"t10k-images-idx3-ubyte.gz": "ab" * 32},
            "timings": {"baseline": 51.0, "defended": 63.2, "fgsm": 8.2},
            "peak_rss_mb": 1234.5,
            "command": "advmnist run --config configs/seed.toml",
        },
    )
    _write(path / "baseline_results.json", _training("baseline", 5, 51.0, None))
    _write(path / "defended_training_results.json", _training("defended", 8, 63.2, 8 / 255))
    _write(path / "fgsm_attack_results.json", _attack("baseline"))
    _write(path / "defended_fgsm_results.json", _attack("defended"))
    for model in ACCURACY:
        cell = {"pred": 7, "success": False, "norm": 0.0, "queries": 2, "broken_by": None}
        rows = [
            {"index": i, "label": 7, "clean_pred": 7, "attacks": {"fgsm": dict.fromkeys(EPS, cell)}} for i in range(3)
        ]
        jsonl = path / "per_sample" / f"{model}_fgsm.jsonl"
        jsonl.parent.mkdir(parents=True, exist_ok=True)
        jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    _samples(path / "samples.safetensors")
    if robust:
        for model in ACCURACY:
            _write(path / f"{model}_robust_results.json", robust_results(model))
    return path
