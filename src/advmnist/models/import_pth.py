"""Import the seed notebook's `.pth` checkpoints safely (`weights_only=True`: no code runs).

Tensors are matched by name (after stripping the `module.` prefix `nn.DataParallel` adds). Only
when no name at all is ours (a notebook that called its layers `features.0`, `classifier.1`, ...)
are they matched by order and shape, and then only if every tensor pairs up; the pairing is
returned and logged, so nothing is accepted silently. Anything in between is an error listing the
missing and unexpected names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from advmnist.errors import CheckpointError
from advmnist.models.checkpoint import key_lists, load_state_checked
from advmnist.models.registry import create_model

log = logging.getLogger(__name__)

_NESTED_KEYS = ("model_state_dict", "state_dict", "model")
_PREFIX = "module."  # what nn.DataParallel / DistributedDataParallel put before every name


@dataclass(frozen=True)
class PthImport:
    """A model imported from a `.pth`, and how the file's tensors were matched to its own."""

    model: torch.nn.Module
    renamed: dict[str, str]  # our tensor name -> the file's, for each tensor not found under our name
    by_order: bool  # True when no name matched and order + shape paired every tensor


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


def _by_order(own: dict[str, torch.Tensor], foreign: dict[str, torch.Tensor]) -> dict[str, str] | None:
    """Our name -> the file's when the two lists pair up one to one by order and shape, else None."""
    if len(own) != len(foreign):
        return None
    pairs = dict(zip(own, foreign, strict=True))
    if any(tuple(own[ours].shape) != tuple(foreign[theirs].shape) for ours, theirs in pairs.items()):
        return None
    return pairs


def _match(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str) -> tuple[dict[str, str], bool]:
    """Our tensor name -> the file's, for every trainable tensor; and whether order decided it."""
    stripped = {k.removeprefix(_PREFIX): k for k in state}
    if len(stripped) != len(state):  # both `x` and `module.x`: strip nothing
        stripped = {k: k for k in state}
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("normalize.")}
    foreign = {k: state[orig] for k, orig in stripped.items() if not k.startswith("normalize.")}
    if set(foreign) == set(own):
        return {k: stripped[k] for k in own}, False
    if not set(foreign) & set(own):
        pairs = _by_order(own, foreign)
        if pairs is not None:
            return {ours: stripped[theirs] for ours, theirs in pairs.items()}, True
    missing = [k for k in own if k not in foreign]
    unexpected = [stripped[k] for k in foreign if k not in own]
    how = "" if set(foreign) & set(own) else ", no name in common and order and shape do not pair them up"
    raise CheckpointError(
        f"{where}: weights of another architecture: {len(foreign)} tensors, the architecture has {len(own)}"
        f"{how} ({key_lists({'missing': missing, 'unexpected': unexpected})})"
    )


def import_pth_with_mapping(path: str | Path, *, arch: str = "seed-cnn", normalization: bool = True) -> PthImport:
    """Load a PyTorch `.pth` state dict into `arch`, returning the model and how its names were matched.

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
    tensors = _extract_state(obj, where)
    names, by_order = _match(model, tensors, where)
    state = dict(model.state_dict())  # the normalize buffers stay ours
    state.update({ours: tensors[theirs] for ours, theirs in names.items()})
    renamed = {ours: theirs for ours, theirs in names.items() if ours != theirs}
    if by_order:
        pairs = ", ".join(f"{ours} <- {theirs}" for ours, theirs in renamed.items())
        log.warning("%s: no tensor name is %s's; matched all %d by order and shape: %s", where, arch, len(names), pairs)
    elif renamed:
        log.info("%s: matched by name after removing the %r prefix", where, _PREFIX)
    if not normalization and hasattr(model, "normalize"):
        state["normalize.mean"] = torch.zeros_like(state["normalize.mean"])
        state["normalize.std"] = torch.ones_like(state["normalize.std"])
    load_state_checked(model, state, where)
    return PthImport(model.eval(), renamed, by_order)


def import_pth(path: str | Path, *, arch: str = "seed-cnn", normalization: bool = True) -> torch.nn.Module:
    """Load a PyTorch `.pth` state dict into `arch` (default "seed-cnn"), read with `weights_only=True`.

    `normalization=True` (the default) keeps the `Normalize` layer (MNIST mean/std) in front, so the
    model takes `[0, 1]` pixels like every advmnist model; `False` makes it the identity, for weights
    trained on raw pixels. `advmnist.models.import_pth_with_mapping` also says how names were matched.
    """
    return import_pth_with_mapping(path, arch=arch, normalization=normalization).model
