"""`fit`: the training loop, short enough to read top to bottom; recipes supply the objective."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from advmnist.data.augment import random_shift
from advmnist.data.batches import iterate_batches
from advmnist.models import load_model
from advmnist.precision import use_bf16
from advmnist.training.awp import WeightPerturbation
from advmnist.training.callbacks import (
    Averaging,
    BestEpoch,
    Callback,
    Checkpointing,
    FitState,
    TestScore,
    TrainResult,
    Validation,
)
from advmnist.training.config import TrainConfig
from advmnist.training.objectives import Objective
from advmnist.training.schedules import eps_at, lr_at
from advmnist.training.watchdog import Watchdog

log = logging.getLogger(__name__)
Tensor = torch.Tensor


def _autocast(cfg: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if use_bf16(cfg.bf16, device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


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
    `progress` (default False) shows a progress bar; `device` (default "cpu") is where it trains.
    """
    device = torch.device(device)
    state = _start(model, cfg, device)
    train, val = split_validation(train, cfg.val_size, cfg.seed)
    statics = [_load_static(path, device) for path in cfg.recipe_settings.static_models()]
    objective = cfg.recipe_settings.objective(bf16=cfg.bf16, statics=statics)
    perturb = WeightPerturbation(model, cfg.awp) if cfg.awp else None
    fingerprint = cfg.to_dict() | {"n_train": len(train[1]) + cfg.val_size}
    folder = Path(state_dir) if state_dir is not None else None
    callbacks = _callbacks(cfg, val, test, device, folder, fingerprint, resume)
    for callback in callbacks:
        callback.start(state)
    result = state.result
    steps_per_epoch = -(-len(train[1]) // cfg.batch_size)
    for epoch in range(result.resumed_from_epoch + 1, cfg.epochs + 1):
        if result.collapse is not None:
            break
        start = time.perf_counter()
        schedule = _Schedule(cfg, (epoch - 1) * steps_per_epoch, cfg.epochs * steps_per_epoch)
        loss_sum, correct, seen = _train_epoch(
            state, objective, train, device, progress, epoch, schedule, perturb, callbacks
        )
        row: dict[str, Any] = {"epoch": epoch, "train_loss": loss_sum / seen, "train_accuracy": correct / seen}
        row.update(lr=schedule.last_lr, eps=schedule.last_eps)
        for callback in callbacks:
            callback.epoch(state, epoch, row)
        row["seconds"] = time.perf_counter() - start
        result.history.append(row)
        result.seconds += row["seconds"]
        log.info("epoch %d/%d %s", epoch, cfg.epochs, {k: _round(v) for k, v in row.items()})
        for callback in callbacks:
            callback.saved(state, epoch)
    for callback in callbacks:
        callback.end(state)
    if state.final is not None:
        model.load_state_dict(state.final)
    model.eval()
    return result


def _start(model: nn.Module, cfg: TrainConfig, device: torch.device) -> FitState:
    """The model on its device (channels_last if asked), an SGD optimizer and the data generator."""
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from the stubs
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)
    return FitState(model, optimizer, generator, cfg, TrainResult(model), Watchdog(cfg.watchdog_drop))


def _callbacks(
    cfg: TrainConfig,
    val: tuple[Tensor, Tensor] | None,
    test: tuple[Tensor, Tensor] | None,
    device: torch.device,
    folder: Path | None,
    fingerprint: dict[str, Any],
    resume: bool,
) -> list[Callback]:
    """The callbacks `cfg` asks for, in the order they must run."""
    callbacks: list[Callback] = []
    if cfg.ema:
        callbacks.append(Averaging(cfg.ema))
    if folder is not None:
        callbacks.append(Checkpointing(folder, fingerprint, resume=resume))
    if val is not None:
        xv, yv = val[0][: cfg.watchdog_size].to(device), val[1][: cfg.watchdog_size].to(device)
        callbacks.append(Validation(xv, yv, rollback=cfg.watchdog))
        if cfg.select == "best":
            callbacks.append(BestEpoch(folder))
    if test is not None:
        callbacks.append(TestScore(*test, every_epoch=cfg.eval_every_epoch))
    return callbacks


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
    state: FitState,
    objective: Objective,
    train: tuple[Tensor, Tensor],
    device: torch.device,
    progress: bool,
    epoch: int,
    schedule: _Schedule,
    perturb: WeightPerturbation | None,
    callbacks: list[Callback],
) -> tuple[float, int, int]:
    model, optimizer, cfg = state.model, state.optimizer, state.cfg
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    batches = iterate_batches(*train, cfg.batch_size, generator=state.generator)
    total = -(-len(train[1]) // cfg.batch_size)
    desc = f"{cfg.recipe} epoch {epoch}/{cfg.epochs}"
    for _, x, y in tqdm(batches, total=total, desc=desc, disable=not progress, leave=False):
        x, y = random_shift(x, cfg.shift, state.generator).to(device), y.to(device)
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
        for callback in callbacks:
            callback.step(state)
        loss_sum += out.loss.item() * len(out.y)
        correct += int((out.logits.argmax(1) == out.y).sum())
        seen += len(out.y)
    return loss_sum, correct, seen
