"""Training recipes: a name, its objective and its settings (the defaults are the seed's hyperparameters)."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from advmnist.training.objectives import (
    TRADES_STARTS,
    Objective,
    ensemble,
    fgsm_mix,
    fgsm_rs,
    mart,
    pgd_at,
    standard_ce,
    trades,
)
from advmnist.training.schedules import LR_SCHEDULES

log = logging.getLogger(__name__)

RECIPES = ("standard", "fgsm-mix", "fgsm-rs", "pgd", "trades", "mart", "ensemble")
PRECISIONS = ("fp32", "bf16")
SELECTIONS = ("last", "best")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (its fingerprint for resuming).

    Beyond the seed: `lr_schedule` (constant, step, cosine, one-cycle), `eps_ramp` (fraction of
    training over which the training eps grows linearly from 0), the inner attack of `pgd`, `trades`
    and `mart` (`attack_steps`, `attack_rel_step`: step size as a fraction of eps, default 2.5 / steps;
    `trades_start`: where the KL walk starts, near x or uniform in the ball), `trades_beta` (the
    weight of the KL term of `trades` and `mart`),
    `val_size` training images held out for validation (never the test set),
    `watchdog` (catastrophic-overfitting guard, needs `val_size`), and `select` (`best`: keep the
    epoch with the highest validation PGD accuracy), `ema` (validate, select and keep an exponential
    moving average of the weights with this decay, e.g. 0.999; 0 = off), `shift` (random translations
    of up to this many pixels as augmentation), `awp` (adversarial weight perturbation, Wu et al.
    2020: take each step's gradient at weights moved up the loss by this fraction of their norm,
    e.g. 5e-3; 0 = off) after the first `awp_warmup` fraction of training.
    """

    recipe: str = "standard"
    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    seed: int = 42
    train_eps: float = 8 / 255
    eps_ramp: float = 0.0
    attack_steps: int = 7
    attack_rel_step: float | None = None
    attack_restarts: int = 1
    rs_alpha: float = 1.25
    trades_beta: float = 6.0  # the KL weight of trades and of mart
    trades_start: str = "normal"  # where the KL walk starts: "normal" (x + 0.001 N(0, 1)) or "uniform" in the ball
    ensemble_models: tuple[str, ...] = ()
    precision: str = "bf16"
    channels_last: bool = True
    eval_every_epoch: bool = True
    val_size: int = 0
    watchdog: bool = False
    watchdog_drop: float = 0.2  # a fall of the validation PGD accuracy this far below its best is a collapse
    watchdog_size: int = 512  # validation images the per-epoch PGD check attacks
    select: str = "last"
    ema: float = 0.0  # weight averaging: the decay of an exponential moving average of the weights (0: off)
    shift: int = 0  # augmentation: translate each training image by up to this many pixels (0: off)
    awp: float = 0.0  # adversarial weight perturbation: its size relative to each weight's norm (0: off)
    awp_warmup: float = 0.0  # fraction of training before the weight perturbation starts

    def __post_init__(self) -> None:
        _choice("recipe", self.recipe, RECIPES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _choice("select", self.select, SELECTIONS)
        _choice("trades_start", self.trades_start, TRADES_STARTS)
        if not isinstance(self.shift, int) or isinstance(self.shift, bool) or not 0 <= self.shift <= 8:
            raise ValueError(f"shift must be an integer in [0, 8] pixels, got {self.shift!r}")
        for name in ("epochs", "batch_size", "attack_steps", "attack_restarts", "watchdog_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.val_size, int) or isinstance(self.val_size, bool) or self.val_size < 0:
            raise ValueError(f"val_size must be an integer >= 0, got {self.val_size!r}")
        _number("lr", self.lr, low=0, strict=True)
        _number("momentum", self.momentum, low=0, high=1, open_high=True)
        _number("weight_decay", self.weight_decay, low=0)
        _number("train_eps", self.train_eps, low=0, high=1)
        _number("eps_ramp", self.eps_ramp, low=0, high=1)
        _number("rs_alpha", self.rs_alpha, low=0, strict=True)
        _number("trades_beta", self.trades_beta, low=0)
        _number("watchdog_drop", self.watchdog_drop, low=0, high=1, strict=True)
        _number("ema", self.ema, low=0, high=1, open_high=True)
        _number("awp", self.awp, low=0, high=1)
        _number("awp_warmup", self.awp_warmup, low=0, high=1, open_high=True)
        if self.attack_rel_step is not None:
            _number("attack_rel_step", self.attack_rel_step, low=0, strict=True)
            if self.attack_rel_step > 1:
                log.warning(
                    "attack step %.3g * eps is larger than eps: the walk can jump across the ball", self.attack_rel_step
                )
        if self.recipe == "ensemble" and not self.ensemble_models:
            raise ValueError("the ensemble recipe needs static pre-trained models (ensemble_models / --ensemble)")
        if self.recipe != "ensemble" and self.ensemble_models:
            raise ValueError(f"ensemble_models only go with the ensemble recipe, not {self.recipe!r}")
        if (self.watchdog or self.select == "best") and self.val_size == 0:
            raise ValueError("the watchdog and select='best' need a validation split (val_size > 0)")
        if self.recipe != "standard" and self.train_eps == 0:
            raise ValueError(f"the {self.recipe} recipe needs train_eps > 0")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["ensemble_models"] = list(self.ensemble_models)
        return out


def _choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")


def _number(
    name: str,
    value: object,
    *,
    low: float,
    high: float = math.inf,
    strict: bool = False,
    open_high: bool = False,
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        assert isinstance(value, (int, float))
        ok = (value > low if strict else value >= low) and (value < high if open_high else value <= high)
    if not ok:
        bounds = f"{'(' if strict else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise ValueError(f"{name} must be a number in {bounds}, got {value!r}")


def make_objective(cfg: TrainConfig, statics: Sequence[nn.Module] = ()) -> Objective:
    """The recipe's objective; `statics` are the loaded `ensemble_models`."""
    bf16 = cfg.precision == "bf16"
    if cfg.recipe == "fgsm-mix":
        return fgsm_mix(bf16=bf16)
    if cfg.recipe == "fgsm-rs":
        return fgsm_rs(alpha=cfg.rs_alpha, bf16=bf16)
    if cfg.recipe == "pgd":
        return pgd_at(
            steps=cfg.attack_steps, rel_step_size=cfg.attack_rel_step, restarts=cfg.attack_restarts, bf16=bf16
        )
    if cfg.recipe == "trades":
        return trades(
            beta=cfg.trades_beta,
            steps=cfg.attack_steps,
            rel_step_size=cfg.attack_rel_step,
            start=cfg.trades_start,
            bf16=bf16,
        )
    if cfg.recipe == "mart":
        return mart(beta=cfg.trades_beta, steps=cfg.attack_steps, rel_step_size=cfg.attack_rel_step, bf16=bf16)
    if cfg.recipe == "ensemble":
        return ensemble(statics, bf16=bf16)
    return standard_ce()
