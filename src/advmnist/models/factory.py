"""Evaluate anyone's PyTorch classifier: `module:function` builds it, a safetensors file fills it."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from advmnist.errors import CheckpointError, FactoryError
from advmnist.io import sha256_file
from advmnist.models.checkpoint import load_state_checked


def build_from_factory(factory: str) -> torch.nn.Module:
    """Import `package.module:function` and call it with no arguments; it must return an nn.Module.

    Whatever the user's code raises (importing its module, or building the model) becomes one
    FactoryError naming the factory and the exception, chained `from` it for a debug traceback.
    """
    module_name, _, attr = factory.partition(":")
    if not module_name or not attr:
        raise FactoryError(f"model factory must look like 'package.module:function', got {factory!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FactoryError(f"cannot import model factory {factory!r}: {_one_line(exc)}") from exc
    except Exception as exc:  # the user's module failed while being imported: their bug, named
        raise FactoryError(
            f"cannot import model factory {factory!r}: its module raised {type(exc).__name__}: {_one_line(exc)}"
        ) from exc
    builder = getattr(module, attr, None)
    if not callable(builder):
        what = "has no attribute" if builder is None else "has a non-callable"
        raise FactoryError(f"cannot import model factory {factory!r}: module {module_name!r} {what} {attr!r}")
    try:
        model = builder()
    except Exception as exc:  # any failure of the user's code is named, not a traceback of ours
        raise FactoryError(f"model factory {factory!r} raised {type(exc).__name__}: {_one_line(exc)}") from exc
    if not isinstance(model, torch.nn.Module):
        raise FactoryError(f"model factory {factory!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else "(no message)"


def load_user_model(factory: str, weights: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build a user's model and load its weights (names and shapes must match exactly).

    The model must take images in [0, 1] (normalization inside it) and return logits. Returns the
    model in eval mode and a card naming the factory and the weights' sha256.
    """
    model = build_from_factory(factory)
    try:
        state = load_file(weights)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights}: cannot read safetensors weights ({exc})") from None
    load_state_checked(model, state, str(weights))
    return model.eval(), {"arch": factory, "sha256": sha256_file(weights), "weights": str(weights)}
