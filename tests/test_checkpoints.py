"""The committed robust checkpoint: it loads (sha256 checked against its card) and is what its card says."""

from __future__ import annotations

import json

import pytest
import torch

from advmnist.data import load_mnist
from advmnist.io import sha256_file
from advmnist.models import count_parameters, load_model
from conftest import ROOT

ROBUST = ROOT / "src" / "advmnist" / "pretrained" / "robust-seed-cnn.safetensors"


def test_the_committed_checkpoint_is_small_and_its_card_names_its_sha256() -> None:
    card = json.loads(ROBUST.with_suffix(".json").read_text())
    assert ROBUST.stat().st_size <= 15 * 2**20
    assert card["sha256"] == sha256_file(ROBUST)
    assert card["arch"] == "seed-cnn" and card["recipe"]["recipe"] == "trades" and card["recipe"]["train_eps"] == 0.3
    assert card["metrics"]["autoattack_linf_0.3"]["value"] > 0.9  # its card records the official AutoAttack


@pytest.mark.slow
def test_the_committed_robust_checkpoint_is_accurate_on_real_mnist(real_mnist: None) -> None:
    model, card = load_model(ROBUST)
    assert count_parameters(model) == 3_274_634
    test = load_mnist("test")
    with torch.inference_mode():
        pred = torch.cat([model(x).argmax(1) for x in test.x.split(1000)])
    accuracy = (pred == test.y).float().mean().item()
    assert accuracy >= 0.985, accuracy
    assert abs(accuracy - card["metrics"]["clean_accuracy"]["value"]) < 1e-3  # the card's number is this one
