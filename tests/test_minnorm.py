"""Minimum-norm attacks (CW-L2, DeepFool): closed-form distances on a linear model, sweeps, references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advmnist.attacks import CWL2, FGSM, Cascade, DeepFool, Threat
from advmnist.data import DatasetSpec, load_mnist
from advmnist.models import create_model
from conftest import require

DUAL = {"l2": 2.0, "linf": 1.0}  # the distance to {z : <w, z> = c} is |c - <w, x>| / ||w||_dual


def _linear_points(n: int = 24) -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A linear model, points in [0.4, 0.6] labelled by it, and their exact distances to the boundary.

    The boundaries are so close (< 0.5 in L2, < 0.02 in Linf) that the box [0, 1] never binds.
    Returns (model, x, y, distances (2, n): row 0 in L2, row 1 in Linf).
    """
    torch.manual_seed(0)
    model = create_model("linear").eval()
    x = 0.4 + 0.2 * torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    w, b = model.fc.weight.detach().double(), model.fc.bias.detach().double()
    logits = x.flatten(1).double() @ w.T + b  # (n, 10)
    y = logits.argmax(1)
    gap = logits.gather(1, y[:, None]) - logits  # (n, 10): f_y - f_k >= 0
    diff = w[None] - w[y][:, None]  # (n, 10, 784): w_k - w_y
    distances = []
    for p in DUAL.values():
        d = gap / diff.norm(p=p, dim=2)  # (n, 10); nan where k == y
        distances.append(d.scatter(1, y[:, None], float("inf")).amin(1))
    return model, x, y, torch.stack(distances).float()


@pytest.mark.parametrize(("norm", "row"), [("l2", 0), ("linf", 1)])
def test_deepfool_finds_the_nearest_hyperplane_of_a_linear_model(norm: str, row: int) -> None:
    model, x, y, exact = _linear_points()
    d = exact[row]
    result = DeepFool()(model, x, y, Threat(norm, 1.0))
    assert result.norm_found is not None and result.success.all()
    # one step onto the plane plus the authors' 1e-4, then the overshoot of 2%
    assert (result.norm_found >= d * (1 - 1e-4)).all()
    assert torch.allclose(result.norm_found, 1.02 * (d + 1e-4), rtol=1e-3)
    assert torch.allclose(result.distance, result.norm_found)
    assert (result.x_adv - x).abs().max() < 0.4  # the box did not bind


def test_cw_l2_is_close_to_the_exact_distance_and_never_below_it() -> None:
    model, x, y, exact = _linear_points()
    d = exact[0]
    result = CWL2()(model, x, y, Threat("l2", 10.0))
    assert result.norm_found is not None and result.success.all()
    assert (result.norm_found >= d * (1 - 1e-4)).all()  # no point is closer than the boundary
    ratio = result.norm_found / d
    assert ratio.max() <= 1.1 and ratio.median() <= 1.05, ratio


def test_in_a_cascade_the_point_is_judged_after_projection() -> None:
    model, x, y, exact = _linear_points()
    eps = float(exact[0].median())  # DeepFool breaks about half the points within eps
    result = Cascade(attacks=(FGSM(), DeepFool()))(model, x, y, Threat("l2", eps))
    assert result.broken_by is not None and 0 < result.success.sum() < len(x)
    assert [b is not None for b in result.broken_by] == result.success.tolist()
    with pytest.raises(ValueError, match="cw-l2 supports only l2 threats"):
        Cascade(attacks=(CWL2(),))(model, x, y, Threat("linf", 0.1))


class Constant(nn.Module):
    """Logits that do not depend on x: nothing fools it, every gradient is zero."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x.flatten(1)[:, :10] + torch.arange(10.0)  # class 9 always wins


@pytest.mark.parametrize("attack", [CWL2(binary_search_steps=2, steps=10), DeepFool(steps=5)])
def test_norm_found_is_zero_if_misclassified_and_inf_if_nothing_found(attack: CWL2 | DeepFool) -> None:
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([9, 9, 0, 3, 9, 5])  # the model predicts 9 everywhere
    result = attack(Constant(), x, y, Threat("l2", 2.0))
    assert result.norm_found is not None
    assert result.norm_found.tolist() == [float("inf"), float("inf"), 0.0, 0.0, float("inf"), 0.0]
    assert torch.equal(result.x_adv, x)  # unbroken points come back unchanged
    assert result.success.tolist() == [False, False, True, True, False, True]


def _mlp(spec: DatasetSpec, folder: object) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small MLP fitted to the synthetic digits, and 32 test points it classifies right."""
    train, test = load_mnist("train", folder, spec=spec), load_mnist("test", folder, spec=spec)  # type: ignore[arg-type]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(40):
        opt.zero_grad()
        F.cross_entropy(model(train.x), train.y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        right = (model(test.x).argmax(1) == test.y).nonzero().squeeze(1)[:32]
    return model, test.x[right], test.y[right]


@pytest.fixture(scope="module")
def mlp(synthetic) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:  # noqa: ANN001
    return _mlp(DatasetSpec.from_checksums(synthetic[1]), synthetic[0])


@pytest.mark.parametrize(("attack", "norm"), [(CWL2(), "l2"), (DeepFool(), "l2"), (DeepFool(), "linf")])
def test_a_sweep_searches_once_and_breaks_exactly_the_points_within_eps(mlp, attack, norm: str) -> None:  # noqa: ANN001
    model, x, y = mlp
    single = attack(model, x, y, Threat(norm, 1.0))
    found = single.norm_found
    assert found is not None and torch.isfinite(found).all()
    epsilons = sorted({0.0, *found.quantile(torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9])).tolist(), float(found.max())})
    swept = attack.sweep(model, x, y, Threat(norm, 1.0), epsilons)
    broken = torch.stack([r.success for r in swept])  # (eps, B)
    for r in swept:
        assert r.norm_found is not None and torch.equal(r.norm_found, found)
        assert r.backwards == single.backwards  # one search for every budget
        assert r.success[found <= r.threat.eps].all()  # within eps: broken at eps
    assert (broken[1:] >= broken[:-1]).all(), "broken-at-eps must grow with eps"
    assert broken[-1].all() and not broken[0].any()


def test_cw_l2_and_deepfool_are_at_least_as_good_as_torchattacks(mlp) -> None:  # noqa: ANN001
    """torchattacks' DeepFool is L2 only; its CW has no search over c, so it gets the best of three."""
    torchattacks = require("torchattacks", "make test installs it (--no-deps)")
    model, x, y = mlp

    def theirs(x_adv: torch.Tensor) -> torch.Tensor:  # their norm where they fooled, else inf
        with torch.no_grad():
            fooled = model(x_adv).argmax(1) != y
        return torch.where(fooled, (x_adv - x).flatten(1).norm(dim=1), torch.tensor(float("inf")))

    cw = torch.stack([theirs(torchattacks.CW(model, c=c, steps=100, lr=0.01)(x, y)) for c in (1, 10, 100)])
    deepfool = theirs(torchattacks.DeepFool(model, steps=50, overshoot=0.02)(x, y))
    for ours, other in [(CWL2(), cw.amin(0)), (DeepFool(), deepfool)]:
        mine = ours(model, x, y, Threat("l2", 10.0)).norm_found
        assert mine is not None and torch.isfinite(mine).sum() >= torch.isfinite(other).sum()
        both = torch.isfinite(mine) & torch.isfinite(other)
        assert both.sum() >= len(x) // 2
        assert mine[both].median() <= 1.03 * other[both].median(), (ours, mine[both].median(), other[both].median())
