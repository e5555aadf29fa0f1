"""The attack contract (shared by every registered attack) and closed-form oracles."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from advmnist.attacks import ATTACKS, FGSM, NORMS, PGD, Square, Threat, create_attack, eval_mode, list_attacks
from advmnist.models import create_model

# Small budgets keep the property tests quick; every registered attack must appear here.
FAST = {
    "fgsm": {},
    "bim": {"steps": 3},
    "pgd": {"steps": 5},
    "mifgsm": {"steps": 3},
    "apgd-ce": {"steps": 5},
    "apgd-dlr": {"steps": 5},
    "apgd-t": {"steps": 4, "n_targets": 2},
    "square": {"queries": 30},
    "cascade": {"attacks": ("fgsm", "pgd")},
    "cw-l2": {"binary_search_steps": 2, "steps": 5},
    "deepfool": {"steps": 3},
    "fab": {"steps": 4, "restarts": 2},
    "fab-t": {"steps": 4, "n_targets": 2},
    "autoattack": {"version": "custom", "attacks": ("fgsm", "pgd")},
}


def _norm(name: str, norm: str = "linf") -> str:
    """`norm` if the attack supports it, else the first norm it does (cw-l2 is L2 only)."""
    norms = ATTACKS[name].norms
    return norm if norm in norms else norms[0]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 10))


def _batch(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_every_attack_in_the_registry_has_a_contract_setting() -> None:
    assert set(list_attacks()) == set(FAST)


@pytest.mark.parametrize("name", sorted(FAST))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(norm=st.sampled_from(["linf", "l2"]), eps=st.floats(0.0, 1.0), seed=st.integers(0, 2**31 - 1))
def test_contract_ball_bounds_determinism(name: str, norm: str, eps: float, seed: int) -> None:
    model = _model()
    x, y = _batch(8, seed % 1000)
    norm = _norm(name, norm)
    eps = eps if norm == "linf" else eps * 5
    attack = create_attack(name, **FAST[name])
    result = attack(model, x, y, Threat(norm, eps), seed=seed)
    assert result.x_adv.shape == x.shape
    assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
    assert (result.distance <= eps + 1e-6).all()
    assert torch.equal(result.success, result.pred != y)
    with torch.no_grad():
        assert torch.equal(result.pred, model.eval()(result.x_adv).argmax(1))
    again = attack(model, x, y, Threat(norm, eps), seed=seed)
    assert torch.equal(again.x_adv, result.x_adv)


@pytest.mark.parametrize(("name", "norm"), [(name, norm) for name in sorted(FAST) for norm in ATTACKS[name].norms])
def test_eps_zero_returns_x(name: str, norm: str) -> None:
    x, y = _batch()
    result = create_attack(name, **FAST[name])(_model(), x, y, Threat(norm, 0.0))
    assert torch.equal(result.x_adv, x)


@pytest.mark.parametrize("name", sorted(FAST))
def test_modes_and_parameter_grads_untouched(name: str) -> None:
    model = _model()
    model.train()
    model[3].eval()  # a mixed state must come back exactly
    grads = []
    for i, p in enumerate(model.parameters()):
        p.grad = torch.full_like(p, float(i)) if i % 2 == 0 else None
        grads.append(None if p.grad is None else p.grad.clone())
    x, y = _batch()
    create_attack(name, **FAST[name])(model, x, y, Threat(_norm(name), 0.1))
    assert [m.training for m in model.modules()] == [True, True, True, True, False, True]
    assert all(p.requires_grad for p in model.parameters())
    for p, before in zip(model.parameters(), grads, strict=True):
        assert (p.grad is None) if before is None else torch.equal(p.grad, before)


class Exploding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("boom")
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("name", sorted(FAST))
def test_mode_restored_when_the_attack_raises(name: str) -> None:
    model = Exploding().train()
    x, y = _batch()
    with pytest.raises(RuntimeError, match="boom"):
        create_attack(name, **FAST[name])(model, x, y, Threat(_norm(name), 0.1))
    assert model.training and model.fc.weight.requires_grad and model.fc.weight.grad is None


def test_an_unsupported_norm_is_refused() -> None:
    model, (x, y) = _model(), _batch()
    with pytest.raises(ValueError, match="cw-l2 supports only l2 threats"):
        create_attack("cw-l2")(model, x, y, Threat("linf", 0.1))


def test_eval_mode_context_restores_on_error() -> None:
    model = _model().train()
    with pytest.raises(KeyError), eval_mode(model):
        assert not model.training and not next(model.parameters()).requires_grad
        raise KeyError
    assert model.training and next(model.parameters()).requires_grad


def test_fgsm_matches_the_closed_form_on_a_linear_model() -> None:
    """For logits = W x + b, d CE / dx = W^T (softmax - onehot): FGSM is x + eps * sign of that."""
    torch.manual_seed(3)
    model = create_model("linear")
    x, y = _batch(32)
    eps = 0.1
    with torch.no_grad():
        p = F.softmax(model(x), dim=1)
        grad = (p - F.one_hot(y, 10).float()) @ model.fc.weight  # (B, 784)
        expected = (x.flatten(1) + eps * grad.sign()).clamp(0, 1).view_as(x)
    result = FGSM()(model, x, y, Threat("linf", eps))
    assert torch.allclose(result.x_adv, expected, atol=1e-7)
    l2 = FGSM()(model, x, y, Threat("l2", 2.0))
    unit = grad / grad.norm(dim=1, keepdim=True)
    assert torch.allclose(l2.x_adv, (x.flatten(1) + 2.0 * unit).clamp(0, 1).view_as(x), atol=1e-6)


def test_fgsm_sweep_equals_separate_calls_and_shares_one_gradient() -> None:
    model, (x, y) = _model(), _batch()
    epsilons = [0.0, 2 / 255, 0.1, 0.3]
    swept = FGSM().sweep(model, x, y, Threat("linf", 0.3), epsilons)
    for eps, r in zip(epsilons, swept, strict=True):
        assert torch.equal(r.x_adv, FGSM()(model, x, y, Threat("linf", eps)).x_adv)
    assert swept[-1].backwards == 1


def test_pgd_is_at_least_as_strong_as_fgsm_on_a_trained_model() -> None:
    torch.manual_seed(0)
    model = create_model("linear")
    x, y = _batch(64)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(50):  # fit the random labels a bit so there is something to break
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    threat = Threat("linf", 0.1)  # a budget at which FGSM breaks some of the correct points, not all
    clean = model(x).argmax(1) == y
    fgsm = FGSM()(model, x, y, threat).success & clean
    pgd = PGD()(model, x, y, threat).success & clean
    assert 0 < int(fgsm.sum()) < int(clean.sum())  # FGSM breaks some correct points, not all: a real contest
    assert bool((pgd | ~fgsm).all())  # PGD breaks every point FGSM breaks (a linear model: same direction)
    assert int(pgd.sum()) > int(fgsm.sum())  # and more


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"norm": "l1"}, "unknown norm"),
        ({"eps": -0.1}, "eps must be a finite number >= 0"),
        ({"eps": float("nan")}, "eps must be a finite number"),
        ({"eps": 1.5}, r"Linf eps must be in \[0, 1\]"),
        ({"bounds": (1.0, 0.0)}, "low < high"),
    ],
)
def test_threat_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Threat(**kwargs)


def test_input_validation() -> None:
    model, (x, y) = _model(), _batch()
    with pytest.raises(ValueError, match="x must lie in the bounds"):
        FGSM()(model, x * 2, y, Threat())
    with pytest.raises(ValueError, match="y must be int64"):
        FGSM()(model, x, y.float(), Threat())
    with pytest.raises(TypeError, match="threat must be a Threat"):
        FGSM()(model, x, y, 0.3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown attack 'cw'"):
        create_attack("cw")
    with pytest.raises(ValueError, match="steps and restarts must be >= 1"):
        PGD(steps=0)


def test_autoattack_versions() -> None:
    from advmnist.attacks import AutoAttack

    assert [a.name for a in AutoAttack().members()] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    standard = {a.name: a for a in AutoAttack().members()}
    assert standard["apgd-ce"].steps == 100 and standard["apgd-t"].n_targets == 9
    assert standard["square"].queries == 5000
    custom = AutoAttack(version="custom", attacks=(PGD(), Square()))
    assert [a.name for a in custom.members()] == ["pgd", "square"]
    with pytest.raises(ValueError, match="unknown AutoAttack version"):
        AutoAttack(version="fast")
    with pytest.raises(ValueError, match="use version='custom'"):
        AutoAttack(attacks=(PGD(),))
    with pytest.raises(ValueError, match="non-empty list of other attacks"):
        AutoAttack(version="custom", attacks=(AutoAttack(),))
    with pytest.raises(TypeError, match="holds Attack objects, got the name 'pgd'"):
        AutoAttack(version="custom", attacks=("pgd",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty list of other attacks"):
        create_attack("cascade", attacks=("fgsm", "autoattack"))


def test_autoattack_records_the_first_breaker_and_per_point_queries() -> None:
    from advmnist.attacks import AutoAttack

    model, (x, y) = _model(), _batch(32)
    with torch.no_grad():
        y = model.eval()(x).argmax(1)  # all correct clean
    result = AutoAttack(version="custom", attacks=(FGSM(), PGD()))(model, x, y, Threat("linf", 0.05))
    alone = FGSM()(model, x, y, Threat("linf", 0.05)).success
    assert result.broken_by is not None and result.queries is not None
    by = result.broken_by
    assert all((b is not None) == bool(s) for b, s in zip(by, result.success.tolist(), strict=True))
    assert all(b == "fgsm" for b, s in zip(by, alone.tolist(), strict=True) if s)  # FGSM runs first
    assert "pgd" in by  # and PGD adds points of its own
    fgsm_only = torch.tensor([b == "fgsm" for b in by])
    assert result.queries[fgsm_only].max() < result.queries[~fgsm_only].min()  # PGD spent queries on the rest


def test_square_searches_in_fp32_even_under_bf16() -> None:
    """Its accept-if-lower test needs fp32 margins: with `bf16=True` it must do exactly what fp32 does."""
    from advmnist.attacks import Square

    model, (x, y) = _model(), _batch(32)
    with torch.no_grad():
        y = model.eval()(x).argmax(1)  # all correct clean
    threat = Threat("linf", 0.03)
    fp32 = Square(queries=60)(model, x, y, threat, seed=1)
    bf16 = Square(queries=60, bf16=True)(model, x, y, threat, seed=1)
    assert 0 < int(fp32.success.sum()) < len(y)  # a real search: some points fall, some stand
    assert torch.equal(fp32.x_adv, bf16.x_adv) and torch.equal(fp32.success, bf16.success)


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("name", ["fgsm", "bim", "pgd", "mifgsm"])
def test_targeted_attacks_reach_their_targets_and_count_only_that(name: str, bf16: bool) -> None:
    model, (x, y) = _model(), _batch(64)
    targets = (y + 1) % 10
    threat = Threat("linf", 1.0)  # an unbounded budget: every point can be sent anywhere
    result = create_attack(name, bf16=bf16)(model, x, y, threat, targets=targets)
    with torch.no_grad():
        pred = model.eval()(result.x_adv).argmax(1)
    assert torch.equal(result.success, pred == targets)  # success means reaching the target
    if name != "fgsm":  # one step need not get there; ten do on this model
        assert result.success.float().mean() > 0.9
    untargeted = create_attack(name, bf16=bf16)(model, x, y, threat)
    assert torch.equal(untargeted.success, untargeted.pred != y)


def test_targets_are_validated() -> None:
    model, (x, y) = _model(), _batch(8)
    with pytest.raises(ValueError, match="untargeted"):
        create_attack("square")(model, x, y, Threat("linf", 0.1), targets=(y + 1) % 10)
    with pytest.raises(ValueError, match="differ from"):
        PGD()(model, x, y, Threat("linf", 0.1), targets=y)
    with pytest.raises(ValueError, match="int64"):
        PGD()(model, x, y, Threat("linf", 0.1), targets=y[:3])


def test_pgd_without_early_stop_walks_every_step() -> None:
    model, (x, y) = _model(), _batch(16)
    threat = Threat("linf", 0.3)
    walked = PGD(steps=10, early_stop=False)(model, x, y, threat)
    stopped = PGD(steps=10)(model, x, y, threat)
    assert walked.queries is not None and (walked.queries == 11).all()  # 10 steps + the final check
    assert stopped.queries is not None and (stopped.queries <= walked.queries).all()
    assert (stopped.queries < 11).any()  # some points were fooled early and stopped there


def test_attack_lists_with_settings() -> None:
    from advmnist.attacks import parse_attacks

    fgsm, pgd, aa = parse_attacks("fgsm, pgd[steps=50,restarts=10, loss=dlr],autoattack", bf16=True)
    assert (pgd.steps, pgd.restarts, pgd.loss, pgd.bf16) == (50, 10, "dlr", True)  # type: ignore[attr-defined]
    assert fgsm.name == "fgsm" and aa.name == "autoattack" and fgsm.bf16 and aa.bf16
    assert parse_attacks("square[p_init=0.5]")[0].p_init == 0.5  # type: ignore[attr-defined]
    (both,) = parse_attacks("cascade[attacks=apgd-ce+apgd-t]", bf16=True)
    assert [(a.name, a.bf16) for a in both.attacks] == [("apgd-ce", True), ("apgd-t", True)]  # type: ignore[attr-defined]
    (one,) = parse_attacks("cascade[attacks=square]")
    assert [a.name for a in one.attacks] == ["square"]  # type: ignore[attr-defined]
    for bad, message in [
        ("pgd[steps=5", "unbalanced"),
        ("pgd[steps]", "key=value"),
        ("pgd[nosuch=1]", "bad settings for attack 'pgd'"),
        ("pgd[steps=0]", "steps and restarts must be >= 1"),
        ("nosuch", "unknown attack"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_attacks(bad)


@pytest.mark.parametrize("entry", ["__call__", "sweep", "generate"])
def test_the_contract_entry_points_are_final(entry: str) -> None:
    from advmnist.attacks import Attack

    assert getattr(getattr(Attack, entry), "__final__", False)  # typing.final: mypy refuses overrides
    with pytest.raises(TypeError, match=f"Sneaky overrides {entry}: the entry points of the attack contract"):
        type("Sneaky", (PGD,), {entry: lambda self, *args, **kwargs: None})


@pytest.mark.parametrize("name", sorted(FAST))
def test_settings_hold_the_name_and_every_hyperparameter_as_json(name: str) -> None:
    attack = create_attack(name, **FAST[name])
    settings = attack.settings()
    assert settings["name"] == name
    assert set(settings) == {"name"} | {f.name for f in dataclasses.fields(attack)}
    assert json.loads(json.dumps(settings)) == settings


def test_a_generator_replaces_the_seed_and_its_stream_goes_on() -> None:
    model, (x, y) = _model(), _batch()
    threat, pgd = Threat("linf", 0.1), PGD(steps=3)
    by_seed = pgd(model, x, y, threat, seed=5)
    g = torch.Generator().manual_seed(5)
    by_generator = pgd(model, x, y, threat, generator=g)
    assert torch.equal(by_seed.x_adv, by_generator.x_adv) and by_generator.seed == 5
    assert not torch.equal(pgd(model, x, y, threat, generator=g).x_adv, by_seed.x_adv)  # later draws
    assert torch.equal(pgd.generate(model, x, y, threat, generator=torch.Generator().manual_seed(5)), by_seed.x_adv)
    with pytest.raises(ValueError, match="seed or generator, not both"):
        pgd(model, x, y, threat, seed=5, generator=g)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_norm_functions_start_and_project_where_they_say(norm: str) -> None:
    ops, g = NORMS[norm], torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 28, 28, generator=g)
    sphere = ops.random_sphere(x, 0.3, g)
    assert torch.allclose(ops.size(sphere), torch.full((16,), 0.3))
    noise = ops.random_direction(x, g)
    assert torch.allclose(ops.size(ops.rescale(noise, 0.15)), torch.full((16,), 0.15))
    assert torch.allclose(ops.unit(noise), ops.rescale(noise, 1.0)) and torch.equal(ops.unit(0 * x), 0 * x)
    threat = Threat(norm, 0.3)
    far = x + 5 * sphere
    inside = threat.project(x, far)
    assert (ops.distance(inside, x) <= 0.3 + 1e-6).all() and inside.min() >= 0 and inside.max() <= 1
    assert torch.equal(threat.project(x, inside), inside)  # what is inside stays put


def test_gaussian_noise_is_sigma_times_the_generator_s_normal_draws() -> None:
    from advmnist.attacks.norms import gaussian_noise

    x = torch.rand(4, 1, 28, 28)
    noise = gaussian_noise(x, 0.001, torch.Generator().manual_seed(1))
    assert torch.equal(noise, 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)))
