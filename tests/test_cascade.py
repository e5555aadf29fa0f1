"""Cascades: the per-point worst case of their own members, with every pass of the members counted."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advmnist.attacks import BIM, FGSM, PGD, AutoAttack, Cascade, Square, Threat, create_attack

THREAT = Threat("linf", 0.005)  # on this model each member below breaks points the earlier ones did not


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 10)).eval()


def _points(model: nn.Module, n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 28, 28, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[::8] = (y[::8] + 1) % 10  # misclassified clean: never attacked, broken by nobody
    return x, y


def _members() -> tuple[BIM, FGSM, PGD]:
    """Three deterministic attacks (no random start): alone, each treats a point as it does in the cascade."""
    return BIM(steps=3, loss="margin"), FGSM(), PGD(steps=5, rel_step_size=0.2, random_start=False, loss="margin")


def test_a_cascade_is_the_per_point_worst_case_of_its_own_members() -> None:
    model = _model()
    x, y = _points(model)
    result = Cascade(attacks=_members())(model, x, y, THREAT)
    alone = {m.name: m(model, x, y, THREAT).success for m in _members()}
    assert torch.equal(result.success, alone["bim"] | alone["fgsm"] | alone["pgd"])
    assert result.broken_by is not None
    clean_wrong = y != model(x).argmax(1)
    for i, by in enumerate(result.broken_by):
        if by is None:  # robust, or misclassified before any attack
            assert bool(clean_wrong[i]) or not result.success[i]
        else:
            assert alone[by][i] and not clean_wrong[i]  # the member named really breaks the point alone
    # each member broke points that none before it did, so the test sees the whole cascade
    assert {"bim", "fgsm", "pgd"} == {b for b in result.broken_by if b is not None}
    assert not result.success.all()


def test_a_cascade_counts_every_pass_of_its_members() -> None:
    model = _model()
    x, y = _points(model)
    bim, fgsm, pgd = _members()
    result = Cascade(attacks=(bim, fgsm, pgd))(model, x, y, THREAT)
    queries = torch.full((len(y),), 2)  # the cascade's clean check and its final check
    forwards, backwards = 2, 0
    todo = (model(x).argmax(1) == y).nonzero().squeeze(1)
    for member in (bim, fgsm, pgd):  # each member alone on the points still robust before it
        r = member(model, x[todo], y[todo], THREAT)
        assert r.queries is not None
        forwards, backwards = forwards + r.forwards, backwards + r.backwards
        queries[todo] += r.queries
        todo = todo[~r.success]
    assert (result.forwards, result.backwards) == (forwards, backwards)
    assert result.queries is not None and torch.equal(result.queries, queries)


def test_the_cascade_precision_reaches_its_members(bf16_on: None) -> None:
    model = _model()
    x, _ = _points(model)
    with torch.no_grad():
        y = model(x).argmax(1)  # all correct clean: the member sees the whole batch
    threat = Threat("linf", 0.01)
    cascade = Cascade(attacks=(PGD(steps=3),), bf16=True)
    assert all(m.bf16 for m in cascade.members())
    inside = cascade(model, x, y, threat, seed=3).x_adv
    assert torch.equal(inside, PGD(steps=3, bf16=True)(model, x, y, threat, seed=3).x_adv)  # one generator, passed on
    assert not torch.equal(inside, PGD(steps=3)(model, x, y, threat, seed=3).x_adv)  # bf16 gradients differ
    assert Cascade(attacks=(PGD(bf16=True),)).members()[0].bf16 is False  # the cascade's setting wins
    assert all(m.bf16 for m in AutoAttack(bf16=True).members())


def test_cascades_hold_attacks_and_record_their_settings_by_name() -> None:
    cascade = create_attack("cascade", attacks=("fgsm", "pgd"), bf16=True)
    assert isinstance(cascade, Cascade) and [type(m) for m in cascade.members()] == [FGSM, PGD]
    settings = cascade.settings()
    assert [m["name"] for m in settings["attacks"]] == ["fgsm", "pgd"]
    assert settings["attacks"][1]["steps"] == 40 and all(m["bf16"] for m in settings["attacks"])
    assert AutoAttack().settings() == {"name": "autoattack", "bf16": False, "attacks": [], "version": "standard"}
    with pytest.raises(TypeError, match="holds Attack objects"):
        Cascade(attacks=("fgsm",))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tuple of Attack objects"):
        Cascade(attacks=Square())  # type: ignore[arg-type]


def test_a_member_that_cannot_take_the_threat_is_refused_before_any_runs() -> None:
    from advmnist.attacks import CWL2

    model = _model()
    x, y = _points(model, 8)
    calls = []
    model.register_forward_hook(lambda *_: calls.append(1))
    with pytest.raises(ValueError, match="cw-l2 supports only l2 threats"):
        Cascade(attacks=(FGSM(), CWL2()))(model, x, y, Threat("linf", 0.1))
    assert not calls
