"""The checkpoints shipped inside the package, found by name wherever advmnist is installed.

`load_pretrained("mnist-linf-0.3")` needs no path: the weights and their model card are package
data (`advmnist/pretrained/`), so a notebook or script finds them from any working directory and
a non-editable install has them too. Loading goes through `load_model`, which checks the weights'
sha256 against the card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from advmnist.errors import CheckpointError, UsageError
from advmnist.models.checkpoint import load_model

DIRECTORY = Path(__file__).resolve().parent.parent / "pretrained"

# name -> file stem in DIRECTORY (weights `<stem>.safetensors`, card `<stem>.json`)
PRETRAINED = {
    # the seed CNN after 40 epochs of TRADES at Linf 0.3 (configs/robust-seed-cnn.toml): 98.77% clean,
    # 92.57% under the official AutoAttack at Linf 0.3 on the 10,000 test images (docs/results.md)
    "mnist-linf-0.3": "robust-seed-cnn",
}
DEFAULT = "mnist-linf-0.3"


def pretrained_path(name: str = DEFAULT) -> Path:
    """The weights file (`.safetensors`; its card is the `.json` beside it) of the shipped model `name`.

    Default `"mnist-linf-0.3"`: the seed CNN trained with TRADES at Linf eps 0.3. Raises
    `UsageError` for an unknown name (listing the known ones) and `CheckpointError` naming the
    missing file when this installation lacks the weights or the card.
    """
    if name not in PRETRAINED:
        raise UsageError(f"unknown pretrained model {name!r}; choose from {', '.join(sorted(PRETRAINED))}")
    weights = DIRECTORY / f"{PRETRAINED[name]}.safetensors"
    for path in (weights, weights.with_suffix(".json")):
        if not path.is_file():
            raise CheckpointError(
                f"{path}: the file of the pretrained model {name!r} is missing from this installation of advmnist; "
                "reinstall advmnist (in a git checkout: `git checkout -- src/advmnist/pretrained`)"
            )
    return weights


def load_pretrained(name: str = DEFAULT) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load the shipped model `name` (default `"mnist-linf-0.3"`): `(model in eval mode, model card)`.

    The card records the recipe, the training run and the model's measured accuracies
    (`card["metrics"]`); the weights' sha256 is checked against it, as `load_model` does.
    """
    return load_model(pretrained_path(name))
