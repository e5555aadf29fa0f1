"""Cross-checks against the reference implementations (dev-only dependencies).

torchattacks 3.5.1 for FGSM and PGD, and the official AutoAttack code (`pyautoattack` 0.2.0) for
APGD-CE, APGD-T, FAB-T, Square and AutoAttack, on a small CNN made partly robust by FGSM training on
synthetic digits.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advmnist.attacks import APGDCE, APGDT, FABT, FGSM, PGD, Cascade, Square, Threat
from advmnist.attacks.fab import project_onto_hyperplane
from advmnist.data import DatasetSpec, load_mnist
from advmnist.precision import native_bf16
from conftest import require

torchattacks = require("torchattacks", "make test installs it (--no-deps)")
autopgd = require("pyautoattack.autopgd_base", "make test installs it (--no-deps)")


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 5, padding=2)
        self.fc = nn.Linear(8 * 14 * 14, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.max_pool2d(torch.relu(self.conv(x)), 2).flatten(1))  # (B, 10)


@pytest.fixture(scope="module")
def data(synthetic) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # noqa: ANN001
    spec = DatasetSpec.from_checksums(synthetic[1])
    train, test = load_mnist("train", synthetic[0], spec=spec), load_mnist("test", synthetic[0], spec=spec)
    return train.x, train.y, test.x, test.y


@pytest.fixture(scope="module")
def model(data) -> nn.Module:  # noqa: ANN001
    """Trained on 50% clean + 50% FGSM(0.1) batches: robust at some points, not at others."""
    x, y, _, _ = data
    torch.manual_seed(0)
    net = SmallCNN()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for _ in range(8):
        for i in torch.randperm(len(y)).split(64):
            x_adv = FGSM().generate(net, x[i], y[i], Threat("linf", 0.1))
            opt.zero_grad()
            F.cross_entropy(net(torch.cat([x[i], x_adv])), torch.cat([y[i], y[i]])).backward()
            opt.step()
    return net.eval()


def robust(net: nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return (net(x).argmax(1) == y) & (net(x_adv).argmax(1) == y)


def test_the_model_is_partly_robust(model, data) -> None:  # noqa: ANN001
    _, _, x, y = data
    rate = robust(model, x, y, APGDCE()(model, x, y, Threat("linf", 0.2)).x_adv).float().mean()
    assert 0.1 < rate < 0.9, rate


@pytest.mark.parametrize("eps", [0.05, 0.2])
def test_fgsm_equals_torchattacks(model, data, eps: float) -> None:  # noqa: ANN001
    _, _, x, y = data
    theirs = torchattacks.FGSM(model, eps=eps)(x, y)
    ours = FGSM()(model, x, y, Threat("linf", eps)).x_adv
    differ = (ours != theirs).float().mean().item()
    # Our gradient comes from channels_last kernels: a gradient entry within rounding of 0 may flip
    # its sign. Everything else is bit-identical.
    assert differ < 1e-3, differ
    assert (robust(model, x, y, ours) == robust(model, x, y, theirs)).float().mean() >= 0.995


def test_pgd_agrees_with_torchattacks(model, data) -> None:  # noqa: ANN001
    _, _, x, y = data
    eps, steps = 0.3, 20
    theirs = torchattacks.PGD(model, eps=eps, alpha=eps / 8, steps=steps, random_start=False)(x, y)
    ours = PGD(steps=steps, rel_step_size=1 / 8, random_start=False)(model, x, y, Threat("linf", eps)).x_adv
    r_ours, r_theirs = robust(model, x, y, ours), robust(model, x, y, theirs)
    assert (r_ours == r_theirs).float().mean() >= 0.995
    assert r_ours.float().mean() <= r_theirs.float().mean() + 0.002  # never weaker beyond 0.2 pp


@pytest.mark.parametrize("eps", [0.2, 0.3])
def test_apgd_matches_the_official_code(model, data, eps: float) -> None:  # noqa: ANN001
    _, _, x, y = data
    ce = autopgd.APGDAttack(model, n_iter=100, norm="Linf", eps=eps, seed=0, loss="ce", device="cpu")
    targeted = autopgd.APGDAttack_targeted(model, n_iter=100, norm="Linf", eps=eps, seed=0, device="cpu")
    for ours_attack, official in ((APGDCE(), ce), (APGDT(), targeted)):
        theirs = robust(model, x, y, official.perturb(x, y)).float().mean().item()
        ours = robust(model, x, y, ours_attack(model, x, y, Threat("linf", eps)).x_adv).float().mean().item()
        assert ours <= theirs + 0.01, (ours_attack.name, ours, theirs)  # never weaker by more than 1 pp
        assert abs(ours - theirs) <= 0.03, (ours_attack.name, ours, theirs)


def test_square_linf_is_at_least_as_strong_as_the_official_code(model, data) -> None:  # noqa: ANN001
    square = require("pyautoattack.square", "make test installs it (--no-deps)")
    _, _, x, y = data
    eps, queries = 0.3, 1000
    official = square.SquareAttack(model, p_init=0.8, n_queries=queries, eps=eps, norm="Linf", seed=0, device="cpu")
    theirs = robust(model, x, y, official.perturb(x, y)).float().mean().item()
    ours = robust(model, x, y, Square(queries=queries)(model, x, y, Threat("linf", eps)).x_adv).float().mean().item()
    assert ours <= theirs + 0.01, (ours, theirs)


def test_cascade_is_the_per_sample_worst_case(model, data) -> None:  # noqa: ANN001
    _, _, x, y = data
    threat = Threat("linf", 0.25)
    first = FGSM()(model, x, y, threat).success
    both = Cascade(attacks=(FGSM(), APGDCE()))(model, x, y, threat).success
    assert both[first].all()  # what the first attack broke stays broken
    assert both.float().mean() > first.float().mean()  # and the second adds points of its own


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_projection_equals_the_official_one(norm: str) -> None:
    projections = require("pyautoattack.fab_projections", "make test installs it (--no-deps)")
    reference = projections.projection_linf if norm == "linf" else projections.projection_l2
    g = torch.Generator().manual_seed(0)
    t = torch.rand(200, 784, generator=g)
    t[:, :150], t[:, 150:200] = 0.0, 1.0  # points on the faces of the box
    w = torch.randn(200, 784, generator=g)
    w[:, 300:350] = 0.0
    offset = torch.randn(200, generator=g) * torch.logspace(-3, 2, 200) * w.abs().sum(1) / 10  # near .. out of reach
    b = (w * t).sum(1) + offset  # the official hyperplane is <w, z> = b
    theirs = reference(t.clone(), w.clone(), b.clone())
    ours = project_onto_hyperplane(t, w, -offset, norm, (0.0, 1.0))
    assert (ours - theirs).abs().amax(1).median() < 1e-6
    assert torch.allclose(ours, theirs, atol=1e-3)  # where they differ, ours is closer to the float64 answer


@pytest.mark.parametrize("eps", [0.2, 0.3])
def test_fab_t_matches_the_official_code(model, data, eps: float) -> None:  # noqa: ANN001
    fab = require("pyautoattack.fab_pt", "make test installs it (--no-deps)")
    _, _, x, y = data
    x, y = x[:100], y[:100]  # the official FAB-T needs ~10 s per 100 points here
    official = fab.FABAttack_PT(
        model, norm="Linf", n_restarts=1, n_iter=100, eps=eps, seed=0, device="cpu", targeted=True, n_target_classes=9
    )  # AutoAttack's FAB-T: targeted, 9 target classes, 1 restart
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)  # else the official code also computes (and leaves) weight gradients
    try:
        theirs = robust(model, x, y, official.perturb(x, y)).float().mean().item()
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    result = FABT()(model, x, y, Threat("linf", eps))
    ours = robust(model, x, y, result.x_adv).float().mean().item()
    assert result.norm_found is not None
    # The official criterion (smallest adversarial within eps) must agree to 1 pp; the robust accuracy
    # may be lower still, since a larger adversarial projected onto the eps-ball sometimes fools too.
    within = (result.norm_found > eps).float().mean().item()  # 0 for points misclassified clean
    assert abs(within - theirs) <= 0.01, (within, theirs)
    assert ours <= theirs + 0.01, (ours, theirs)  # never weaker by more than 1 pp


AA_EPS = 0.2  # the model is partly robust here (test_the_model_is_partly_robust)


@pytest.fixture(scope="module")
def official_aa(model, data) -> float:  # noqa: ANN001
    """The official AutoAttack's robust accuracy (computed once: ~45 s here)."""
    from advmnist.bench.autoattack import official_autoattack

    _, _, x, y = data
    return robust(model, x, y, official_autoattack(model, x, y, AA_EPS, seed=0)).float().mean().item()


_EMULATED_BF16 = (
    "bf16 is emulated on this CPU, so a bf16 request runs exactly the fp32 search (tests/test_precision.py "
    "checks that), which the fp32 case checks here; the bf16 search is checked where bf16 is native"
)


@pytest.mark.parametrize(
    "bf16",
    [False, pytest.param(True, marks=pytest.mark.skipif(not native_bf16(), reason=_EMULATED_BF16))],
    ids=["fp32", "bf16"],
)
def test_autoattack_matches_the_official_code(model, data, official_aa: float, bf16: bool) -> None:  # noqa: ANN001
    from advmnist.attacks import AutoAttack

    _, _, x, y = data
    result = AutoAttack(bf16=bf16)(model, x, y, Threat("linf", AA_EPS))
    ours = robust(model, x, y, result.x_adv).float().mean().item()
    assert ours <= official_aa + 0.01, (ours, official_aa)  # never weaker by more than 1 pp
    assert abs(ours - official_aa) <= 0.01, (ours, official_aa)
