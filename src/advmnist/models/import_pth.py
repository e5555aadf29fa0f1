"""Import the seed notebook's `.pth` checkpoints safely (`weights_only=True`: no code runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from advmnist.errors import CheckpointError
from advmnist.models.checkpoint import load_state_checked
from advmnist.models.registry import create_model

_NESTED_KEYS = ("model_state_dict", "state_dict", "model")


def _extract_state(obj: Any, where: str) -> dict[str, torch.Tensor]:
    """Find the tensor dict in a bare state dict or a {'model_state_dict': ...} training checkpoint."""
    if isinstance(obj, dict):
        for key in _NESTED_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise CheckpointError(f"{where}: no state dict of tensors found")


def _match_by_order(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """Map foreign parameter names onto ours by order and shape (buffers such as `normalize.*` kept)."""
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("normalize.")}
    foreign = [(k, v) for k, v in state.items() if not k.startswith("normalize.")]
    if len(foreign) != len(own):
        raise CheckpointError(f"{where}: {len(foreign)} tensors, the architecture has {len(own)}")
    mapped = dict(model.state_dict())
    for (name, tensor), (foreign_name, value) in zip(own.items(), foreign, strict=True):
        if tuple(value.shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{where}: weights of another architecture ({foreign_name} has shape "
                f"{tuple(value.shape)}, {name} needs {tuple(tensor.shape)})"
            )
        mapped[name] = value
    return mapped


def import_pth(path: str | Path, *, arch: str = "seed-cnn", normalization: bool = True) -> torch.nn.Module:
    """Load a PyTorch `.pth` state dict into `arch`.

    The seed notebook normalized inputs in its data pipeline; `normalization=True` keeps our
    `Normalize` layer (MNIST mean/std) in front so the imported model takes `[0, 1]` pixels.
    With `normalization=False` the layer becomes the identity (mean 0, std 1).
    """
    where = str(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{where}: file not found") from None
    except Exception as exc:  # noqa: BLE001  # an untrusted file: any parse failure is the user's file's
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{where}: not a weights-only PyTorch checkpoint ({first[:160]})") from None
    model = create_model(arch)
    state = _extract_state(obj, where)
    state = _match_by_order(model, state, where)
    if not normalization and hasattr(model, "normalize"):
        state["normalize.mean"] = torch.zeros_like(state["normalize.mean"])
        state["normalize.std"] = torch.ones_like(state["normalize.std"])
    load_state_checked(model, state, where)
    return model.eval()
