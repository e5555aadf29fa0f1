"""The single-model tasks behind `advmnist train` and `advmnist eval`: one call, one output folder."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import torch

from advmnist.attacks import parse_attacks
from advmnist.data import MNIST, DatasetSpec, load_mnist
from advmnist.errors import ConfigError
from advmnist.evaluation import Evaluation, accuracy, evaluate, parse_eps_list
from advmnist.io import read_json, write_json
from advmnist.manifest import make_manifest, now, peak_rss_mb
from advmnist.models import count_parameters, create_model, load_model, save_model
from advmnist.models.factory import load_user_model
from advmnist.rundir import prepare_run_dir
from advmnist.training import TrainConfig, TrainResult, evaluate_clean, fit

log = logging.getLogger(__name__)


def _spec(checksums: str | None) -> DatasetSpec:
    return DatasetSpec.from_checksums(checksums) if checksums else MNIST


def test_points(size: int, every: int, n: int | None) -> torch.Tensor:
    """Indices of every `every`-th of `size` test images, the first `n` of those."""
    index = torch.arange(0, size, every)
    if n is not None:
        if not 1 <= n <= len(index):
            raise ValueError(f"--n must be in [1, {len(index)}] (test images taken every {every}), got {n}")
        index = index[:n]
    return index


def train_model(
    cfg: TrainConfig,
    out: str | Path,
    *,
    arch: str = "seed-cnn",
    n_train: int | None = None,
    data_dir: str | None = None,
    checksums: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = False,
    command: str = "",
) -> TrainResult:
    """Train one model into `out/`: `model.safetensors` + `model.json`, `training_results.json`."""
    out = Path(out)
    missing = [p for p in cfg.ensemble_models if not Path(p).is_file()]
    if missing:
        raise ConfigError(f"ensemble model(s) not found: {', '.join(missing)}")
    torch.manual_seed(cfg.seed)
    model = create_model(arch)  # a bad architecture or setting fails here, before the run folder is touched
    config = {"task": "train", "arch": arch, "n_train": n_train, "data_dir": data_dir, **cfg.to_dict()}
    prepare_run_dir(out, config, overwrite=overwrite, resume=resume)
    spec = _spec(checksums)
    train, test = load_mnist("train", data_dir, n_train, spec=spec), load_mnist("test", data_dir, spec=spec)
    write_json(out / "config.json", config)
    manifest = make_manifest(cfg.seed, device, {**train.sha256, **test.sha256}, command)
    result = fit(
        model,
        (train.x, train.y),
        (test.x, test.y),
        cfg,
        state_dir=out / "checkpoint",
        resume=resume,
        progress=progress,
        device=device,
    )
    _, _, pred = evaluate_clean(model, test.x, test.y)
    clean = accuracy(int((pred.cpu() == test.y).sum()), len(test))
    result.clean_accuracy = clean
    save_model(model, out / "model", recipe=cfg.to_dict(), seed=cfg.seed, metrics={"clean_accuracy": clean})
    write_json(
        out / "training_results.json",
        {
            "arch": arch,
            "params": count_parameters(model),
            **cfg.to_dict(),
            "history": result.history,
            "clean_accuracy": clean,
            "training_seconds": result.seconds,
            "best_epoch": result.best_epoch,
            "collapse": result.collapse,
            "checkpoint": "model.safetensors",
        },
    )
    manifest.update(finished=now(), total_seconds=result.seconds, peak_rss_mb=peak_rss_mb())
    write_json(out / "manifest.json", manifest)
    return result


def evaluate_checkpoint(
    model_path: str | Path | None,
    out: str | Path,
    *,
    factory: str | None = None,
    weights: str | Path | None = None,
    attack: str = "fgsm",
    eps: str = "2/255,4/255,8/255",
    norm: str = "linf",
    n: int | None = None,
    every: int = 1,
    batch_size: int = 256,
    seed: int = 0,
    data_dir: str | None = None,
    checksums: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    bf16: bool = False,
    device: str = "cpu",
    progress: bool = False,
    command: str = "",
) -> Evaluation:
    """Attack a saved model on test images; write `eval_results.json` + `per_sample.jsonl` into `out`.

    The model is an advmnist checkpoint (`model_path`) or any classifier taking [0, 1] images:
    `factory="package.module:function"` builds it and `weights` (safetensors) fills it. The images
    are every `every`-th test image, the first `n` of those. `resume` continues a killed evaluation
    of the same configuration in `out` (and refuses any other).
    """
    budgets = parse_eps_list(eps, max_eps=1.0 if norm == "linf" else None)
    attacks = parse_attacks(attack, bf16=bf16)
    if batch_size < 1 or every < 1:
        raise ValueError(f"batch size and --every must be >= 1, got {batch_size}, {every}")
    if (model_path is None) == (factory is None) or (factory is not None and weights is None):
        raise ValueError("give either a model checkpoint, or a model factory together with its weights")
    model, card = load_model(model_path) if model_path is not None else load_user_model(str(factory), str(weights))
    model.to(device)
    test = load_mnist("test", data_dir, spec=_spec(checksums))
    index = test_points(len(test), every, n)
    out = Path(out)
    config = {
        "task": "eval",
        "model": str(model_path or factory),
        "model_sha256": card["sha256"],
        "attacks": {a.name: dataclasses.asdict(a) for a in attacks},
        "norm": norm,
        "eps": [b[0] for b in budgets],
        "n": len(index),
        "every": every,
        "batch_size": batch_size,
        "seed": seed,
        "data_sha256": test.sha256,
    }
    resuming = prepare_run_dir(out, config, overwrite=overwrite, resume=resume)
    if not resuming:
        for name in ("per_sample.jsonl", "per_sample.batches.jsonl"):
            (out / name).unlink(missing_ok=True)
    write_json(out / "config.json", config)
    start = time.perf_counter()
    result = evaluate(
        model,
        test.x[index],
        test.y[index],
        attack=attacks,
        norm=norm,
        epsilons=[b[1] for b in budgets],
        labels=[b[0] for b in budgets],
        indices=index.tolist(),
        batch_size=batch_size,
        seed=seed,
        out=out / "per_sample.jsonl",
        resume=resuming,
        progress=progress,
    )
    summary: dict[str, Any] = {
        "schema_version": 2,
        "model": str(model_path or factory),
        "arch": card["arch"],
        "every": every,
        **result.to_dict(),
        "per_sample": "per_sample.jsonl",
    }
    write_json(out / "eval_results.json", summary)
    manifest = make_manifest(seed, device, test.sha256, command)
    manifest.update(finished=now(), total_seconds=time.perf_counter() - start, peak_rss_mb=peak_rss_mb())
    write_json(out / "manifest.json", manifest)
    return result


def detect_checkpoint(
    model_path: str | Path,
    out: str | Path,
    *,
    attack: str = "fgsm,pgd",
    eps: str = "0.1",
    n: int | None = None,
    every: int = 1,
    calibration: int = 1000,
    fpr: float = 0.05,
    seed: int = 0,
    data_dir: str | None = None,
    checksums: str | None = None,
    overwrite: bool = False,
    device: str = "cpu",
    command: str = "",
) -> dict[str, Any]:
    """Feature squeezing on a saved model; write `detect_results.json` and `roc.png` into `out`.

    The threshold is calibrated on the last `calibration` training images (never the evaluated
    ones) to flag a fraction `fpr` of them. The evaluated images are every `every`-th test image, the
    first `n` of those, attacked at Linf `eps` by `attack` and then by the adaptive attack.
    """
    from advmnist.defenses import evaluate_detector
    from advmnist.errors import RunDirError
    from advmnist.reporting.detection import build_detection_report
    from advmnist.reporting.roc import plot_roc

    budgets = parse_eps_list(eps, max_eps=1.0)
    if len(budgets) != 1:
        raise ValueError(f"detect takes one eps, got {eps!r}")
    attacks = parse_attacks(attack)
    unfit = [a.name for a in attacks if "linf" not in a.norms]
    if unfit:
        raise ValueError(f"detect runs Linf attacks, and {', '.join(unfit)} has no Linf version")
    if not 0 < fpr < 1:
        raise ValueError(f"--fpr must be in (0, 1), got {fpr}")
    if every < 1 or calibration < 1:
        raise ValueError(f"--every and --calibration must be >= 1, got {every}, {calibration}")
    model, card = load_model(model_path)
    model.to(device)
    spec = _spec(checksums)
    train, test = load_mnist("train", data_dir, spec=spec), load_mnist("test", data_dir, spec=spec)
    if calibration >= len(train):
        raise ValueError(f"--calibration must be below {len(train)} (the training images), got {calibration}")
    index = test_points(len(test), every, n)
    out = Path(out)
    config = {
        "task": "detect",
        "model": str(model_path),
        "model_sha256": card["sha256"],
        "attacks": {a.name: dataclasses.asdict(a) for a in attacks},
        "eps": budgets[0][0],
        "n": len(index),
        "every": every,
        "calibration": calibration,
        "fpr": fpr,
        "seed": seed,
        "data_sha256": {**train.sha256, **test.sha256},
    }
    if not overwrite and out.is_dir() and any(out.iterdir()):  # no --resume here, so say only what works
        raise RunDirError(f"{out}: is not empty; use --overwrite, or choose another --out")
    prepare_run_dir(out, config, overwrite=overwrite, resume=False)
    write_json(out / "config.json", config)
    start = time.perf_counter()
    results = evaluate_detector(
        model,
        test.x[index].to(device),
        test.y[index].to(device),
        budgets[0][1],
        attacks,
        fpr=fpr,
        seed=seed,
        calibration=(train.x[-calibration:].to(device), train.y[-calibration:].to(device)),
    )
    summary = {
        "schema_version": 1,
        "model": str(model_path),
        "arch": card["arch"],
        "eps_label": budgets[0][0],
        "every": every,
        "calibration_images": f"the last {calibration} training images",
        **results,
        "plot": "roc.png",
    }
    write_json(out / "detect_results.json", summary)
    plot_roc(summary, out / "roc.png")
    build_detection_report(out)
    manifest = make_manifest(seed, device, config["data_sha256"], command)
    manifest.update(finished=now(), total_seconds=time.perf_counter() - start, peak_rss_mb=peak_rss_mb())
    write_json(out / "manifest.json", manifest)
    return summary


def _training_facts(path: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Recipe, eps, epochs and training seconds from the card, else from the run's training_results.json."""
    recipe = card.get("recipe") or {}
    seconds = (card.get("training") or {}).get("seconds")
    results = path.parent / "training_results.json"
    if seconds is None and results.is_file():
        seconds = read_json(results).get("training_seconds")
    return {
        "recipe": recipe.get("recipe", "unknown"),
        "train_eps": recipe.get("train_eps") if recipe.get("recipe") != "standard" else None,
        "epochs": recipe.get("epochs"),
        "train_seconds": seconds,
    }


@torch.no_grad()
def inference_us_per_image(model: torch.nn.Module, x: torch.Tensor, *, repeats: int = 5) -> float:
    """Microseconds per image of an fp32 forward in batches of 256, the best of `repeats` passes."""
    model.eval()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in x.split(256):
            model(batch)
        best = min(best, time.perf_counter() - start)
    return 1e6 * best / len(x)


def compare_models(
    models: list[tuple[str, str]],
    out: str | Path,
    *,
    title: str = "Comparison",
    eps: str = "0.1,0.2,0.3",
    attack: str = "fgsm,pgd[steps=50]",
    every: int = 10,
    strong_attack: str = "autoattack",
    strong_every: int = 50,
    bf16: bool = True,
    seed: int = 0,
    data_dir: str | None = None,
    checksums: str | None = None,
    overwrite: bool = False,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = False,
    command: str = "",
) -> list[Path]:
    """Evaluate `(name, checkpoint)` pairs alike; write comparison.json, report.md/.txt and a plot.

    Each model gets `attack` on every `every`-th test image and `strong_attack` (AutoAttack; "" to
    skip) on every `strong_every`-th, at each eps, into `out/<name>/`; a killed comparison continues
    with `resume`. The report is rebuilt from the files by `advmnist report out`.
    """
    from advmnist.reporting.comparison import COMPARISON, SCHEMA, build_comparison_report
    from advmnist.reporting.tables import ordinal_every

    names = [name for name, _ in models]
    if not models or len(set(names)) != len(names):
        raise ValueError(f"give each model once, with a distinct name: got {', '.join(names) or 'none'}")
    bad = [n for n in names if not n or not all(c.isalnum() or c in "-_." for c in n) or n.startswith(".")]
    if bad:
        raise ValueError(f"model names may hold letters, digits, '-', '_' and '.': {', '.join(bad)}")
    missing = [p for _, p in models if not Path(p).is_file()]
    if missing:
        raise ConfigError(f"model(s) not found: {', '.join(missing)}")
    parse_eps_list(eps, max_eps=1.0)
    parse_attacks(attack)
    if strong_attack:
        parse_attacks(strong_attack)
    loaded = {name: load_model(path) for name, path in models}  # every checkpoint checked before any work
    out = Path(out)
    config = {
        "task": "compare",
        "models": {name: {"path": path, "sha256": loaded[name][1]["sha256"]} for name, path in models},
        "eps": eps,
        "attack": attack,
        "every": every,
        "strong_attack": strong_attack,
        "strong_every": strong_every,
        "bf16": bf16,
        "seed": seed,
    }
    resuming = prepare_run_dir(out, config, overwrite=overwrite, resume=resume)
    write_json(out / "config.json", config)
    test = load_mnist("test", data_dir, spec=_spec(checksums))
    timing_images = test.x[:1024].to(device)
    rows = []
    for name, path in models:
        evaluations = [(f"{name}/attacks", attack, every)]
        if strong_attack:
            evaluations.append((f"{name}/strong", strong_attack, strong_every))
        for folder, which, k in evaluations:
            log.info("%s: %s on %s", name, which, ordinal_every(k))
            evaluate_checkpoint(
                path,
                out / folder,
                attack=which,
                eps=eps,
                every=k,
                bf16=bf16,
                seed=seed,
                data_dir=data_dir,
                checksums=checksums,
                resume=resuming,
                overwrite=not resuming,
                device=device,
                progress=progress,
                command=command,
            )
        model, card = loaded[name]
        rows.append(
            {
                "name": name,
                "model": path,
                "sha256": card["sha256"],
                "arch": card["arch"],
                "params": card["params"],
                **_training_facts(Path(path), card),
                "inference_us_per_image": inference_us_per_image(model.to(device), timing_images),
                "evaluations": [f"{folder}/eval_results.json" for folder, _, _ in evaluations],
            }
        )
    labels = [b[0] for b in parse_eps_list(eps)]
    comparison = {"schema_version": SCHEMA, "title": title, "eps": labels, "models": rows, "command": command}
    write_json(out / COMPARISON, comparison)
    manifest = make_manifest(seed, device, test.sha256, command)
    manifest.update(finished=now(), peak_rss_mb=peak_rss_mb())
    write_json(out / "manifest.json", manifest)
    return build_comparison_report(out)
