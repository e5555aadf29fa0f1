"""Training recipes: a name, its objective and its defaults (the seed's hyperparameters)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from advmnist.training.objectives import Objective, fgsm_mix, standard_ce

RECIPES = ("standard", "fgsm-mix")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (its fingerprint for resuming)."""

    recipe: str = "standard"
    epochs: int = 5
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    seed: int = 42
    train_eps: float = 8 / 255
    precision: str = "bf16"
    channels_last: bool = True
    eval_every_epoch: bool = True

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; choose from {', '.join(RECIPES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a number > 0, got {self.lr!r}")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not (isinstance(self.train_eps, (int, float)) and 0 <= self.train_eps <= 1):
            raise ValueError(f"train_eps must be in [0, 1], got {self.train_eps!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def make_objective(cfg: TrainConfig) -> Objective:
    if cfg.recipe == "fgsm-mix":
        return fgsm_mix(cfg.train_eps, bf16=cfg.precision == "bf16", seed=cfg.seed)
    return standard_ce()
