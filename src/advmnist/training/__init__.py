"""Training: recipes (objectives) and one short `fit` loop with resumable checkpoints."""

from advmnist.training.fit import TrainResult, evaluate_clean, fit
from advmnist.training.objectives import LossOutput, fgsm_mix, standard_ce
from advmnist.training.recipes import RECIPES, TrainConfig, make_objective

__all__ = [
    "RECIPES",
    "LossOutput",
    "TrainConfig",
    "TrainResult",
    "evaluate_clean",
    "fgsm_mix",
    "fit",
    "make_objective",
    "standard_ce",
]
