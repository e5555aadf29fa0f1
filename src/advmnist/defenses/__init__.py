"""Defenses and their honest evaluation: feature squeezing (Xu et al. 2018) against an adaptive attack."""

from advmnist.defenses.detection import evaluate_detector, roc_auc
from advmnist.defenses.squeeze import (
    AdaptiveResult,
    FeatureSqueezing,
    adaptive_attack,
    bit_depth,
    median_smooth,
)

__all__ = [
    "AdaptiveResult",
    "FeatureSqueezing",
    "adaptive_attack",
    "bit_depth",
    "evaluate_detector",
    "median_smooth",
    "roc_auc",
]
