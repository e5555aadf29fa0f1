"""FAB: the box-constrained projection, closed-form distances on a linear model, sweeps, norm_found."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advmnist.attacks import FAB, FABT, Threat
from advmnist.attacks.fab import _solve, _solve_sorted, project_onto_hyperplane
from advmnist.data import DatasetSpec, load_mnist
from advmnist.models import create_model
from test_minnorm import Constant

DUAL = {"l2": 2.0, "linf": 1.0}  # the distance to {z : f + <w, z - x> = 0} is |f| / ||w||_dual
# FAB's best on a linear model: it lands 5% beyond the plane (eta), is pulled back by beta and the
# next step lands 0.52% beyond it; later cycles repeat that. The official code gives the same.
FAB_ON_A_PLANE = 1.0052


def _linear_points(n: int = 16) -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A linear model, points in [0.4, 0.6] labelled by it, and exact distances to its boundaries.

    The boundaries are so close (< 0.6 in L2, < 0.03 in Linf) that the box [0, 1] never binds.
    Returns (model, x, y, the distance to each class's plane (2, n, 10) in L2 and Linf, the
    runner-up class at x (n,)).
    """
    torch.manual_seed(0)
    model = create_model("linear").eval()
    x = 0.4 + 0.2 * torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    w, b = model.fc.weight.double(), model.fc.bias.double()
    logits = x.flatten(1).double() @ w.T + b  # (n, 10)
    y = logits.argmax(1)
    gap = logits.gather(1, y[:, None]) - logits  # (n, 10): f_y - f_k >= 0
    diff = w[None] - w[y][:, None]  # (n, 10, 784): w_k - w_y
    planes = torch.stack([(gap / diff.norm(p=p, dim=2)).scatter(1, y[:, None], torch.inf) for p in DUAL.values()])
    return model, x, y, planes.float(), logits.argsort(1, descending=True)[:, 1]


@pytest.mark.parametrize(("norm", "row"), [("l2", 0), ("linf", 1)])
def test_fab_finds_the_nearest_plane_of_a_linear_model(norm: str, row: int) -> None:
    model, x, y, planes, _ = _linear_points()
    d = planes[row].amin(1)  # (n,): the distance to the decision boundary
    result = FAB(steps=20, early_stop=False)(model, x, y, Threat(norm, 1.0))
    assert result.norm_found is not None and result.success.all()
    assert (result.norm_found >= d * (1 - 1e-4)).all()  # nothing is closer than the boundary
    assert torch.allclose(result.norm_found, FAB_ON_A_PLANE * d, rtol=1e-4)
    stopped = FAB(steps=20)(model, x, y, Threat(norm, 1.0))  # stops at the first adversarial
    assert stopped.success.all() and torch.allclose(stopped.norm_found, 1.05 * d, rtol=1e-4)  # type: ignore[arg-type]
    assert stopped.backwards < result.backwards


@pytest.mark.parametrize(("norm", "row"), [("l2", 0), ("linf", 1)])
def test_fab_t_finds_the_plane_of_its_target(norm: str, row: int) -> None:
    model, x, y, planes, runner_up = _linear_points()
    d = planes[row].gather(1, runner_up[:, None]).squeeze(1)  # the plane of the most likely other class
    result = FABT(steps=20, n_targets=1, early_stop=False)(model, x, y, Threat(norm, 1.0))
    assert result.norm_found is not None and result.success.all()
    assert torch.allclose(result.norm_found, FAB_ON_A_PLANE * d, rtol=1e-4)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_projection_closed_form_where_the_box_does_not_bind(norm: str) -> None:
    g = torch.Generator().manual_seed(0)
    t = 0.4 + 0.2 * torch.rand(64, 784, generator=g)
    w = torch.randn(64, 784, generator=g)
    c = 0.05 * torch.randn(64, generator=g)  # small offsets: the projection stays inside [0, 1]
    d = project_onto_hyperplane(t, w, c, norm, (0.0, 1.0))
    if norm == "l2":
        expected = -c[:, None] * w / w.square().sum(1, keepdim=True)
    else:
        expected = -c[:, None] * w.sign() / w.abs().sum(1, keepdim=True)
    assert torch.allclose(d, expected, atol=1e-7)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_projection_stays_in_the_box_and_goes_to_the_corner_when_out_of_reach(norm: str) -> None:
    g = torch.Generator().manual_seed(1)
    t = torch.rand(64, 784, generator=g)
    t[:, :200] = 0.0  # on the box's faces
    w = torch.randn(64, 784, generator=g)
    w[:, 200:260] = 0.0  # dead coordinates stay put
    c = torch.randn(64, generator=g) * torch.linspace(0.1, 500, 64)
    d = project_onto_hyperplane(t, w, c, norm, (0.0, 1.0))
    assert ((t + d) >= 0).all() and ((t + d) <= 1 + 1e-6).all() and (d[:, 200:260] == 0).all()
    s = torch.where(c < 0, -1.0, 1.0)[:, None]
    reach = (s * w).clamp_min(0) * t + (s * w).clamp_max(0) * (t - 1)  # (n, D): the most each coordinate can do
    out = c.abs() > reach.sum(1)
    corner = torch.where(s * w > 0, -t, 1 - t) * (w != 0)
    assert 0 < out.sum() < len(c)  # both cases occur
    assert torch.allclose(d[out], corner[out], atol=1e-6)
    assert torch.allclose((c + (w * d).sum(1))[~out], torch.zeros(1), atol=1e-3)


def test_newton_solver_equals_sorting_and_falls_back_to_it() -> None:
    g = torch.Generator().manual_seed(2)
    weight, kink = torch.rand(50, 784, generator=g), torch.rand(50, 784, generator=g)
    kink[:, :100] = 0.0
    c = torch.rand(50, 1, generator=g) * (weight * kink).sum(1, keepdim=True) * 1.2  # some out of reach
    assert torch.allclose(_solve(weight, kink, c), _solve_sorted(weight, kink, c), rtol=1e-5)
    # kinks spread over six decades need many Newton steps: one step, then the sorted fallback
    kink = torch.logspace(-6, 0, 784).expand(4, -1).contiguous()
    c = torch.tensor([[1.0], [10.0], [20.0], [1e3]])
    lam = _solve(torch.ones(4, 784), kink, c, newton_steps=1)
    assert torch.equal(lam, _solve_sorted(torch.ones(4, 784), kink, c)) and torch.isinf(lam[-1])


@pytest.mark.parametrize("attack", [FAB(steps=5, restarts=2), FABT(steps=5, n_targets=3)])
def test_norm_found_is_zero_if_misclassified_and_inf_if_nothing_found(attack: FAB) -> None:
    x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([9, 9, 0, 3, 9, 5])  # the model predicts 9 everywhere
    result = attack(Constant(), x, y, Threat("linf", 0.3))
    assert result.norm_found is not None
    assert result.norm_found.tolist() == [float("inf"), float("inf"), 0.0, 0.0, float("inf"), 0.0]
    assert torch.equal(result.x_adv, x) and result.success.tolist() == [False, False, True, True, False, True]


@pytest.fixture(scope="module")
def mlp(synthetic) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """A small MLP fitted to the synthetic digits, and 24 test points."""
    spec = DatasetSpec.from_checksums(synthetic[1])
    train, test = load_mnist("train", synthetic[0], spec=spec), load_mnist("test", synthetic[0], spec=spec)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(40):
        opt.zero_grad()
        F.cross_entropy(model(train.x), train.y).backward()
        opt.step()
    return model.eval(), test.x[:24], test.y[:24]


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_t_sweep_breaks_what_separate_runs_break(mlp, norm: str) -> None:  # noqa: ANN001
    model, x, y = mlp
    attack = FABT(steps=20, n_targets=3)
    epsilons = [0.0, 0.14, 0.16, 0.18] if norm == "linf" else [0.0, 2.4, 2.6, 2.9]  # smallest norms: 0.13, 2.2
    swept = attack.sweep(model, x, y, Threat(norm, 1.0), epsilons)
    assert attack.shares_sweep() and not FAB(restarts=2).shares_sweep()  # random restarts depend on eps
    separate = [attack(model, x, y, Threat(norm, eps)) for eps in epsilons]
    found = swept[0].norm_found
    assert found is not None
    for eps, r, alone in zip(epsilons, swept, separate, strict=True):
        assert torch.equal(r.success, alone.success), eps
        assert r.success[found <= eps].all() and r.backwards == swept[-1].backwards  # one search for all
    assert swept[0].backwards < sum(r.backwards for r in separate[1:])
    assert 0 < swept[1].success.float().mean() < swept[-1].success.float().mean() < 1
