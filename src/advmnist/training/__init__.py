"""Training: a registry of recipes (objectives + their settings), schedules, and a short `fit` loop with callbacks."""

from advmnist.training.averaging import WeightAverage
from advmnist.training.awp import WeightPerturbation
from advmnist.training.callbacks import Callback, FitState, TrainResult
from advmnist.training.config import TrainConfig
from advmnist.training.fit import fit, split_validation
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
from advmnist.training.recipes import RECIPES, Recipe, all_settings, create_recipe, list_recipes
from advmnist.training.schedules import LR_SCHEDULES, eps_at, lr_at
from advmnist.training.watchdog import Watchdog, evaluate_clean, validate

__all__ = [
    "LR_SCHEDULES",
    "RECIPES",
    "Callback",
    "FitState",
    "LossOutput",
    "Recipe",
    "TrainConfig",
    "TrainResult",
    "Watchdog",
    "WeightAverage",
    "WeightPerturbation",
    "adversarial",
    "all_settings",
    "create_recipe",
    "ensemble",
    "eps_at",
    "evaluate_clean",
    "fgsm_mix",
    "fgsm_rs",
    "fit",
    "list_recipes",
    "lr_at",
    "mart",
    "pgd_at",
    "split_validation",
    "standard_ce",
    "trades",
    "validate",
]
