"""Resumable training state: weights, optimizer buffers and RNG states after each epoch.

`state.safetensors` holds every tensor; `state.json` (written last, so it marks a complete
checkpoint) holds the epoch, history, the config it belongs to and the tensors' sha256.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from advmnist.errors import CheckpointError, RunDirError
from advmnist.io import atomic_write_bytes, sha256_file, write_json
from advmnist.training.averaging import WeightAverage


def save_training_state(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    info: dict[str, Any],
    average: WeightAverage | None = None,
) -> None:
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    if average is not None:
        tensors.update({f"average.{k}": v.contiguous() for k, v in average.shadow.items()})
        info = {**info, "average_updates": average.updates}
    opt_state = optimizer.state_dict()
    for index, buffers in opt_state["state"].items():
        for name, value in buffers.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value.contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.data"] = generator.get_state()
    atomic_write_bytes(folder / "state.safetensors", save(tensors))
    meta = {**info, "param_groups": opt_state["param_groups"], "sha256": sha256_file(folder / "state.safetensors")}
    write_json(folder / "state.json", meta)


def load_training_state(
    folder: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    fingerprint: dict[str, Any],
    average: WeightAverage | None = None,
    defaults: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Restore the last complete epoch into model/optimizer/RNGs (and the weight average); None if none.

    A setting missing from the checkpoint's fingerprint (it predates the setting) counts as its
    value in `defaults`: a run killed before an upgrade resumes if it did not use the new setting.
    """
    meta_path = folder / "state.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    saved = meta.get("fingerprint")
    if isinstance(saved, dict):
        # a setting the checkpoint predates counts as its default; one the configuration no longer
        # has (another recipe's setting, which could not change this training) is left out
        saved = {k: saved[k] if k in saved else (defaults or {}).get(k) for k in fingerprint}
    if saved != fingerprint:
        raise RunDirError(f"{folder}: the checkpoint belongs to another training configuration; refusing to mix")
    if sha256_file(folder / "state.safetensors") != meta["sha256"]:
        raise CheckpointError(f"{folder / 'state.safetensors'}: sha256 mismatch (corrupt checkpoint)")
    tensors = load_file(folder / "state.safetensors")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if average is not None:
        average.shadow = {k[8:]: v for k, v in tensors.items() if k.startswith("average.")}
        average.updates = meta["average_updates"]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.data"])
    return meta


def save_best(folder: Path, state: dict[str, torch.Tensor]) -> None:
    """The weights of the best epoch so far (for `select="best"` across a resume)."""
    atomic_write_bytes(folder / "best.safetensors", save({k: v.contiguous() for k, v in state.items()}))


def load_best(folder: Path) -> dict[str, torch.Tensor] | None:
    path = folder / "best.safetensors"
    return load_file(path) if path.is_file() else None
