from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advmnist.errors import CheckpointError
from advmnist.models import (
    MNIST_MEAN,
    MNIST_STD,
    Normalize,
    count_parameters,
    create_model,
    import_pth,
    list_models,
    load_model,
    save_model,
)


def test_seed_cnn_has_exactly_the_seeds_parameter_count() -> None:
    assert count_parameters(create_model("seed-cnn")) == 3_274_634


def test_normalization_is_the_first_layer_and_outputs_are_logits() -> None:
    model = create_model("seed-cnn").eval()
    first = next(model.children())
    assert isinstance(first, Normalize)
    x = torch.rand(4, 1, 28, 28)
    assert torch.allclose(first(x), (x - MNIST_MEAN) / MNIST_STD)
    out = model(x)
    assert out.shape == (4, 10)
    assert not torch.allclose(out.softmax(1).sum(1), out.sum(1))  # not already probabilities


@pytest.mark.parametrize(("arch", "params"), [("small-cnn", 312_202), ("seed-cnn-wide", 6_640_394)])
def test_the_other_sizes_of_the_architecture_analysis(arch: str, params: int, tmp_path: Path) -> None:
    model = create_model(arch).eval()
    assert count_parameters(model) == params and isinstance(next(model.children()), Normalize)
    x = torch.rand(3, 1, 28, 28)
    # channels_last (training and attacks use it) computes the same logits
    assert torch.allclose(model(x), model.to(memory_format=torch.channels_last)(x), atol=1e-5)
    save_model(model, tmp_path / arch)
    loaded, card = load_model(tmp_path / f"{arch}.safetensors")
    assert card["arch"] == arch and card["params"] == params
    assert torch.allclose(loaded(x), model(x), atol=1e-6)  # `model` is channels_last by now


def test_architecture_settings_in_the_name() -> None:
    model = create_model("seed-cnn[dropout=0]")
    assert model.arch == "seed-cnn" and model.arch_kwargs == {"dropout": 0} and model.dropout.p == 0
    assert count_parameters(model) == 3_274_634  # dropout changes training, not the architecture
    with pytest.raises(ValueError, match="bad setting for architecture 'seed-cnn'"):
        create_model("seed-cnn[depth=3]")
    with pytest.raises(ValueError, match="write name\\[key=value"):
        create_model("seed-cnn[dropout=0")


def test_the_silu_variant_keeps_the_layers_and_pools_after_the_activation() -> None:
    torch.manual_seed(0)
    relu = create_model("seed-cnn[dropout=0]").eval()
    silu = create_model("seed-cnn[dropout=0,activation=silu]").eval()
    assert silu.arch_kwargs == {"dropout": 0, "activation": "silu"} and count_parameters(silu) == 3_274_634
    silu.load_state_dict(relu.state_dict())  # the same tensors fit: only the nonlinearity differs
    x = torch.rand(4, 1, 28, 28)
    h = silu.normalize(x)
    expected = silu.fc2(F.silu(silu.fc1(silu.pool(F.silu(silu.conv2(silu.pool(F.silu(silu.conv1(h)))))).flatten(1))))
    assert torch.allclose(silu(x), expected, atol=1e-5)  # SiLU before max-pool (they do not commute)
    assert not torch.allclose(silu(x), relu(x), atol=1e-3)
    with pytest.raises(ValueError, match="activation must be one of relu, silu, not 'tanh'"):
        create_model("seed-cnn[activation=tanh]")


def test_registry_lists_and_rejects() -> None:
    assert {"seed-cnn", "seed-cnn-wide", "small-cnn", "linear"} <= set(list_models())
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        create_model("resnet")


def test_save_load_round_trip_keeps_outputs_and_card(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("seed-cnn").to(memory_format=torch.channels_last).eval()
    card_path = save_model(model, tmp_path / "m", recipe="standard", seed=42)
    card = json.loads(card_path.read_text())
    assert card["arch"] == "seed-cnn" and card["params"] == 3_274_634 and card["seed"] == 42
    assert card["normalization"] == {"mean": [pytest.approx(MNIST_MEAN)], "std": [pytest.approx(MNIST_STD)]}
    loaded, _ = load_model(tmp_path / "m.safetensors")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(loaded(x), model(x), atol=1e-5)  # memory formats differ: other conv kernels
    assert not loaded.training


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    save_model(create_model("linear"), tmp_path / "m")
    data = bytearray((tmp_path / "m.safetensors").read_bytes())
    data[-1] ^= 1
    (tmp_path / "m.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 does not match"):
        load_model(tmp_path / "m.json")


def test_checkpoint_of_another_architecture_is_refused(tmp_path: Path) -> None:
    save_model(create_model("linear"), tmp_path / "m")
    card = json.loads((tmp_path / "m.json").read_text())
    card["arch"] = "seed-cnn"  # a card that lies about the weights
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="weights of another architecture"):
        load_model(tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="holds a 'seed-cnn' model, expected 'linear'"):
        load_model(tmp_path / "m.safetensors", arch="linear")


def test_missing_card_and_pth_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):  # issue 24: neither file: say so
        load_model(tmp_path / "nothing.safetensors")
    (tmp_path / "x.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="import-pth"):
        load_model(tmp_path / "x.pth")


class SeedNotebookCNN(nn.Module):
    """The seed notebook's layout (names of our guess; import maps by order and shape anyway)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(3136, 1024), nn.ReLU(), nn.Dropout(0.5), nn.Linear(1024, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@pytest.mark.parametrize("nested", [False, True])
def test_import_pth_reproduces_the_foreign_model(tmp_path: Path, nested: bool) -> None:
    torch.manual_seed(1)
    foreign = SeedNotebookCNN().eval()
    state = foreign.state_dict()
    torch.save({"epoch": 5, "model_state_dict": state} if nested else state, tmp_path / "seed.pth")
    ours = import_pth(tmp_path / "seed.pth")
    x = torch.rand(5, 1, 28, 28)
    # The seed normalized in its data pipeline; ours does it in its first layer.
    assert torch.allclose(ours(x), foreign((x - MNIST_MEAN) / MNIST_STD), atol=1e-5)
    raw = import_pth(tmp_path / "seed.pth", normalization=False)
    assert torch.allclose(raw(x), foreign(x), atol=1e-5)


def test_import_pth_rejects_other_architectures_and_pickled_code(tmp_path: Path) -> None:
    torch.save(nn.Linear(784, 10).state_dict(), tmp_path / "lin.pth")
    with pytest.raises(CheckpointError, match="2 tensors, the architecture has 8"):
        import_pth(tmp_path / "lin.pth")
    torch.save({"f": lambda_free_object()}, tmp_path / "obj.pth")
    with pytest.raises(CheckpointError, match="not a weights-only PyTorch checkpoint"):
        import_pth(tmp_path / "obj.pth")


class _Arbitrary:
    pass


def lambda_free_object() -> object:
    return _Arbitrary()


# --- issue 24: import-pth matches by name and says what it matched; every key in the errors -------


def _our_tensors(**changes: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """seed-cnn's trainable tensors (no normalize buffers, as a foreign .pth has), with `changes` applied."""
    torch.manual_seed(0)
    state = {k: v for k, v in create_model("seed-cnn").state_dict().items() if not k.startswith("normalize.")}
    for key, value in changes.items():
        state.pop(key, None)
        if value is not None:
            state[key] = value
    return state


def test_import_pth_lists_unexpected_and_missing_keys(tmp_path: Path) -> None:
    torch.save(_our_tensors(**{"fc3.weight": torch.zeros(10, 10)}), tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"unexpected: fc3\.weight") as info:
        import_pth(tmp_path / "extra.pth")
    assert "missing" not in str(info.value)
    renamed = _our_tensors(**{"conv1.weight": None})
    renamed["conv1.w"] = _our_tensors()["conv1.weight"]  # same shape: order and shape alone would accept it
    torch.save(renamed, tmp_path / "renamed.pth")
    with pytest.raises(CheckpointError, match=r"missing: conv1\.weight.*unexpected: conv1\.w\b"):
        import_pth(tmp_path / "renamed.pth")


def test_import_pth_matches_by_name_whatever_the_order(tmp_path: Path) -> None:
    state = _our_tensors()
    torch.save(dict(reversed(state.items())), tmp_path / "reversed.pth")
    model = import_pth(tmp_path / "reversed.pth")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_import_pth_strips_the_data_parallel_prefix_and_says_so(tmp_path: Path) -> None:
    from advmnist.models.import_pth import import_pth_with_mapping

    state = _our_tensors()
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "dp.pth")
    result = import_pth_with_mapping(tmp_path / "dp.pth")
    assert result.renamed == {k: f"module.{k}" for k in state}
    assert all(torch.equal(result.model.state_dict()[k], v) for k, v in state.items())


def test_import_pth_by_order_only_when_every_tensor_pairs_up_and_it_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from advmnist.models.import_pth import import_pth_with_mapping

    torch.save(SeedNotebookCNN().state_dict(), tmp_path / "seed.pth")
    with caplog.at_level("WARNING", logger="advmnist.models.import_pth"):
        result = import_pth_with_mapping(tmp_path / "seed.pth")
    assert result.renamed == {
        "conv1.weight": "features.0.weight",
        "conv1.bias": "features.0.bias",
        "conv2.weight": "features.3.weight",
        "conv2.bias": "features.3.bias",
        "fc1.weight": "classifier.1.weight",
        "fc1.bias": "classifier.1.bias",
        "fc2.weight": "classifier.4.weight",
        "fc2.bias": "classifier.4.bias",
    }
    assert "by order and shape" in caplog.text and "fc2.weight <- classifier.4.weight" in caplog.text
    # some names ours, the rest foreign: no guessing, every leftover listed
    state = SeedNotebookCNN().state_dict()
    state["conv1.weight"] = state.pop("features.0.weight")
    torch.save(state, tmp_path / "mixed.pth")
    with pytest.raises(CheckpointError, match=r"missing: conv1\.bias, conv2\.weight.*unexpected: features\.0\.bias"):
        import_pth(tmp_path / "mixed.pth")


def test_architecture_mismatch_lists_every_key_up_to_ten(tmp_path: Path) -> None:
    from advmnist.models.checkpoint import load_state_checked

    model = create_model("seed-cnn")
    state = {f"extra{i:02d}": torch.zeros(1) for i in range(12)}
    state["fc2.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError) as info:
        load_state_checked(model, state, "w.safetensors")
    message = str(info.value)
    assert "missing: normalize.mean, normalize.std, conv1.weight, conv1.bias, conv2.weight" in message
    assert all(f"extra{i:02d}" in message for i in range(10)) and "extra10" not in message
    assert "and 2 more" in message
    assert "fc2.weight (3, 3) where the model has (10, 1024)" in message


def test_a_missing_model_file_says_the_file_does_not_exist(tmp_path: Path) -> None:
    for path in (tmp_path / "nope.safetensors", tmp_path / "nope.json", tmp_path / "nope"):
        with pytest.raises(CheckpointError, match=r"model file .*nope\.safetensors does not exist") as info:
            load_model(path)
        assert "model card" not in str(info.value)
    save_model(create_model("linear"), tmp_path / "m")
    (tmp_path / "m.json").unlink()
    with pytest.raises(CheckpointError, match="model card not found"):
        load_model(tmp_path / "m.safetensors")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "def build():\n    return 1 / 0\n",
            "model factory 'userfactory:build' raised ZeroDivisionError: division by zero",
        ),
        ("import no_such_module_xyz\ndef build(): ...\n", "No module named 'no_such_module_xyz'"),
        ("x = 1 / 0\n", "raised ZeroDivisionError: division by zero"),
        ("def other(): ...\n", "has no attribute 'build'"),
    ],
)
def test_a_failing_model_factory_is_one_line_naming_it_with_its_cause_chained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, expected: str
) -> None:
    import sys

    from advmnist.errors import AdvmnistError
    from advmnist.models.factory import build_from_factory

    (tmp_path / "userfactory.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "userfactory", raising=False)
    with pytest.raises(AdvmnistError) as info:
        build_from_factory("userfactory:build")
    assert expected in str(info.value) and "'userfactory:build'" in str(info.value)
    assert "\n" not in str(info.value)
    if "attribute" not in expected:  # the user's code raised: its traceback stays reachable for --debug
        assert isinstance(info.value.__cause__, (ZeroDivisionError, ImportError))
