"""The seed study end to end: train a baseline and an FGSM-mix defended CNN, attack both, report.

Each stage writes its files before the next starts; with `resume=True` finished stages are read
back and an interrupted training continues from its last epoch checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from advmnist.attacks import FGSM, Threat
from advmnist.config import StudyConfig
from advmnist.data import MNIST, DatasetSpec, MNISTSplit, load_mnist
from advmnist.evaluation import accuracy, evaluate, parse_eps
from advmnist.io import atomic_write_bytes, read_json, write_json
from advmnist.models import count_parameters, create_model, load_model, save_model
from advmnist.rundir import Run, RunSpec, open_run
from advmnist.training import evaluate_clean, fit

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
# (name, training results file, attack results file)
MODELS = (
    ("baseline", "baseline_results.json", "fgsm_attack_results.json"),
    ("defended", "defended_training_results.json", "defended_fgsm_results.json"),
)
N_EXAMPLES = 5


@dataclass(frozen=True)
class StudyResult:
    out: Path
    training: dict[str, dict[str, Any]]
    attacks: dict[str, dict[str, Any]]
    report_files: list[Path]


def resolve_device(device: str) -> str:
    """`auto` picks CUDA when present; asking for CUDA without it is a clear error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA device is available")
    return device


def _dataset(cfg: StudyConfig) -> DatasetSpec:
    return DatasetSpec.from_checksums(cfg.checksums) if cfg.checksums else MNIST


def _load_data(cfg: StudyConfig) -> tuple[MNISTSplit, MNISTSplit]:
    spec, data_dir = _dataset(cfg), cfg.data_dir or None
    return load_mnist("train", data_dir, cfg.n_train, spec=spec), load_mnist("test", data_dir, cfg.n_test, spec=spec)


def run_study(
    cfg: StudyConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = False,
    command: str = "",
    on_stage: Callable[[str], None] | None = None,
) -> StudyResult:
    """Run the whole seed study into `out`; returns the parsed results and the report files.

    An earlier run in `out` is refused unless `overwrite` (replace it) or `resume` (continue a
    killed run of the same configuration) is set, both default False. `device` (default "cpu"),
    `progress` (default False: no progress bars), `command` (the command line recorded in the
    manifest, default "") and `on_stage` (called with a line as each stage starts, default None)
    change how it runs, never a result.
    """
    from advmnist.reporting import build_report  # imported late: matplotlib is only needed here

    device = resolve_device(device)
    train, test = _load_data(cfg)
    say = on_stage or (lambda message: None)
    spec = RunSpec(
        Path(out),
        cfg.to_dict(),
        overwrite=overwrite,
        resume=resume,
        seed=cfg.seed,
        device=device,
        command=command,
        data_sha256={**train.sha256, **test.sha256},
        owned=_owned_files(),
    )
    with open_run(spec) as run:
        training, attacks = {}, {}
        for name, train_file, attack_file in MODELS:
            plan = cfg.baseline if name == "baseline" else cfg.defended
            say(f"{name}: {plan.recipe}, {plan.epochs} epochs on {len(train)} images")
            model, training[name] = _train_stage(cfg, name, plan, run, train, test, device, progress, train_file)
            run.timings[f"train_{name}"] = training[name]["training_seconds"]
            attacks[name] = _attack_stage(cfg, name, model, run, test, progress, attack_file)
            run.timings[f"attack_{name}"] = attacks[name]["seconds"]
            if cfg.robust_attacks:
                say(f"{name}: {' + '.join(cfg.robust_attacks)} at Linf {', '.join(cfg.robust_eps)}")
                robust = _robust_stage(cfg, name, model, run, test, progress)
                run.timings[f"robust_{name}"] = sum(a["seconds"] for a in robust["attacks"])
            run.save_manifest()  # a killed run keeps the timings of finished stages
        _write_samples(cfg, run.path, test)
        say("report: tables, plots, report.md")
        t0 = time.perf_counter()
        run.save_manifest(finished=True)  # the report reads the manifest
        files = build_report(run.path)
        run.timings["report"] = time.perf_counter() - t0
    return StudyResult(run.path, training, attacks, files)


def _owned_files() -> list[str]:
    """The append-only files of the study: dropped when a run starts afresh (--overwrite)."""
    owned = []
    for name, _, _ in MODELS:
        owned += [
            f"per_sample/{name}_{kind}{ext}" for kind in ("fgsm", "robust") for ext in (".jsonl", ".batches.jsonl")
        ]
        owned.append(f"checkpoints/{name}/state.json")
    return owned


def _train_stage(
    cfg: StudyConfig,
    name: str,
    plan: Any,
    run: Run,
    train: MNISTSplit,
    test: MNISTSplit,
    device: str,
    progress: bool,
    train_file: str,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    out = run.path
    weights = out / "models" / f"{name}.safetensors"
    if run.resuming and (out / train_file).is_file() and weights.is_file():
        model, _ = load_model(weights)
        return model.to(device), read_json(out / train_file)
    tcfg = cfg.train_config(plan)
    torch.manual_seed(cfg.seed)  # the same initial weights for every model of the study
    model = create_model(cfg.arch)
    result = fit(
        model,
        (train.x, train.y),
        (test.x, test.y),
        tcfg,
        state_dir=out / "checkpoints" / name,
        resume=run.resuming,
        progress=progress,
        device=device,
    )
    _, _, pred = evaluate_clean(model, test.x, test.y, cfg.eval_batch_size)
    clean = accuracy(int((pred == test.y).sum()), len(test))
    record = {
        "schema_version": SCHEMA_VERSION,
        "model": name,
        "recipe": plan.recipe,
        "arch": cfg.arch,
        "params": count_parameters(model),
        "seed": cfg.seed,
        "epochs": plan.epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "momentum": cfg.momentum,
        "train_eps": plan.train_eps if plan.recipe == "fgsm-mix" else None,
        "precision": cfg.precision,
        "n_train": len(train),
        "n_test": len(test),
        "history": result.history,
        "clean_accuracy": clean,
        "training_seconds": result.seconds,
        "checkpoint": f"models/{name}.safetensors",
    }
    card = {"recipe": tcfg.to_dict(), "seed": cfg.seed, "metrics": {"clean_accuracy": clean}, "data": train.sha256}
    save_model(model, weights, **card)
    write_json(out / train_file, record)
    return model, record


def _attack_stage(
    cfg: StudyConfig,
    name: str,
    model: torch.nn.Module,
    run: Run,
    test: MNISTSplit,
    progress: bool,
    attack_file: str,
) -> dict[str, Any]:
    out = run.path
    if run.resuming and (out / attack_file).is_file():
        return dict(read_json(out / attack_file))
    per_sample = out / "per_sample" / f"{name}_fgsm.jsonl"
    for stale in (per_sample, per_sample.with_name(f"{name}_fgsm.batches.jsonl")):
        stale.unlink(missing_ok=True)  # a killed evaluation is redone whole (it takes seconds)
    evaluation = evaluate(
        model,
        test.x,
        test.y,
        attack="fgsm",
        epsilons=[parse_eps(e) for e in cfg.eval_eps],
        labels=list(cfg.eval_eps),
        batch_size=cfg.eval_batch_size,
        seed=cfg.seed,
        out=per_sample,
        progress=progress,
    )
    record = {
        "schema_version": SCHEMA_VERSION,
        "model": name,
        **evaluation.attacks[0].to_json(),
        "checks": [c.to_json() for c in evaluation.checks],
        "seed_eps": list(cfg.seed_eps),
        "per_sample": str(per_sample.relative_to(out)),
    }
    _card_metrics(out, name, {"fgsm": record["results"]})
    write_json(out / attack_file, record)
    return record


def _robust_stage(
    cfg: StudyConfig, name: str, model: torch.nn.Module, run: Run, test: MNISTSplit, progress: bool
) -> dict[str, Any]:
    """PGD-40 and AutoAttack (or the configured list) at the MNIST threat model on a fixed subset.

    The per-sample rows are flushed per batch, so a killed run resumes inside this stage.
    """
    out = run.path
    path = out / f"{name}_robust_results.json"
    if run.resuming and path.is_file():
        return dict(read_json(path))
    per_sample = out / "per_sample" / f"{name}_robust.jsonl"
    index = torch.arange(0, len(test), cfg.robust_every)
    evaluation = evaluate(
        model,
        test.x[index],
        test.y[index],
        attack=list(cfg.robust_attacks),
        epsilons=[parse_eps(e) for e in cfg.robust_eps],
        labels=list(cfg.robust_eps),
        indices=index.tolist(),
        batch_size=cfg.eval_batch_size,
        seed=cfg.seed,
        out=per_sample,
        resume=run.resuming,
        progress=progress,
    )
    record = {
        "schema_version": SCHEMA_VERSION,
        "model": name,
        "every": cfg.robust_every,
        **evaluation.to_json(),
        "per_sample": str(per_sample.relative_to(out)),
    }
    _card_metrics(out, name, {r.attack: [e.to_json() for e in r.results] for r in evaluation.attacks})
    write_json(path, record)
    return record


def _card_metrics(out: Path, name: str, results: dict[str, list[dict[str, Any]]]) -> None:
    """Record robust accuracy per attack and eps label in the model card."""
    card_path = out / "models" / f"{name}.json"
    card = read_json(card_path)
    for attack, rows in results.items():
        card.setdefault("metrics", {})[attack] = {r["eps_label"]: r["robust_accuracy"]["value"] for r in rows}
    write_json(card_path, card)


def _write_samples(cfg: StudyConfig, out: Path, test: MNISTSplit) -> None:
    """The images the plots show: the first test images and their adversarial versions."""
    tensors: dict[str, torch.Tensor] = {
        "samples/x": test.x[:16, 0].clone(),
        "samples/y": test.y[:16].clone(),
        "examples/x": test.x[:N_EXAMPLES, 0].clone(),
        "examples/y": test.y[:N_EXAMPLES].clone(),
    }
    x, y = test.x[:N_EXAMPLES], test.y[:N_EXAMPLES]
    for name, _, _ in MODELS:
        model, _ = load_model(out / "models" / f"{name}.safetensors")
        results = FGSM().sweep(model, x, y, Threat("linf", 1.0), [parse_eps(e) for e in cfg.eval_eps], seed=cfg.seed)
        with torch.no_grad():
            tensors[f"{name}/clean_pred"] = model(x).argmax(1)
        for i, r in enumerate(results):
            tensors[f"{name}/adv/{i}"] = r.x_adv[:, 0].contiguous()
            tensors[f"{name}/adv_pred/{i}"] = r.pred.contiguous()
    meta = {"eps_labels": json.dumps(list(cfg.eval_eps))}
    atomic_write_bytes(out / "samples.safetensors", save(tensors, metadata=meta))
