"""`fit`: the training loop, short enough to read top to bottom; recipes supply the objective."""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from advmnist.data.augment import random_shift
from advmnist.data.batches import iterate_batches
from advmnist.models import load_model
from advmnist.training.averaging import WeightAverage
from advmnist.training.awp import WeightPerturbation
from advmnist.training.checkpoint import load_best, load_training_state, save_best, save_training_state
from advmnist.training.objectives import Objective
from advmnist.training.recipes import TrainConfig, make_objective
from advmnist.training.schedules import eps_at, lr_at
from advmnist.training.watchdog import Watchdog, validate

log = logging.getLogger(__name__)
Tensor = torch.Tensor


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from_epoch: int = 0
    collapse: dict[str, Any] | None = None  # the watchdog's finding, when it stopped the run
    best_epoch: int = 0  # the epoch with the best validation PGD accuracy (0: no validation)
    clean_accuracy: dict[str, Any] | None = None  # the saved model's, on the test set (set by the caller)


def _autocast(cfg: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if cfg.precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def evaluate_clean(
    model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256, *, bf16: bool = False
) -> tuple[float, float, Tensor]:
    """Mean loss, accuracy and predictions on clean data in eval mode (mode restored after).

    fp32 unless `bf16` (used only for the per-epoch learning curves of bf16 training).
    """
    was_training = model.training
    model.eval()
    preds, loss_sum = [], 0.0
    device = next(model.parameters()).device
    try:
        for _, xb, yb in iterate_batches(x, y, batch_size):
            xb = xb.to(device).contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(xb).float()
            loss_sum += F.cross_entropy(logits, yb.to(device), reduction="sum").item()
            preds.append(logits.argmax(1).cpu())
    finally:
        model.train(was_training)
    pred = torch.cat(preds)
    return loss_sum / len(y), (pred == y).float().mean().item(), pred


def split_validation(
    train: tuple[Tensor, Tensor], size: int, seed: int
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor] | None]:
    """Hold `size` training images out (a seeded random choice): (rest, held out), or (train, None)."""
    x, y = train
    if size == 0:
        return train, None
    if size >= len(y):
        raise ValueError(f"val_size must be below the {len(y)} training images, got {size}")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed + 1))
    keep, held = order[size:].sort().values, order[:size].sort().values
    return (x[keep], y[keep]), (x[held], y[held])


def _snapshot(model: nn.Module, optimizer: torch.optim.Optimizer, average: WeightAverage | None) -> dict[str, Any]:
    return {
        "model": copy.deepcopy(model.state_dict()),
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "average": None if average is None else (copy.deepcopy(average.shadow), average.updates),
    }


def _restore(
    snapshot: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, average: WeightAverage | None
) -> None:
    model.load_state_dict(snapshot["model"])
    optimizer.load_state_dict(snapshot["optimizer"])
    if average is not None:
        shadow, average.updates = snapshot["average"]
        average.shadow = copy.deepcopy(shadow)  # the snapshot stays as it was


def _evaluated(model: nn.Module, average: WeightAverage | None) -> contextlib.AbstractContextManager[Any]:
    """The weights every validation, selection and test score is taken on: the average when there is one."""
    return average.applied(model) if average is not None else contextlib.nullcontext(model)


def fit(
    model: nn.Module,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor] | None,
    cfg: TrainConfig,
    *,
    state_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> TrainResult:
    """Train `model` with SGD + momentum on `train`, checkpointing each epoch into `state_dir`.

    With `resume=True` training continues after the last complete epoch in `state_dir`; the RNG
    states are restored too, so the result equals that of an uninterrupted run. With a validation
    split (`cfg.val_size`), each epoch also reports clean and PGD-10 accuracy on held-out training
    images; the watchdog rolls back to the last good epoch and stops on a collapse, and
    `select="best"` keeps the epoch with the best validation PGD accuracy (ties: best clean).
    With `cfg.ema` the moving average of the weights is what is validated, selected and returned.
    With `cfg.awp` each step's gradient is taken at adversarially perturbed weights (`training/awp.py`).
    """
    device = torch.device(device)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from the stubs
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)
    train, val = split_validation(train, cfg.val_size, cfg.seed)
    objective = make_objective(cfg, [_load_static(path, device) for path in cfg.ensemble_models])
    average = WeightAverage(model, cfg.ema) if cfg.ema else None
    perturb = WeightPerturbation(model, cfg.awp) if cfg.awp else None
    result = TrainResult(model)
    watchdog = Watchdog(cfg.watchdog_drop)
    fingerprint = cfg.to_dict() | {"n_train": len(train[1]) + cfg.val_size}
    folder = Path(state_dir) if state_dir is not None else None
    if folder is not None and resume:
        defaults = TrainConfig().to_dict()
        meta = load_training_state(folder, model, optimizer, generator, fingerprint, average, defaults)
        if meta is not None:
            result.history, result.seconds = meta["history"], meta["seconds"]
            result.resumed_from_epoch, result.collapse = meta["epoch"], meta.get("collapse")
            watchdog.best, watchdog.best_epoch = meta.get("watchdog_best", -1.0), meta.get("best_epoch", 0)
            watchdog.best_clean = meta.get("watchdog_best_clean", -1.0)
            log.info("resumed after epoch %d from %s", meta["epoch"], folder)
    good = _snapshot(model, optimizer, average)  # the last epoch the watchdog passed
    best = load_best(folder) if folder is not None and result.resumed_from_epoch and cfg.select == "best" else None
    steps_per_epoch = -(-len(train[1]) // cfg.batch_size)
    for epoch in range(result.resumed_from_epoch + 1, cfg.epochs + 1):
        if result.collapse is not None:
            break
        start = time.perf_counter()
        schedule = _Schedule(cfg, (epoch - 1) * steps_per_epoch, cfg.epochs * steps_per_epoch)
        loss_sum, correct, seen = _train_epoch(
            model, objective, optimizer, train, generator, cfg, device, progress, epoch, schedule, average, perturb
        )
        row: dict[str, Any] = {"epoch": epoch, "train_loss": loss_sum / seen, "train_accuracy": correct / seen}
        row.update(lr=schedule.last_lr, eps=schedule.last_eps)
        if val is not None:
            xv, yv = val[0][: cfg.watchdog_size].to(device), val[1][: cfg.watchdog_size].to(device)
            with _evaluated(model, average) as scored:
                row.update(validate(scored, xv, yv, cfg.train_eps, bf16=cfg.precision == "bf16", seed=epoch))
            if cfg.watchdog and watchdog.collapsed(row["val_pgd"]):
                _restore(good, model, optimizer, average)
                result.collapse = {
                    "epoch": epoch,
                    "val_pgd": row["val_pgd"],
                    "best_val_pgd": watchdog.best,
                    "rolled_back_to_epoch": epoch - 1,
                }
                row["collapse"] = result.collapse
                log.warning(
                    "epoch %d: validation PGD accuracy %.1f%% fell from %.1f%% (catastrophic overfitting): "
                    "rolled back to epoch %d and stopped",
                    epoch,
                    100 * row["val_pgd"],
                    100 * watchdog.best,
                    epoch - 1,
                )
            else:
                if watchdog.update(epoch, row["val_pgd"], row["val_clean"]) and cfg.select == "best":
                    with _evaluated(model, average) as scored:
                        best = copy.deepcopy(scored.state_dict())
                    if folder is not None:
                        save_best(folder, best)
                good = _snapshot(model, optimizer, average)
        if test is not None and (cfg.eval_every_epoch or epoch == cfg.epochs):
            with _evaluated(model, average) as scored:
                row["test_loss"], row["test_accuracy"], _ = evaluate_clean(scored, *test, bf16=cfg.precision == "bf16")
        row["seconds"] = time.perf_counter() - start
        result.history.append(row)
        result.seconds += row["seconds"]
        log.info("epoch %d/%d %s", epoch, cfg.epochs, {k: _round(v) for k, v in row.items()})
        if folder is not None:
            info = {
                "epoch": epoch,
                "history": result.history,
                "seconds": result.seconds,
                "fingerprint": fingerprint,
                "collapse": result.collapse,
                "watchdog_best": watchdog.best,
                "watchdog_best_clean": watchdog.best_clean,
                "best_epoch": watchdog.best_epoch,
            }
            save_training_state(folder, model, optimizer, generator, info, average)
    result.best_epoch = watchdog.best_epoch
    if cfg.select == "best" and best is not None:
        model.load_state_dict(best)
    elif average is not None:
        model.load_state_dict(average.state_dict())
    model.eval()
    return result


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _load_static(path: str, device: torch.device) -> nn.Module:
    static, _ = load_model(path)
    return static.to(device).eval().requires_grad_(False)


class _Schedule:
    """This epoch's learning rate and training eps, step by step (pure functions of the global step)."""

    def __init__(self, cfg: TrainConfig, first_step: int, total: int) -> None:
        self.cfg, self.step, self.total = cfg, first_step, total
        self.last_lr, self.last_eps = cfg.lr, cfg.train_eps
        self.perturb = False  # whether this step takes its gradient at perturbed weights (awp)

    def next(self, optimizer: torch.optim.Optimizer) -> float:
        """Set the lr of this step on `optimizer`; returns this step's eps."""
        cfg = self.cfg
        self.last_lr = lr_at(cfg.lr_schedule, cfg.lr, self.step, self.total)
        self.last_eps = eps_at(cfg.train_eps, cfg.eps_ramp, self.step, self.total)
        self.perturb = cfg.awp > 0 and self.step >= cfg.awp_warmup * self.total
        for group in optimizer.param_groups:
            group["lr"] = self.last_lr
        self.step += 1
        return self.last_eps


def _train_epoch(
    model: nn.Module,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    train: tuple[Tensor, Tensor],
    generator: torch.Generator,
    cfg: TrainConfig,
    device: torch.device,
    progress: bool,
    epoch: int,
    schedule: _Schedule,
    average: WeightAverage | None,
    perturb: WeightPerturbation | None,
) -> tuple[float, int, int]:
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    batches = iterate_batches(*train, cfg.batch_size, generator=generator)
    total = -(-len(train[1]) // cfg.batch_size)
    bar = tqdm(batches, total=total, desc=f"{cfg.recipe} epoch {epoch}/{cfg.epochs}", disable=not progress, leave=False)
    for _, x, y in bar:
        x, y = random_shift(x, cfg.shift, generator).to(device), y.to(device)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)  # (B, 1, 28, 28), NHWC strides
        eps = schedule.next(optimizer)
        with _autocast(cfg, device):
            out = objective(model, x, y, eps)
        optimizer.zero_grad(set_to_none=True)
        if perturb is not None and schedule.perturb:
            perturb.loss(out, _autocast(cfg, device))  # the gradient at perturbed weights; `out` stays the logged one
        else:
            out.loss.backward()
        optimizer.step()
        if average is not None:
            average.update(model)
        loss_sum += out.loss.item() * len(out.y)
        correct += int((out.logits.argmax(1) == out.y).sum())
        seen += len(out.y)
    return loss_sum, correct, seen
