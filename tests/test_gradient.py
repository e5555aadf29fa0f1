"""The gradient engine's fast paths: channels_last weights, and a bf16 search that stops only on fp32 verdicts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advmnist.attacks import PGD, Oracle, Threat, create_attack, eval_mode

pytestmark = pytest.mark.usefixtures("bf16_on")  # these test the bf16 search itself, wherever it runs


def _tie_in_bf16() -> nn.Module:
    """Logits (x, (1 + 2^-10) x, 0, 0): class 1 wins in fp32, while bf16 rounds the weights to a tie."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 4, bias=False))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].weight[:2, 0] = torch.tensor([1.0, 1 + 2**-10])
    return net.eval()


def test_a_bf16_search_stops_only_where_fp32_agrees() -> None:
    net, x, y = _tie_in_bf16(), torch.full((3, 1, 2, 2), 0.5), torch.ones(3, dtype=torch.long)
    oracle = Oracle(net, torch.bfloat16).reset(3, x.device)
    logits = oracle.logits(x)
    assert (logits.argmax(1) != y).all()  # bf16 alone would stop (and so give up on) every point
    assert not oracle.fooled(x, y, logits).any()  # fp32 says none is fooled
    assert oracle.queries is not None and oracle.queries.tolist() == [2, 2, 2]  # the re-check is counted
    fp32 = Oracle(net).reset(3, x.device)
    assert not fp32.fooled(x, y, fp32.logits(x)).any() and fp32.forwards == 1  # fp32 needs no re-check


def test_bf16_pgd_reports_fp32_success_and_per_point_queries() -> None:
    net, x, y = _tie_in_bf16(), torch.full((3, 1, 2, 2), 0.5), torch.ones(3, dtype=torch.long)
    result = PGD(steps=3, bf16=True)(net, x, y, Threat("linf", 0.0001))
    assert not result.success.any()
    assert result.queries is not None and (result.queries == result.queries[0]).all()


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("pgd", {"steps": 5}),
        ("apgd-ce", {"steps": 5}),
        ("apgd-t", {"steps": 5}),
        ("fab-t", {"steps": 5}),
        ("square", {"queries": 20}),
        ("deepfool", {"steps": 5}),
        ("cw-l2", {"binary_search_steps": 1, "steps": 5}),
        ("autoattack", {}),
    ],
)
def test_no_attack_gives_up_on_a_point_that_only_bf16_calls_fooled(name: str, settings: dict[str, object]) -> None:
    """At a bf16 tie every point looks fooled from the first pass; an attack that trusted bf16 would stop there."""
    net, x, y = _tie_in_bf16(), torch.full((3, 1, 2, 2), 0.5), torch.ones(3, dtype=torch.long)
    threat = Threat("l2" if name == "cw-l2" else "linf", 1e-4)
    fp32 = create_attack(name, **settings)(net, x, y, threat)
    bf16 = create_attack(name, bf16=True, **settings)(net, x, y, threat)
    assert not bf16.success.any() and not fp32.success.any()
    assert bf16.queries is not None and fp32.queries is not None
    assert (bf16.queries >= fp32.queries).all()  # the same search, plus the fp32 re-checks


def test_eval_mode_gives_every_conv_weight_channels_last_strides() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 8, 3))  # (4, 1, 3, 3) passes as contiguous in both
    before = [(p.data_ptr(), p.stride()) for p in model.parameters()]
    with eval_mode(model):
        for p in model.parameters():
            if p.dim() == 4:
                assert p.stride() == torch.empty_like(p, memory_format=torch.channels_last).stride()
    assert [(p.data_ptr(), p.stride()) for p in model.parameters()] == before


def test_a_bf16_oracle_casts_conv_and_linear_weights_once_and_leaves_the_model_alone() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.BatchNorm2d(1), nn.Conv2d(1, 4, 3), nn.GroupNorm(2, 4), nn.ReLU(), nn.Flatten(), nn.Linear(16, 3)
    )
    net.eval()
    x = torch.rand(5, 1, 4, 4)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    oracle = Oracle(net, torch.bfloat16).reset(5, x.device)
    close = oracle.logits(x)
    assert torch.allclose(close, net(x), atol=0.05)  # bf16 answers, fp32 normalization layers
    assert oracle._tally.cast is not None and {v.dtype for v in oracle._tally.cast.values()} == {torch.bfloat16}
    assert set(oracle._tally.cast) == {"1.weight", "1.bias", "5.weight", "5.bias"}
    assert all(torch.equal(v, before[k]) and v.dtype == before[k].dtype for k, v in net.state_dict().items())
