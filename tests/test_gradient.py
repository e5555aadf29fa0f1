"""The gradient engine's fast paths: channels_last weights, and a bf16 search that stops only on fp32 verdicts."""

from __future__ import annotations

import torch
from torch import nn

from advmnist.attacks import PGD, Threat, eval_mode
from advmnist.attacks.base import Oracle
from advmnist.attacks.gradient import _fooled


def _tie_in_bf16() -> nn.Module:
    """Logits (x, (1 + 2^-10) x): class 1 wins in fp32, while bf16 rounds the weights to a tie."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [1 + 2**-10, 0, 0, 0]]))
    return net.eval()


def test_a_bf16_search_stops_only_where_fp32_agrees() -> None:
    net, x, y = _tie_in_bf16(), torch.full((3, 1, 2, 2), 0.5), torch.ones(3, dtype=torch.long)
    oracle = Oracle(net, torch.bfloat16).reset(3, x.device)
    logits = oracle.logits(x)
    assert (logits.argmax(1) != y).all()  # bf16 alone would stop (and so give up on) every point
    assert not _fooled(oracle, x, y, logits).any()  # fp32 says none is fooled
    assert oracle.queries is not None and oracle.queries.tolist() == [2, 2, 2]  # the re-check is counted
    fp32 = Oracle(net).reset(3, x.device)
    assert not _fooled(fp32, x, y, fp32.logits(x)).any() and fp32.forwards == 1  # fp32 needs no re-check


def test_bf16_pgd_reports_fp32_success_and_per_point_queries() -> None:
    net, x, y = _tie_in_bf16(), torch.full((3, 1, 2, 2), 0.5), torch.ones(3, dtype=torch.long)
    result = PGD(steps=3, bf16=True)(net, x, y, Threat("linf", 0.0001))
    assert not result.success.any()
    assert result.queries is not None and (result.queries == result.queries[0]).all()


def test_eval_mode_gives_every_conv_weight_channels_last_strides() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 8, 3))  # (4, 1, 3, 3) passes as contiguous in both
    before = [(p.data_ptr(), p.stride()) for p in model.parameters()]
    with eval_mode(model):
        for p in model.parameters():
            if p.dim() == 4:
                assert p.stride() == torch.empty_like(p, memory_format=torch.channels_last).stride()
    assert [(p.data_ptr(), p.stride()) for p in model.parameters()] == before
