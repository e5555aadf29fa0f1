"""bf16 where it pays: native on the device, or forced with ADVMNIST_BF16; fp32 (with one log line) elsewhere."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from advmnist import precision
from advmnist.attacks import PGD, Threat
from advmnist.errors import UsageError
from advmnist.models import create_model, save_model
from conftest import run_cli


@pytest.fixture
def cpu_flags(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Pretend the CPU reports the given /proc/cpuinfo flags."""

    def set_flags(*flags: str) -> None:
        monkeypatch.setattr(precision, "_cpu_flags", lambda: frozenset(flags))

    return set_flags


@pytest.mark.parametrize(
    ("flags", "native"), [(("avx2",), False), (("avx2", "avx512_bf16"), True), (("amx_bf16",), True)]
)
def test_native_bf16_follows_the_cpu_flags(cpu_flags, flags: tuple[str, ...], native: bool) -> None:  # noqa: ANN001
    cpu_flags(*flags)
    assert precision.native_bf16("cpu") is native
    assert precision.use_bf16(True, "cpu") is native  # auto: bf16 exactly where it is native
    assert precision.use_bf16(False, "cpu") is False  # never asked for, never used


def test_the_switch_overrides_the_cpu(cpu_flags, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    cpu_flags("avx2")
    monkeypatch.setenv("ADVMNIST_BF16", "on")
    assert precision.use_bf16(True, "cpu") and not precision.use_bf16(False, "cpu")
    cpu_flags("avx512_bf16")
    monkeypatch.setenv("ADVMNIST_BF16", "off")
    assert not precision.use_bf16(True, "cpu")
    monkeypatch.setenv("ADVMNIST_BF16", "fast")
    with pytest.raises(UsageError, match="ADVMNIST_BF16 must be one of auto, on, off, got 'fast'"):
        precision.use_bf16(True, "cpu")


def test_falling_back_to_fp32_says_so_once(cpu_flags, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    cpu_flags("avx2")
    precision._say_fp32.cache_clear()
    with caplog.at_level(logging.WARNING, logger="advmnist.precision"):
        precision.use_bf16(True, "cpu")
        precision.use_bf16(True, "cpu")
    assert [r.getMessage() for r in caplog.records if "no native bf16" in r.getMessage()] != []
    assert len(caplog.records) == 1


def test_an_attack_asking_for_bf16_searches_in_fp32_where_bf16_is_emulated(cpu_flags, monkeypatch) -> None:  # noqa: ANN001
    """Same points, same seed: on a CPU without native bf16 `bf16=True` gives exactly the fp32 search."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 10))
    x, y = torch.rand(8, 1, 4, 4), torch.randint(0, 10, (8,))
    threat = Threat("linf", 0.1)
    fp32 = PGD(steps=5)(model, x, y, threat, seed=1).x_adv
    cpu_flags("avx2")
    assert torch.equal(PGD(steps=5, bf16=True)(model, x, y, threat, seed=1).x_adv, fp32)
    assert PGD(bf16=True)._oracle(model).autocast is None
    monkeypatch.setenv("ADVMNIST_BF16", "on")
    assert PGD(bf16=True)._oracle(model).autocast is torch.bfloat16  # really bf16 now


def test_the_manifest_records_the_precision_context(cpu_flags) -> None:  # noqa: ANN001
    cpu_flags("avx2")
    assert precision.describe("cpu") == {"native": False, "mode": "auto"}
    assert precision.describe("not-a-device")["native"] is False


def test_a_bad_switch_is_one_line_and_exit_2_before_anything_is_written(synthetic, tmp_path) -> None:  # noqa: ANN001
    data, _ = synthetic
    save_model(create_model("linear"), tmp_path / "lin")
    r = run_cli(
        "eval", "--model", str(tmp_path / "lin.safetensors"), "--data-dir", str(data), "--attack", "fgsm",
        "--eps", "0.1", "--n", "8", "--bf16", "--out", str(tmp_path / "ev"), env={"ADVMNIST_BF16": "fast"},
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    expected = "advmnist eval: error: ADVMNIST_BF16 must be one of auto, on, off, got 'fast'"
    assert r.stderr.strip().splitlines() == [expected]
    assert not (tmp_path / "ev").exists()
