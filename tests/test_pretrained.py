"""The shipped checkpoint is package data, found by name from any working directory."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

import advmnist
from advmnist.demo.engine import default_model_paths
from advmnist.errors import CheckpointError, UsageError
from advmnist.io import sha256_file
from advmnist.models import count_parameters, pretrained
from conftest import ROOT


def test_load_pretrained_finds_the_shipped_model_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing of the checkout is reachable by a relative path
    model, card = advmnist.load_pretrained()  # default name: "mnist-linf-0.3"
    path = advmnist.pretrained_path("mnist-linf-0.3")
    assert path.is_absolute() and path.is_relative_to(Path(advmnist.__file__).resolve().parent)
    assert card["sha256"] == sha256_file(path)  # the weights are the ones the card describes
    assert json.loads(path.with_suffix(".json").read_text()) == card
    assert card["arch"] == "seed-cnn" and card["recipe"]["recipe"] == "trades" and card["recipe"]["train_eps"] == 0.3
    assert count_parameters(model) == 3_274_634 and not model.training
    assert default_model_paths() == [path]  # the demo offers the same file


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"unknown pretrained model 'mnist-l2'; choose from mnist-linf-0\.3"):
        advmnist.load_pretrained("mnist-l2")


@pytest.mark.parametrize("missing", [".safetensors", ".json"])
def test_a_missing_file_is_one_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    for suffix in {".safetensors", ".json"} - {missing}:
        shutil.copy(pretrained.DIRECTORY / f"robust-seed-cnn{suffix}", tmp_path)
    monkeypatch.setattr(pretrained, "DIRECTORY", tmp_path)
    lost = tmp_path / f"robust-seed-cnn{missing}"
    with pytest.raises(CheckpointError, match="reinstall advmnist") as info:
        advmnist.load_pretrained()
    assert str(info.value).startswith(f"{lost}: the file of the pretrained model 'mnist-linf-0.3' is missing")
    assert default_model_paths() == []  # the demo then offers only its quick baseline


def test_the_package_data_globs_carry_the_shipped_checkpoint() -> None:
    """A non-editable install has the weights: pyproject declares them package data.

    (Checked by building a wheel, `pip wheel --no-deps .`, by hand: it holds both files. That takes
    ~30 s, so the test reads the globs setuptools reads instead.)
    """
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["advmnist"]
    package = ROOT / "src" / "advmnist"
    carried = {p for pattern in globs for p in package.glob(pattern)}
    weights = pretrained.DIRECTORY / "robust-seed-cnn.safetensors"
    assert {weights, weights.with_suffix(".json")} <= carried
    assert pretrained.DIRECTORY == package / "pretrained"
