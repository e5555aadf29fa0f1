"""The commands' work, one spec in, one run folder out: train, eval, detect, compare.

Each command builds a frozen spec (`TrainSpec`, `EvalSpec`, `DetectSpec`, `CompareSpec`) from its
parts (`DataOptions`, `ModelSource`, `Output`, `Runtime`) and passes it down whole; every run
folder goes through the one run context of `advmnist.rundir`.
"""

from advmnist.tasks.compare import CompareSpec, compare_models
from advmnist.tasks.detect import DetectSpec, detect_checkpoint
from advmnist.tasks.evaluate import EvalSpec, evaluate_checkpoint
from advmnist.tasks.specs import DataOptions, ModelSource, Output, Runtime, test_points
from advmnist.tasks.train import TrainSpec, train_model

__all__ = [
    "CompareSpec",
    "DataOptions",
    "DetectSpec",
    "EvalSpec",
    "ModelSource",
    "Output",
    "Runtime",
    "TrainSpec",
    "compare_models",
    "detect_checkpoint",
    "evaluate_checkpoint",
    "test_points",
    "train_model",
]
