"""Checkpoints that rebuild themselves: `name.safetensors` (weights) + `name.json` (model card).

No pickles anywhere. The card names the architecture and its kwargs, so `load_model(path)`
needs nothing else; the weights' sha256 in the card is checked on every load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from advmnist.errors import CheckpointError
from advmnist.io import atomic_write_bytes, sha256_file, write_json
from advmnist.models.registry import create_model

SCHEMA_VERSION = 1


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _paths(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def state_dict_bytes(model: torch.nn.Module) -> bytes:
    """The model's weights as safetensors bytes (contiguous NCHW, whatever the memory format)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save(tensors)


def save_model(model: torch.nn.Module, path: str | Path, **card: Any) -> Path:
    """Write weights + model card; `card` adds fields (recipe, seed, metrics, ...). Returns the card path."""
    weights, card_path = _paths(path)
    arch = getattr(model, "arch", None)
    if arch is None:
        raise TypeError("save_model needs a model built by create_model() (it records the architecture)")
    atomic_write_bytes(weights, state_dict_bytes(model))
    normalize = getattr(model, "normalize", None)
    full = {
        "schema_version": SCHEMA_VERSION,
        "arch": arch,
        "arch_kwargs": getattr(model, "arch_kwargs", {}),
        "params": count_parameters(model),
        "normalization": None
        if normalize is None
        else {"mean": normalize.mean.flatten().tolist(), "std": normalize.std.flatten().tolist()},
        "weights": weights.name,
        "sha256": sha256_file(weights),
        **card,
    }
    return write_json(card_path, full)


def read_card(path: str | Path) -> dict[str, Any]:
    weights, card_path = _paths(path)
    if Path(path).suffix == ".pth":
        raise CheckpointError(f"{path}: a pickled .pth checkpoint; convert it with `advmnist import-pth` first")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{card_path}: model card not found (expected beside {weights.name})") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{card_path}: unreadable model card ({exc})") from None
    if not isinstance(card, dict) or "arch" not in card or "sha256" not in card:
        raise CheckpointError(f"{card_path}: not an advmnist model card (no 'arch' or 'sha256')")
    return card


def load_model(path: str | Path, *, arch: str | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a model from its card and weights, checking sha256 and every tensor's name and shape.

    `arch`, when given, must match the card (guards against evaluating the wrong kind of model).
    Returns the model in eval mode and the card. Any failure to read the files (missing, not
    readable, corrupt) is a `CheckpointError` naming the file and the cause.
    """
    weights, card_path = _paths(path)
    try:
        return _load_model(weights, card_path, path, arch)
    except OSError as exc:
        where = exc.filename or weights
        raise CheckpointError(f"{where}: cannot read ({exc.strerror or exc})") from exc


def _load_model(
    weights: Path, card_path: Path, path: str | Path, arch: str | None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    if Path(path).suffix != ".pth" and not weights.exists() and not card_path.exists():
        raise CheckpointError(f"model file {weights} does not exist")
    card = read_card(path)
    if arch is not None and card["arch"] != arch:
        raise CheckpointError(f"{weights}: holds a {card['arch']!r} model, expected {arch!r}")
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file not found")
    if sha256_file(weights) != card["sha256"]:
        raise CheckpointError(f"{weights}: sha256 does not match its model card (modified or corrupt)")
    try:
        state = load_file(weights)
        model = create_model(card["arch"], **card.get("arch_kwargs", {}))
    except (SafetensorError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{weights}: cannot load ({exc})") from None
    load_state_checked(model, state, str(weights))
    return model.eval(), card


def load_state_checked(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """`load_state_dict` with a one-line error listing every missing, unexpected and misshapen tensor."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    bad = [
        f"{k} {tuple(state[k].shape)} where the model has {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or extra or bad:
        detail = key_lists({"missing": missing, "unexpected": extra, "wrong shape": bad})
        raise CheckpointError(f"{where}: weights of another architecture ({detail})")
    model.load_state_dict(state)


def key_lists(lists: dict[str, list[str]], limit: int = 10) -> str:
    """`missing: a, b; unexpected: c, ... and 3 more`: the non-empty lists, each cut at `limit` names."""
    parts = []
    for label, names in lists.items():
        if names:
            shown = ", ".join(names[:limit])
            more = f" and {len(names) - limit} more" if len(names) > limit else ""
            parts.append(f"{label}: {shown}{more}")
    return "; ".join(parts)
