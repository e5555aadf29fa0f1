"""`advmnist train`: one model, one recipe, into a resumable run folder."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from advmnist.errors import user_input
from advmnist.evaluation import accuracy
from advmnist.io import write_json
from advmnist.models import count_parameters, create_model, save_model
from advmnist.options import group, option
from advmnist.rundir import RunSpec, open_run
from advmnist.tasks.specs import DataOptions, Output, Runtime, missing_files
from advmnist.training import TrainConfig, TrainResult, evaluate_clean, fit


@dataclass(frozen=True)
class TrainSpec:
    """Train `arch` with `config` (recipe and loop settings) on the training split, into `output`.

    Defaults: `arch="seed-cnn"` (settings in brackets, e.g. `seed-cnn[dropout=0]`), all 60,000
    training images (`n_train=None`), the dataset of `data` (`DataOptions`), and `runtime`
    (device, progress: never a result) on the CPU.
    """

    config: TrainConfig
    output: Output = group()
    arch: str = option("seed-cnn", "model architecture, with settings: seed-cnn[dropout=0] (see `advmnist models`)")
    n_train: int | None = option(None, "use the first N training images")
    data: DataOptions = group(DataOptions)
    runtime: Runtime = field(default_factory=Runtime)

    def __post_init__(self) -> None:
        if isinstance(self.output, str):
            object.__setattr__(self, "output", Output(self.output))
        missing_files(list(self.config.recipe_settings.static_models()), "ensemble model(s)")
        with user_input("--arch"):
            create_model(self.arch)  # a bad architecture or setting fails here, before anything is written


def train_model(spec: TrainSpec) -> TrainResult:
    """Train into the run folder: `model.safetensors` + `model.json`, `training_results.json`, checkpoints."""
    cfg, out = spec.config, spec.output.path
    train, test = spec.data.load("train", spec.n_train), spec.data.load("test")
    config = {
        "task": "train",
        "arch": spec.arch,
        "n_train": spec.n_train,
        "data_dir": spec.data.data_dir,
        **cfg.to_dict(),
    }
    run_spec = RunSpec(
        out,
        config,
        overwrite=spec.output.overwrite,
        resume=spec.output.resume,
        seed=cfg.seed,
        device=spec.runtime.device,
        command=spec.runtime.command,
        data_sha256={**train.sha256, **test.sha256},
        owned=("checkpoint/state.json",),
    )
    with open_run(run_spec) as run:
        torch.manual_seed(cfg.seed)
        model = create_model(spec.arch)
        result = fit(
            model,
            (train.x, train.y),
            (test.x, test.y),
            cfg,
            state_dir=run.path / "checkpoint",
            resume=run.resuming,
            progress=spec.runtime.progress,
            device=spec.runtime.device,
        )
        _, _, pred = evaluate_clean(model, test.x, test.y)
        clean = accuracy(int((pred.cpu() == test.y).sum()), len(test))
        result.clean_accuracy = clean
        save_model(model, run.path / "model", recipe=cfg.to_dict(), seed=cfg.seed, metrics={"clean_accuracy": clean})
        write_json(
            run.path / "training_results.json",
            {
                "arch": spec.arch,
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
    return result
