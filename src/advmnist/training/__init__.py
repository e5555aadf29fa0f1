"""Training: objectives, schedules, the collapse watchdog, weight averaging and perturbation, a short `fit` loop."""

from advmnist.training.averaging import WeightAverage
from advmnist.training.awp import WeightPerturbation
from advmnist.training.fit import TrainResult, evaluate_clean, fit, split_validation
from advmnist.training.objectives import (
    LossOutput,
    adversarial,
    ensemble,
    fgsm_mix,
    fgsm_rs,
    mart,
    pgd_at,
    standard_ce,
    trades,
)
from advmnist.training.recipes import RECIPES, TrainConfig, make_objective
from advmnist.training.schedules import LR_SCHEDULES, eps_at, lr_at
from advmnist.training.watchdog import Watchdog, validate

__all__ = [
    "LR_SCHEDULES",
    "RECIPES",
    "LossOutput",
    "TrainConfig",
    "TrainResult",
    "Watchdog",
    "WeightAverage",
    "WeightPerturbation",
    "adversarial",
    "ensemble",
    "eps_at",
    "evaluate_clean",
    "fgsm_mix",
    "fgsm_rs",
    "fit",
    "lr_at",
    "make_objective",
    "mart",
    "pgd_at",
    "split_validation",
    "standard_ce",
    "trades",
    "validate",
]
