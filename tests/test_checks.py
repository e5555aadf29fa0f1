"""The sanity checks flag what they should: masked gradients, probabilities, randomness, rises."""

from __future__ import annotations

import torch
from torch import nn

from advmnist.evaluation import evaluate
from advmnist.evaluation.checks import post_checks, pre_checks


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))


class Quantized(nn.Module):
    """Input quantization to 2 levels: zero gradient almost everywhere (classic gradient masking)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x))


class Noisy(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x + 0.1 * torch.randn_like(x))


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)


def _by_name(checks: list) -> dict:  # noqa: ANN001
    return {c.name: c.passed for c in checks}


def test_a_plain_model_passes_the_pre_checks() -> None:
    assert all(_by_name(pre_checks(_model(), *_batch())).values())


def test_masked_gradients_are_flagged_before_and_after() -> None:
    model, (x, y) = Quantized(_model()), _batch()
    before = _by_name(pre_checks(model, x, y))
    assert before["input gradients informative"] is False
    after = _by_name(post_checks(model, x, y, "linf", [0.1, 0.3], [0.5, 0.4]))
    assert after["an unbounded budget breaks every point"] is False


def test_probabilities_and_randomness_are_flagged() -> None:
    x, y = _batch()
    probs = _by_name(pre_checks(nn.Sequential(_model(), nn.Softmax(dim=1)), x, y))
    assert probs["outputs are logits"] is False
    assert _by_name(pre_checks(Noisy(_model()), x, y))["deterministic in eval mode"] is False


def test_rising_accuracy_is_flagged() -> None:
    x, y = _batch()
    checks = _by_name(post_checks(_model(), x, y, "linf", [0.3, 0.1, 0.2], [0.2, 0.5, 0.6]))
    assert checks["robust accuracy does not rise with eps"] is False
    assert checks["an unbounded budget breaks every point"] is True


def test_evaluate_records_the_checks() -> None:
    x, y = _batch()
    result = evaluate(Quantized(_model()), x, y, attack="fgsm", epsilons=[0.1, 0.3])
    assert "input gradients informative" in {c.name for c in result.flagged}
    assert all({"name", "passed", "measured", "why"} == set(c.to_json()) for c in result.checks)
