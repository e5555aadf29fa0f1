"""`fit`: the training loop, short enough to read top to bottom; recipes supply the objective."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from advmnist.data.batches import iterate_batches
from advmnist.training.checkpoint import load_training_state, save_training_state
from advmnist.training.recipes import TrainConfig, make_objective

log = logging.getLogger(__name__)
Tensor = torch.Tensor


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from_epoch: int = 0


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
    states are restored too, so the result equals that of an uninterrupted run.
    """
    device = torch.device(device)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from the stubs
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    generator = torch.Generator().manual_seed(cfg.seed)
    objective = make_objective(cfg)
    result = TrainResult(model)
    fingerprint = cfg.to_dict() | {"n_train": len(train[1])}
    folder = Path(state_dir) if state_dir is not None else None
    if folder is not None and resume:
        meta = load_training_state(folder, model, optimizer, generator, fingerprint)
        if meta is not None:
            result.history, result.seconds = meta["history"], meta["seconds"]
            result.resumed_from_epoch = meta["epoch"]
            log.info("resumed after epoch %d from %s", meta["epoch"], folder)
    for epoch in range(result.resumed_from_epoch + 1, cfg.epochs + 1):
        start = time.perf_counter()
        loss_sum, correct, seen = _train_epoch(
            model, objective, optimizer, train, generator, cfg, device, progress, epoch
        )
        row: dict[str, Any] = {"epoch": epoch, "train_loss": loss_sum / seen, "train_accuracy": correct / seen}
        if test is not None and (cfg.eval_every_epoch or epoch == cfg.epochs):
            row["test_loss"], row["test_accuracy"], _ = evaluate_clean(model, *test, bf16=cfg.precision == "bf16")
        row["seconds"] = time.perf_counter() - start
        result.history.append(row)
        result.seconds += row["seconds"]
        log.info("epoch %d/%d %s", epoch, cfg.epochs, {k: round(v, 4) for k, v in row.items()})
        if folder is not None:
            info = {"epoch": epoch, "history": result.history, "seconds": result.seconds, "fingerprint": fingerprint}
            save_training_state(folder, model, optimizer, generator, info)
    model.eval()
    return result


def _train_epoch(
    model: nn.Module,
    objective: Any,
    optimizer: torch.optim.Optimizer,
    train: tuple[Tensor, Tensor],
    generator: torch.Generator,
    cfg: TrainConfig,
    device: torch.device,
    progress: bool,
    epoch: int,
) -> tuple[float, int, int]:
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    batches = iterate_batches(*train, cfg.batch_size, generator=generator)
    total = -(-len(train[1]) // cfg.batch_size)
    bar = tqdm(batches, total=total, desc=f"{cfg.recipe} epoch {epoch}/{cfg.epochs}", disable=not progress, leave=False)
    for _, x, y in bar:
        x, y = x.to(device), y.to(device)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)  # (B, 1, 28, 28), NHWC strides
        with _autocast(cfg, device):
            out = objective(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        loss_sum += out.loss.item() * len(out.y)
        correct += (out.logits.argmax(1) == out.y).sum().item()
        seen += len(out.y)
    return loss_sum, correct, seen
