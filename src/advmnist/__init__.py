"""advmnist: train, attack, defend and report on MNIST-class classifiers, with numbers you can trust.

    >>> import advmnist
    >>> train, test = advmnist.load_mnist("train"), advmnist.load_mnist("test")
    >>> model = advmnist.create_model("seed-cnn")
    >>> advmnist.train(model, (train.x, train.y), (test.x, test.y), advmnist.TrainConfig(epochs=1))
    >>> advmnist.evaluate(model, test.x[:500], test.y[:500], attack="fgsm,pgd,autoattack", epsilons=[0.1, 0.3])

Names are imported on first use, so `import advmnist` is fast and `advmnist.reporting` works
without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "advmnist.attacks": [
        "FGSM",
        "PGD",
        "Attack",
        "AttackResult",
        "AutoAttack",
        "Threat",
        "create_attack",
        "list_attacks",
    ],
    "advmnist.config": ["StudyConfig", "load_config"],
    "advmnist.data": ["DatasetSpec", "fetch_mnist", "load_mnist"],
    "advmnist.errors": [
        "AdvmnistError",
        "CheckpointError",
        "ConfigError",
        "DataError",
        "FactoryError",
        "ModelError",
        "OutputError",
        "RunDirError",
        "UsageError",
    ],
    "advmnist.evaluation": ["Accuracy", "EvalResult", "Evaluation", "Plan", "accuracy", "evaluate", "parse_eps"],
    "advmnist.models": [
        "create_model",
        "import_pth",
        "list_models",
        "load_model",
        "load_pretrained",
        "pretrained_path",
        "save_model",
    ],
    "advmnist.reporting": ["build_report", "plot_robustness"],
    "advmnist.study": ["run_study"],
    "advmnist.tasks": [
        "CompareSpec",
        "DataOptions",
        "DetectSpec",
        "EvalSpec",
        "ModelSource",
        "Output",
        "TrainSpec",
        "compare_models",
        "detect_checkpoint",
        "evaluate_checkpoint",
        "train_model",
    ],
    "advmnist.training": ["TrainConfig", "create_recipe", "fit", "list_recipes"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_WHERE["train"] = "advmnist.training"  # `advmnist.train(...)` is `fit`

__all__ = [
    "Accuracy",
    "AdvmnistError",
    "Attack",
    "AttackResult",
    "AutoAttack",
    "CheckpointError",
    "CompareSpec",
    "ConfigError",
    "DataError",
    "DataOptions",
    "DatasetSpec",
    "DetectSpec",
    "EvalResult",
    "EvalSpec",
    "Evaluation",
    "FGSM",
    "FactoryError",
    "ModelError",
    "ModelSource",
    "Output",
    "OutputError",
    "PGD",
    "Plan",
    "RunDirError",
    "StudyConfig",
    "Threat",
    "TrainConfig",
    "TrainSpec",
    "UsageError",
    "accuracy",
    "build_report",
    "compare_models",
    "create_attack",
    "create_model",
    "create_recipe",
    "detect_checkpoint",
    "evaluate",
    "evaluate_checkpoint",
    "fetch_mnist",
    "fit",
    "import_pth",
    "list_attacks",
    "list_models",
    "list_recipes",
    "load_config",
    "load_mnist",
    "load_model",
    "load_pretrained",
    "parse_eps",
    "plot_robustness",
    "pretrained_path",
    "run_study",
    "save_model",
    "train",
    "train_model",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("advmnist")
        except PackageNotFoundError:
            return "0+unknown"
    if name not in _WHERE:
        raise AttributeError(f"module 'advmnist' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), "fit" if name == "train" else name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from advmnist.attacks import FGSM, PGD, Attack, AttackResult, AutoAttack, Threat, create_attack, list_attacks
    from advmnist.config import StudyConfig, load_config
    from advmnist.data import DatasetSpec, fetch_mnist, load_mnist
    from advmnist.errors import (
        AdvmnistError,
        CheckpointError,
        ConfigError,
        DataError,
        FactoryError,
        ModelError,
        OutputError,
        RunDirError,
        UsageError,
    )
    from advmnist.evaluation import Accuracy, EvalResult, Evaluation, Plan, accuracy, evaluate, parse_eps
    from advmnist.models import (
        create_model,
        import_pth,
        list_models,
        load_model,
        load_pretrained,
        pretrained_path,
        save_model,
    )
    from advmnist.reporting import build_report, plot_robustness
    from advmnist.study import run_study
    from advmnist.tasks import (
        CompareSpec,
        DataOptions,
        DetectSpec,
        EvalSpec,
        ModelSource,
        Output,
        TrainSpec,
        compare_models,
        detect_checkpoint,
        evaluate_checkpoint,
        train_model,
    )
    from advmnist.training import TrainConfig, create_recipe, fit, list_recipes
    from advmnist.training import fit as train
