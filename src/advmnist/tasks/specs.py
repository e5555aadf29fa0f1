"""The parts every command spec is made of: where the data is, which model, where the outputs go.

A command's spec is one frozen dataclass built from these (by the CLI from its flags, or by a
user from Python) and passed down whole; each field is declared once with `option(...)`, which
also makes its command-line flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from advmnist.data import MNIST, DatasetSpec, MNISTSplit, load_mnist
from advmnist.errors import ConfigError, ModelError, UsageError, user_input
from advmnist.models import load_model
from advmnist.models.factory import load_user_model
from advmnist.options import option


@dataclass(frozen=True)
class DataOptions:
    """Which dataset files to read (never downloads: `advmnist data` does that).

    `data_dir`: the folder holding the IDX files (default None: `$ADVMNIST_DATA`, then the user
    cache); `checksums`: a JSON of file names and sha256 for an MNIST-class dataset of your own
    (default None: MNIST).
    """

    data_dir: str | None = option(None, "folder holding the IDX files (default: $ADVMNIST_DATA, then the cache)")
    checksums: str | None = option(None, "JSON of file names + sha256 for an MNIST-class dataset of your own")

    @property
    def dataset(self) -> DatasetSpec:
        return DatasetSpec.from_checksums(self.checksums) if self.checksums else MNIST

    def load(self, split: str, n: int | None = None) -> MNISTSplit:
        with user_input():
            return load_mnist(split, self.data_dir, n, spec=self.dataset)


@dataclass(frozen=True)
class Output:
    """The run folder and what may happen to an earlier run there.

    `out`: the folder (default "": the command's own default); `overwrite` (default False) replaces
    an earlier run there, only the files the command writes; `resume` (default False) continues a
    killed run of the same configuration. Without either, an earlier run is refused.
    """

    out: str = option("", "output folder")
    overwrite: bool = option(False, "replace an earlier run in --out (only the files the command writes)")
    resume: bool = option(False, "continue a killed run in --out (same configuration only)")

    def __post_init__(self) -> None:
        if not self.out:
            raise UsageError("give an output folder (--out)")
        if self.overwrite and self.resume:
            raise UsageError("--overwrite and --resume exclude each other")

    @property
    def path(self) -> Path:
        return Path(self.out)


@dataclass(frozen=True)
class Runtime:
    """How to run, not what: none of this changes a result."""

    device: str = "cpu"
    progress: bool = False
    command: str = ""


@dataclass(frozen=True)
class ModelSource:
    """A saved advmnist checkpoint (`path`), or any classifier: `factory` builds it, `weights` fill it."""

    path: str | None = None
    factory: str | None = None
    weights: str | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.factory is None) or (self.factory is not None and self.weights is None):
            raise UsageError("give either a model checkpoint, or a model factory together with its weights")
        if self.path is not None and self.weights is not None:
            raise UsageError("--weights goes with --model-factory; a checkpoint names its own weights")

    @property
    def name(self) -> str:
        return str(self.path or self.factory)

    def load(self, device: str = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
        """The model in eval mode on `device`, and its card (arch, sha256, ...)."""
        if self.path is not None:
            model, card = load_model(self.path)
        else:
            with user_input(f"model factory {self.factory!r}"):
                model, card = load_user_model(str(self.factory), str(self.weights))
        return model.to(device), card


def check_model(model: torch.nn.Module, x: torch.Tensor, classes: int, where: str) -> None:
    """One forward pass on a first batch, before anything is written: logits of the right shape, finite.

    A model that cannot run, returns the wrong number of outputs, or returns NaN/inf would give
    accuracies that mean nothing; it is refused here with a `ModelError` naming `where`.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(x)
    except Exception as exc:  # noqa: BLE001  # anyone's model: any failure of its forward pass is reported
        raise ModelError(
            f"{where}: the forward pass on {len(x)} test images failed ({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        model.train(was_training)
    if not isinstance(logits, torch.Tensor) or logits.shape != (len(x), classes):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ModelError(
            f"{where}: returns {shape} for {len(x)} images; expected logits of shape ({len(x)}, {classes})"
        )
    if not bool(torch.isfinite(logits).all()):
        bad = int((~torch.isfinite(logits)).any(1).sum())
        raise ModelError(
            f"{where}: returns NaN or infinite logits for {bad} of {len(x)} test images; refusing to evaluate"
        )


def classes_of(y: torch.Tensor) -> int:
    """The number of classes the labels imply (10 for MNIST)."""
    return max(int(y.max()) + 1, 10) if len(y) else 10


def test_points(size: int, every: int, n: int | None) -> torch.Tensor:
    """Indices of every `every`-th of `size` test images, the first `n` of those."""
    if every < 1:
        raise UsageError(f"--every must be >= 1, got {every}")
    index = torch.arange(0, size, every)
    if n is not None:
        if not 1 <= n <= len(index):
            raise UsageError(f"--n must be in [1, {len(index)}] (test images taken every {every}), got {n}")
        index = index[:n]
    return index


def missing_files(paths: list[str], what: str) -> None:
    """A `ConfigError` naming every path of `paths` that is not a file."""
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise ConfigError(f"{what} not found: {', '.join(missing)}")
