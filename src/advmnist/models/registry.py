"""A registry of architectures: `create_model("seed-cnn")`, `list_models()` (feeds the CLI and tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from advmnist.specs import parse_spec

F = TypeVar("F", bound=Callable[..., nn.Module])
_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[F], F]:
    """Decorator: make `factory(**kwargs) -> nn.Module` available as `create_model(name)`."""

    def wrap(factory: F) -> F:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = factory
        return factory

    return wrap


def list_models() -> list[str]:
    """The names of the registered architectures, sorted: what `create_model` and `--arch` accept."""
    return sorted(_MODELS)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered architecture; inputs are `[0, 1]` images, outputs are logits.

    `name` may carry settings, as on the command line: `create_model("seed-cnn[dropout=0]")`.
    """
    name, settings = parse_spec(name, "architecture setting")
    kwargs = {**settings, **kwargs}
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(list_models())}")
    try:
        model = _MODELS[name](**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad setting for architecture {name!r}: {exc}") from None
    model.arch = name  # type: ignore[assignment]  # read by save_model to rebuild it
    model.arch_kwargs = dict(kwargs)  # type: ignore[assignment]
    return model
