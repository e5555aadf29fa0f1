"""What `fit` does around its loop, as callbacks: weight averaging, validation with the collapse
watchdog, best-epoch selection, test accuracy per epoch, and resumable checkpoints.

Each callback sees the shared `FitState` at four points: `start` (before the first epoch; a
resume restores the state here), `step` (after each optimizer step), `epoch` (the epoch's row is
being filled: validation, selection, test scores), `saved` (the row is in the history) and
`end` (the weights to return are chosen). They run in list order.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advmnist.training.averaging import WeightAverage
from advmnist.training.checkpoint import load_best, load_training_state, save_best, save_training_state
from advmnist.training.config import TrainConfig
from advmnist.training.watchdog import Watchdog, evaluate_clean, validate

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


@dataclass
class FitState:
    """What the loop and its callbacks share."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    cfg: TrainConfig
    result: TrainResult
    watchdog: Watchdog
    average: WeightAverage | None = None
    new_best: bool = False  # this epoch set the best validation score so far
    final: dict[str, Tensor] | None = None  # the weights to return, when a callback chose them

    def scored(self) -> contextlib.AbstractContextManager[nn.Module]:
        """The weights every validation, selection and test score is taken on: the average when there is one."""
        return self.average.applied(self.model) if self.average is not None else contextlib.nullcontext(self.model)

    def snapshot(self) -> dict[str, Any]:
        return {
            "model": copy.deepcopy(self.model.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "average": None if self.average is None else (copy.deepcopy(self.average.shadow), self.average.updates),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.model.load_state_dict(snapshot["model"])
        self.optimizer.load_state_dict(snapshot["optimizer"])
        if self.average is not None:
            shadow, self.average.updates = snapshot["average"]
            self.average.shadow = copy.deepcopy(shadow)  # the snapshot stays as it was


class Callback:
    """Base class: every hook does nothing."""

    def start(self, fit: FitState) -> None:
        pass

    def step(self, fit: FitState) -> None:
        pass

    def epoch(self, fit: FitState, epoch: int, row: dict[str, Any]) -> None:
        pass

    def saved(self, fit: FitState, epoch: int) -> None:
        pass

    def end(self, fit: FitState) -> None:
        pass


class Averaging(Callback):
    """An exponential moving average of the weights, updated after every step; returned at the end
    unless an epoch was selected (`training/averaging.py`)."""

    def __init__(self, decay: float) -> None:
        self.decay = decay

    def start(self, fit: FitState) -> None:
        fit.average = WeightAverage(fit.model, self.decay)

    def step(self, fit: FitState) -> None:
        assert fit.average is not None
        fit.average.update(fit.model)

    def end(self, fit: FitState) -> None:
        if fit.final is None and fit.average is not None:
            fit.final = fit.average.state_dict()


class Checkpointing(Callback):
    """Saves the training state after each epoch into `folder`; with `resume`, starts from the last one."""

    def __init__(self, folder: Path, fingerprint: dict[str, Any], *, resume: bool) -> None:
        self.folder, self.fingerprint, self.resume = folder, fingerprint, resume

    def start(self, fit: FitState) -> None:
        if not self.resume:
            return
        defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name != "recipe_settings"}
        meta = load_training_state(
            self.folder, fit.model, fit.optimizer, fit.generator, self.fingerprint, fit.average, defaults
        )
        if meta is None:
            return
        result, watchdog = fit.result, fit.watchdog
        result.history, result.seconds = meta["history"], meta["seconds"]
        result.resumed_from_epoch, result.collapse = meta["epoch"], meta.get("collapse")
        watchdog.best, watchdog.best_epoch = meta.get("watchdog_best", -1.0), meta.get("best_epoch", 0)
        watchdog.best_clean = meta.get("watchdog_best_clean", -1.0)
        log.info("resumed after epoch %d from %s", meta["epoch"], self.folder)

    def saved(self, fit: FitState, epoch: int) -> None:
        info = {
            "epoch": epoch,
            "history": fit.result.history,
            "seconds": fit.result.seconds,
            "fingerprint": self.fingerprint,
            "collapse": fit.result.collapse,
            "watchdog_best": fit.watchdog.best,
            "watchdog_best_clean": fit.watchdog.best_clean,
            "best_epoch": fit.watchdog.best_epoch,
        }
        save_training_state(self.folder, fit.model, fit.optimizer, fit.generator, info, fit.average)


class Validation(Callback):
    """Clean and PGD-10 accuracy on held-out training images after each epoch, the best epoch so far,
    and (with `rollback`) the watchdog: a collapse rolls back to the last good epoch and stops."""

    def __init__(self, x: Tensor, y: Tensor, *, rollback: bool) -> None:
        self.x, self.y, self.rollback = x, y, rollback
        self.good: dict[str, Any] = {}

    def start(self, fit: FitState) -> None:
        self.good = fit.snapshot()  # the last epoch the watchdog passed

    def epoch(self, fit: FitState, epoch: int, row: dict[str, Any]) -> None:
        cfg, watchdog = fit.cfg, fit.watchdog
        fit.new_best = False
        with fit.scored() as scored:
            row.update(validate(scored, self.x, self.y, cfg.train_eps, bf16=cfg.bf16, seed=epoch))
        if self.rollback and watchdog.collapsed(row["val_pgd"]):
            fit.restore(self.good)
            fit.result.collapse = {
                "epoch": epoch,
                "val_pgd": row["val_pgd"],
                "best_val_pgd": watchdog.best,
                "rolled_back_to_epoch": epoch - 1,
            }
            row["collapse"] = fit.result.collapse
            log.warning(
                "epoch %d: validation PGD accuracy %.1f%% fell from %.1f%% (catastrophic overfitting): "
                "rolled back to epoch %d and stopped",
                epoch,
                100 * row["val_pgd"],
                100 * watchdog.best,
                epoch - 1,
            )
            return
        fit.new_best = watchdog.update(epoch, row["val_pgd"], row["val_clean"])
        self.good = fit.snapshot()

    def end(self, fit: FitState) -> None:
        fit.result.best_epoch = fit.watchdog.best_epoch


class BestEpoch(Callback):
    """Keeps the weights of the epoch with the best validation score (saved to `folder` for a resume)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.best: dict[str, Tensor] | None = None

    def start(self, fit: FitState) -> None:
        if self.folder is not None and fit.result.resumed_from_epoch:
            self.best = load_best(self.folder)

    def epoch(self, fit: FitState, epoch: int, row: dict[str, Any]) -> None:
        if not fit.new_best:
            return
        with fit.scored() as scored:
            self.best = copy.deepcopy(scored.state_dict())
        if self.folder is not None:
            save_best(self.folder, self.best)

    def end(self, fit: FitState) -> None:
        if self.best is not None:
            fit.final = self.best


class TestScore(Callback):
    """Test loss and accuracy after every epoch (or only the last), on the scored weights."""

    def __init__(self, x: Tensor, y: Tensor, *, every_epoch: bool) -> None:
        self.x, self.y, self.every_epoch = x, y, every_epoch

    def epoch(self, fit: FitState, epoch: int, row: dict[str, Any]) -> None:
        if self.every_epoch or epoch == fit.cfg.epochs:
            with fit.scored() as scored:
                row["test_loss"], row["test_accuracy"], _ = evaluate_clean(scored, self.x, self.y, bf16=fit.cfg.bf16)
