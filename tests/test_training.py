"""Training recipes, schedules, the validation split, the collapse watchdog and resuming after a kill."""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advmnist.attacks import PGD, Threat
from advmnist.config import train_config
from advmnist.data import DatasetSpec, load_mnist
from advmnist.data.augment import random_shift
from advmnist.errors import ConfigError, RunDirError
from advmnist.models import create_model, save_model
from advmnist.training import (
    RECIPES,
    TrainConfig,
    Watchdog,
    WeightAverage,
    all_settings,
    create_recipe,
    eps_at,
    evaluate_clean,
    fit,
    lr_at,
    mart,
    pgd_at,
    split_validation,
    standard_ce,
    trades,
)
from conftest import ROOT, run_cli

fit_module = importlib.import_module("advmnist.training.fit")  # the module (the package exports the function)
callbacks_module = importlib.import_module("advmnist.training.callbacks")

# a small CNN (conv, pool, fc): big enough to learn the synthetic digits in a few epochs, quick here
TINY = {"batch_size": 64, "lr": 0.05, "precision": "fp32"}


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 5, padding=2)
        self.fc = nn.Linear(8 * 14 * 14, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.max_pool2d(torch.relu(self.conv(x)), 2).flatten(1))


@pytest.fixture(scope="module")
def data(synthetic) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:  # noqa: ANN001
    spec = DatasetSpec.from_checksums(synthetic[1])
    train, test = load_mnist("train", synthetic[0], spec=spec), load_mnist("test", synthetic[0], spec=spec)
    return (train.x, train.y), (test.x, test.y)


def _config(recipe: str, **settings: object) -> TrainConfig:
    """A config of `recipe` from flat settings; recipe settings that `recipe` does not take are left out."""
    owners = all_settings()
    kept = {k: v for k, v in settings.items() if k not in owners or recipe in owners[k]}
    return TrainConfig.from_dict({"recipe": recipe, **kept})


def _model() -> nn.Module:
    torch.manual_seed(0)
    return TinyCNN()


def test_lr_schedules() -> None:
    total = 100
    assert [lr_at("constant", 0.1, s, total) for s in (0, 99)] == [0.1, 0.1]
    assert [lr_at("step", 0.1, s, total) for s in (49, 50, 75)] == pytest.approx([0.1, 0.01, 0.001])
    assert lr_at("cosine", 0.1, 0, total) == 0.1 and lr_at("cosine", 0.1, 99, total) < 1e-3
    cycle = [lr_at("one-cycle", 0.1, s, total) for s in range(total)]
    assert max(cycle) == pytest.approx(0.1) and cycle.index(max(cycle)) == 30
    assert cycle[0] == pytest.approx(0.004) and cycle[-1] < 0.002
    with pytest.raises(ValueError, match="unknown lr schedule"):
        lr_at("exp", 0.1, 0, total)


def test_eps_ramp() -> None:
    ramped = [eps_at(0.3, 0.5, s, 100) for s in range(100)]
    assert ramped[0] == pytest.approx(0.006) and ramped[49] == pytest.approx(0.3) and ramped[-1] == 0.3
    assert all(a <= b for a, b in zip(ramped, ramped[1:], strict=False))
    assert eps_at(0.3, 0.0, 0, 100) == 0.3


def test_validation_split_is_disjoint_seeded_and_never_the_test_set(data) -> None:  # noqa: ANN001
    train, _ = data
    (x, y), (xv, yv) = split_validation(train, 100, seed=1)
    assert len(y) + len(yv) == len(train[1]) and len(yv) == 100
    rows = {tuple(r.flatten().tolist()[:60]) for r in x}
    assert not any(tuple(r.flatten().tolist()[:60]) in rows for r in xv)  # no image in both
    again = split_validation(train, 100, seed=1)[1]
    assert again is not None and torch.equal(again[0], xv)
    assert split_validation(train, 0, seed=1) == (train, None)
    with pytest.raises(ValueError, match="val_size must be below"):
        split_validation(train, len(train[1]), seed=1)


def test_adversarial_objectives_raise_the_loss_within_the_ball(data, monkeypatch) -> None:  # noqa: ANN001
    from advmnist.training import objectives

    (x, y), _ = data
    model = _model()
    fit(model, (x, y), None, TrainConfig(epochs=2, **TINY))  # something to attack
    x, y = x[:64], y[:64]
    clean = standard_ce()(model, x, y, 0.0).loss.item()
    crafted = []
    craft = objectives._craft
    monkeypatch.setattr(objectives, "_craft", lambda *a: crafted.append(craft(*a)) or crafted[-1])
    adv = pgd_at(steps=5)(model, x, y, 0.2).loss.item()
    assert adv > clean
    (x_adv,) = crafted
    assert (x_adv - x).abs().max() <= 0.2 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() > 0.19  # PGD without early stop walks to the edge of the ball
    assert trades(steps=5)(model, x, y, 0.2).loss.item() >= clean - 1e-6  # CE + beta * KL, KL >= 0
    torch.manual_seed(1)
    adv = pgd_at(steps=5)(model, x, y, 0.2).loss.item()
    torch.manual_seed(1)  # the same PGD examples: boosted CE >= CE, and the weighted KL >= 0
    assert mart(steps=5)(model, x, y, 0.2).loss.item() > adv


def test_mart_loss_is_the_papers_formula(data) -> None:  # noqa: ANN001
    (x, y), _ = data
    model = _model()
    x, y = x[:16], y[:16]
    torch.manual_seed(0)
    out = mart(beta=3.0, steps=2)(model, x, y, 0.2)
    from advmnist.training.objectives import _seed

    torch.manual_seed(0)  # the same random start: the same examples
    x_adv = PGD(steps=2, rel_step_size=1.25, early_stop=False).generate(model, x, y, Threat("linf", 0.2), seed=_seed())
    p_adv, p_clean = model(x_adv).softmax(1).double(), model(x).softmax(1).double()
    rival = p_adv.scatter(1, y[:, None], -1.0).max(1).values  # largest wrong-class probability
    boosted = -p_adv.gather(1, y[:, None]).log().mean() - (1 - rival).log().mean()
    kl = (p_clean * (p_clean.log() - p_adv.log())).sum(1)
    expected = boosted + 3.0 * (kl * (1 - p_clean.gather(1, y[:, None]).squeeze(1))).mean()
    assert torch.allclose(out.loss.double(), expected, rtol=1e-4)
    assert torch.allclose(out.logits, model(x_adv), atol=1e-5)  # accuracy is tracked on the PGD examples


def test_the_trades_walk_starts_near_x_or_anywhere_in_the_ball(data) -> None:  # noqa: ANN001
    from advmnist.training.objectives import _trades_example

    (x, _), _ = data
    model = _model()
    x = x[:64]
    tiny = 1e-4  # one step this small leaves the walk where it started
    torch.manual_seed(0)
    near = _trades_example(model, x, 0.3, 1, tiny, "normal", False)
    torch.manual_seed(0)
    anywhere = _trades_example(model, x, 0.3, 1, tiny, "uniform", False)
    assert (near - x).abs().max() < 0.01
    assert 0.25 < (anywhere - x).abs().max() <= 0.3 + 1e-6 and anywhere.min() >= 0 and anywhere.max() <= 1
    assert (anywhere - x).abs().mean() > 10 * (near - x).abs().mean()
    with pytest.raises(ValueError, match="unknown TRADES start"):
        trades(start="corner")
    with pytest.raises(ValueError, match="unknown trades_start"):
        _config("trades", train_eps=0.3, trades_start="corner")


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_every_recipe_trains(recipe: str, data, tmp_path: Path) -> None:  # noqa: ANN001
    train, test = data
    extra: dict[str, object] = {"train_eps": 0.1}
    if recipe == "ensemble":
        save_model(create_model("linear"), tmp_path / "static")
        extra["ensemble_models"] = (str(tmp_path / "static.safetensors"),)
    cfg = _config(recipe, epochs=1, attack_steps=2, **TINY, **extra)
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    result = fit(model, train, test, cfg)
    row = result.history[0]
    assert torch.isfinite(torch.tensor(row["train_loss"])) and 0 <= row["test_accuracy"] <= 1
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_watchdog_unit() -> None:
    dog = Watchdog(drop=0.2)
    assert not dog.collapsed(0.0)  # nothing to compare with yet
    assert dog.update(1, 0.5) and not dog.update(2, 0.4)
    assert not dog.collapsed(0.31) and dog.collapsed(0.29)
    # equal PGD accuracy (a standard model: 0 every epoch): the better clean epoch wins
    ties = Watchdog(drop=0.2)
    assert ties.update(1, 0.0, 0.97) and ties.update(2, 0.0, 0.99) and not ties.update(3, 0.0, 0.98)
    assert ties.best_epoch == 2


def test_collapse_rolls_back_to_the_last_good_epoch_and_stops(data, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    train, _ = data
    cfg = TrainConfig(recipe="fgsm-rs", epochs=4, train_eps=0.1, val_size=64, watchdog=True, **TINY)
    scripted = iter([0.5, 0.6, 0.1, 0.7])  # epoch 3 collapses (0.1 < 0.6 - 0.2)
    monkeypatch.setattr(callbacks_module, "validate", lambda *a, **k: {"val_clean": 0.9, "val_pgd": next(scripted)})
    model = _model()
    result = fit(model, train, None, cfg, state_dir=tmp_path / "state")
    assert (
        result.collapse is not None and result.collapse["epoch"] == 3 and result.collapse["rolled_back_to_epoch"] == 2
    )
    assert len(result.history) == 3 and result.history[-1]["collapse"] == result.collapse
    log = json.loads((tmp_path / "state" / "state.json").read_text())
    assert log["collapse"]["epoch"] == 3  # the run's JSON says so

    # The weights are those after epoch 2: a run stopped there by itself (same RNG path) has them too.
    scripted2 = iter([0.5, 0.6])
    monkeypatch.setattr(callbacks_module, "validate", lambda *a, **k: {"val_clean": 0.9, "val_pgd": next(scripted2)})
    two = _model()
    fit(two, train, None, TrainConfig.from_dict({**cfg.to_dict(), "epochs": 2}))
    # constant lr and no ramp: epoch 2 does not depend on how many epochs were planned
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), two.state_dict().values(), strict=True))
    resumed = fit(_model(), train, None, cfg, state_dir=tmp_path / "state", resume=True)
    assert resumed.collapse == result.collapse and len(resumed.history) == 3  # a stopped run stays stopped


@pytest.mark.parametrize(
    ("ema", "shift", "awp"),
    [(0.0, 0, 0.0), (0.95, 2, 0.0), (0.0, 0, 0.01)],
    ids=["plain", "weight-average+shift", "weight-perturbation"],
)
def test_resume_after_a_kill_gives_the_same_final_metrics(data, tmp_path: Path, monkeypatch, ema, shift, awp) -> None:  # noqa: ANN001
    train, test = data
    cfg = _config(
        "pgd", epochs=3, train_eps=0.1, attack_steps=2, eps_ramp=0.5, lr_schedule="cosine",
        val_size=64, select="best", ema=ema, shift=shift, awp=awp, awp_warmup=0.3, **TINY,
    )  # fmt: skip
    whole = fit(_model(), train, test, cfg, state_dir=tmp_path / "whole")
    original = fit_module._train_epoch
    calls = {"n": 0}

    def dies_in_epoch_3(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed mid-run
        return original(*args, **kwargs)

    monkeypatch.setattr(fit_module, "_train_epoch", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), train, test, cfg, state_dir=tmp_path / "killed")
    monkeypatch.setattr(fit_module, "_train_epoch", original)
    model = _model()
    resumed = fit(model, train, test, cfg, state_dir=tmp_path / "killed", resume=True)
    assert resumed.resumed_from_epoch == 2
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in resumed.history]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in whole.history]
    assert resumed.best_epoch == whole.best_epoch
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), whole.model.state_dict().values(), strict=True)
    )


def test_a_checkpoint_from_before_a_new_setting_resumes_unless_the_setting_is_used(data, tmp_path: Path) -> None:  # noqa: ANN001
    train, _ = data
    cfg = TrainConfig(recipe="standard", epochs=1, **TINY)
    fit(_model(), train, None, cfg, state_dir=tmp_path)
    meta = json.loads((tmp_path / "state.json").read_text())
    del meta["fingerprint"]["awp"], meta["fingerprint"]["awp_warmup"]  # written before awp existed
    (tmp_path / "state.json").write_text(json.dumps(meta))
    more = TrainConfig.from_dict({**cfg.to_dict(), "epochs": 2})
    with pytest.raises(RunDirError, match="another training configuration"):
        fit(_model(), train, None, more, state_dir=tmp_path, resume=True)  # epochs differ: refused
    meta["fingerprint"]["epochs"] = 2  # (only to reach the awp check: the fingerprint otherwise matches)
    (tmp_path / "state.json").write_text(json.dumps(meta))
    assert fit(_model(), train, None, more, state_dir=tmp_path, resume=True).resumed_from_epoch == 1
    with pytest.raises(RunDirError, match="another training configuration"):
        awp = TrainConfig.from_dict({**more.to_dict(), "awp": 0.01})
        fit(_model(), train, None, awp, state_dir=tmp_path, resume=True)  # the new setting used: refused


def test_random_shift_moves_each_image_within_the_bound() -> None:
    x = torch.zeros(200, 1, 28, 28)
    x[:, 0, 14, 14] = 1.0  # one lit pixel in the middle of each image
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape and torch.equal(shifted.sum((1, 2, 3)), x.sum((1, 2, 3)))  # nothing lost
    where = (shifted[:, 0] == 1).nonzero()[:, 1:] - 14  # (dy, dx) of each image
    assert where.abs().max() == 2 and len({tuple(d) for d in where.tolist()}) == 25  # every shift in [-2, 2]^2 occurs
    again = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(shifted, again)  # the generator decides: a resumed run repeats its shifts
    assert random_shift(x, 0) is x
    with pytest.raises(ValueError, match="shift must be"):
        TrainConfig(recipe="standard", shift=-1)


def test_weight_average_follows_the_weights_and_swaps_back() -> None:
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    average.update(model)  # warm-up decay min(0.5, 2 / 11) = 2/11: 0 -> 9/11
    assert torch.allclose(average.shadow["weight"], torch.full((1, 2), 9 / 11))
    for _ in range(30):
        average.update(model)
    assert torch.allclose(average.shadow["weight"], torch.ones(1, 2), atol=1e-6)
    with torch.no_grad():
        model.weight.fill_(3.0)
    with average.applied(model) as swapped:
        assert torch.allclose(swapped.weight, torch.ones(1, 2), atol=1e-6)
    assert torch.equal(model.weight, torch.full((1, 2), 3.0))  # the raw weights are back
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, decay=1.0)


def test_fit_with_weight_averaging_returns_the_average(data, monkeypatch) -> None:  # noqa: ANN001
    train, test = data
    cfg = TrainConfig(recipe="standard", epochs=2, ema=0.9, **TINY)
    captured: dict[str, dict[str, torch.Tensor]] = {}
    original = fit_module._train_epoch

    def keep_raw(state, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        out = original(state, *args, **kwargs)
        captured["raw"] = {k: v.clone() for k, v in state.model.state_dict().items()}
        assert state.average is not None
        captured["average"] = {k: v.clone() for k, v in state.average.shadow.items()}
        return out

    monkeypatch.setattr(fit_module, "_train_epoch", keep_raw)
    result = fit(_model(), train, test, cfg)
    final = result.model.state_dict()
    assert all(torch.allclose(final[k], captured["average"][k]) for k in final)
    assert not torch.allclose(final["fc.weight"], captured["raw"]["fc.weight"])  # the average, not the raw weights
    _, accuracy, _ = evaluate_clean(result.model, *test)
    assert accuracy > 0.5  # the average of a training run is itself a working model
    with pytest.raises(ValueError, match="ema must be"):
        TrainConfig(recipe="standard", ema=1.0)


def test_train_config_presets_and_overrides(tmp_path: Path) -> None:
    presets = sorted(p for p in (ROOT / "configs").glob("*.toml") if p.name != "seed.toml")
    assert {p.stem for p in presets} >= set(RECIPES) | {"robust-seed-cnn"}  # one per recipe + the shipped model's
    for preset in presets:
        cfg, arch = train_config(preset, ensemble_models=["x.safetensors"] if preset.stem == "ensemble" else None)
        assert arch and cfg.recipe in RECIPES
        assert preset.stem not in RECIPES or cfg.recipe == preset.stem, preset.name  # configs/<recipe>.toml
    cfg, arch = train_config(None, recipe="pgd", train_eps="0.3", epochs=2)
    assert (cfg.train_eps, cfg.epochs, arch) == (0.3, 2, "seed-cnn")
    assert train_config(None, recipe="fgsm-rs", train_eps="8/255")[0].epochs == 8
    bad = tmp_path / "bad.toml"
    bad.write_text('recipe = "pgd"\nlearning_rate = 1\n')
    with pytest.raises(ConfigError, match="unknown key"):
        train_config(bad)
    with pytest.raises(ConfigError, match="no recipe"):
        train_config(None)
    with pytest.raises(ConfigError, match="need a validation split"):
        train_config(None, recipe="fgsm-rs", watchdog=True)
    with pytest.raises(ConfigError, match="needs static pre-trained models"):
        train_config(None, recipe="ensemble")


def test_a_preset_names_its_base_and_holds_only_the_change(tmp_path: Path) -> None:
    from advmnist.config import load_config

    (tmp_path / "sub").mkdir()
    (tmp_path / "full.toml").write_text('recipe = "pgd"\ntrain_eps = "0.3"\nepochs = 40\nlr = 0.02\n')
    (tmp_path / "sub" / "more.toml").write_text('base = "../full.toml"\nepochs = 48\n')  # relative to the file
    (tmp_path / "sub" / "twice.toml").write_text('base = "more.toml"\nlr = 0.04\n')
    cfg, _ = train_config(tmp_path / "sub" / "twice.toml", epochs=50)  # a flag still wins over every file
    assert (cfg.recipe, cfg.train_eps, cfg.epochs, cfg.lr) == ("pgd", 0.3, 50, 0.04)
    assert train_config(tmp_path / "sub" / "more.toml")[0].epochs == 48

    study = tmp_path / "study.toml"
    study.write_text(f'base = "{ROOT / "configs" / "seed.toml"}"\n[baseline]\nepochs = 1\n')
    seed = load_config(ROOT / "configs" / "seed.toml")
    mine = load_config(study)
    assert mine.baseline.epochs == 1 and mine.baseline.recipe == seed.baseline.recipe  # tables merge key by key
    assert mine.defended == seed.defended

    (tmp_path / "a.toml").write_text('base = "b.toml"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n')
    with pytest.raises(ConfigError, match="leads back to itself"):
        train_config(tmp_path / "a.toml")
    (tmp_path / "lost.toml").write_text('base = "nowhere.toml"\nrecipe = "pgd"\n')
    with pytest.raises(ConfigError, match=r"nowhere.toml \(base of .*lost.toml\): config file not found"):
        train_config(tmp_path / "lost.toml")
    (tmp_path / "odd.toml").write_text("base = 3\n")
    with pytest.raises(ConfigError, match="base must be the name of another TOML file"):
        train_config(tmp_path / "odd.toml")


def test_the_shipped_preset_resolves_to_the_settings_its_committed_run_recorded() -> None:
    """configs/robust-seed-cnn.toml made the checkpoint in src/advmnist/pretrained/ (run: results/robust-seed-cnn/)."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    defaults |= {f.name: f.default for cls in RECIPES.values() for f in dataclasses.fields(cls)}
    run = json.loads((ROOT / "results" / "robust-seed-cnn" / "config.json").read_text())
    card = json.loads((ROOT / "src" / "advmnist" / "pretrained" / "robust-seed-cnn.json").read_text())
    cfg, arch = train_config(ROOT / "configs" / "robust-seed-cnn.toml")
    settings = {**cfg.to_dict(), "arch": arch}
    for key, value in settings.items():
        # a field added after the run was made is not in its config.json and must be at its default
        assert value == run.get(key, defaults.get(key)), (key, value, run.get(key))
        if key != "arch":  # and what the checkpoint's card says
            assert value == card["recipe"].get(key, defaults.get(key)), (key, value, card["recipe"].get(key))
    assert set(card["recipe"]) - set(settings) <= set(all_settings())  # only other recipes' settings are left out


def test_a_step_larger_than_eps_is_allowed_but_warned(caplog) -> None:  # noqa: ANN001
    _config("pgd", train_eps=0.1, attack_rel_step=1.5)
    assert "larger than eps" in caplog.text


def test_cli_train_bad_input_is_one_line(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    from test_cli import assert_one_line_error

    data = ["--data-dir", str(synthetic[0]), "--checksums", str(synthetic[1])]
    out = tmp_path / "t"
    assert_one_line_error(
        run_cli("train", "--recipe", "ensemble", "--ensemble", "nope.safetensors", "--out", str(out), *data),
        "ensemble model(s) not found: nope.safetensors",
    )
    assert_one_line_error(run_cli("train", "--recipe", "pgd", "--eps", "0", "--out", str(out), *data), "train_eps > 0")
    assert_one_line_error(
        run_cli("train", "--recipe", "pgd", "--lr-schedule", "zigzag", "--out", str(out), *data), "unknown lr_schedule"
    )
    assert_one_line_error(run_cli("train", "--recipe", "pgd", "--ema", "1", "--out", str(out), *data), "ema must be")
    assert_one_line_error(
        run_cli("train", "--recipe", "pgd", "--shift", "9", "--out", str(out), *data), "shift must be"
    )
    assert_one_line_error(run_cli("train", "--recipe", "pgd", "--awp", "-1", "--out", str(out), *data), "awp must be")
    bad = tmp_path / "bad.toml"
    bad.write_text('recipe = "trades"\ntrain_eps = 0.3\ntrades_start = "corner"\n')
    assert_one_line_error(run_cli("train", "--config", str(bad), "--out", str(out), *data), "unknown trades_start")
    assert_one_line_error(
        run_cli("train", "--recipe", "mart", "--arch", "seed-cnn[activation=tanh]", "--out", str(out), *data),
        "activation must be one of relu, silu, not 'tanh'",
    )
    assert not out.exists()


def test_cli_train_pgd_with_watchdog_writes_validation(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    data = ["--data-dir", str(synthetic[0]), "--checksums", str(synthetic[1])]
    out = tmp_path / "t"
    args = ["--recipe", "pgd", "--eps", "0.1", "--steps", "2", "--epochs", "1", "--n-train", "256", "--arch", "linear"]
    extra = ["--ema", "0.99", "--shift", "2", "--awp", "0.01", "--awp-warmup", "0.5"]
    proc = run_cli("train", *args, *extra, "--val-size", "64", "--watchdog", "--out", str(out), *data, "-q")
    assert proc.returncode == 0, proc.stderr
    assert "validation: clean" in proc.stdout
    results = json.loads((out / "training_results.json").read_text())
    assert results["recipe"] == "pgd" and results["val_size"] == 64 and results["collapse"] is None
    assert (results["ema"], results["shift"], results["awp"], results["awp_warmup"]) == (0.99, 2, 0.01, 0.5)
    assert {"val_clean", "val_pgd", "lr", "eps"} <= set(results["history"][0])


def test_recipe_settings_are_declared_once_and_owned_by_their_recipes() -> None:
    owners = all_settings()
    assert owners["trades_beta"] == ["trades", "mart"] and owners["attack_restarts"] == ["pgd"]
    assert owners["trades_start"] == ["trades"] and owners["ensemble_models"] == ["ensemble"]
    for recipe in RECIPES:
        assert create_recipe(recipe, **({"ensemble_models": ("m",)} if recipe == "ensemble" else {})).name == recipe
    with pytest.raises(ValueError, match="trades_beta is a setting of trades, mart"):
        create_recipe("pgd", trades_beta=8.0)
    cfg = _config("trades", train_eps=0.3, trades_beta=8.0)
    flat = cfg.to_dict()
    assert flat["trades_beta"] == 8.0 and "attack_restarts" not in flat and "rs_alpha" not in flat
    assert TrainConfig.from_dict(flat) == cfg  # the JSON of a run reads back to the same config


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_every_objective_recomputes_its_loss_on_the_same_examples(recipe: str, data, tmp_path: Path) -> None:  # noqa: ANN001
    (x, y), _ = data
    statics = [create_model("linear").eval()] if recipe == "ensemble" else []
    cfg = _config(recipe, train_eps=0.2, attack_steps=3, ensemble_models=("m",) if statics else ())
    model = _model()
    out = cfg.recipe_settings.objective(bf16=False, statics=statics)(model, x[:32], y[:32], 0.2)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss) and out.loss.item() > 0  # a scalar to minimize
    grads = torch.autograd.grad(out.loss, list(model.parameters()), retain_graph=True)
    assert all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)  # it trains the model
    assert all(p.grad is None for p in model.parameters())  # crafting its examples touched no parameter gradient
    assert out.again is not None
    again = out.again(model)  # no dropout in TinyCNN: the same weights give the same loss
    assert torch.allclose(again.loss, out.loss) and torch.equal(again.y, out.y)
    with torch.no_grad():
        model.fc.weight.mul_(2)
    assert not torch.allclose(out.again(model).loss, out.loss)  # ...and other weights another


def test_weight_perturbation_moves_each_weight_up_the_loss_and_restores_it_exactly(data) -> None:  # noqa: ANN001
    from advmnist.training.awp import WeightPerturbation

    (x, y), _ = data
    model = _model()
    fit(model, (x, y), None, TrainConfig(epochs=1, **TINY))
    original = {k: v.clone() for k, v in model.state_dict().items()}
    out = trades(steps=3)(model, x[:128], y[:128], 0.2)
    gamma = 0.02
    perturb = WeightPerturbation(model, gamma)
    with perturb.applied(out.loss):
        moved = {k: v - original[k] for k, v in model.state_dict().items()}
        higher = out.again(model).loss.item() if out.again else 0.0
    for name, delta in moved.items():
        if name.endswith("bias"):
            assert torch.equal(delta, torch.zeros_like(delta))  # biases stay
        else:
            assert delta.norm().item() == pytest.approx(gamma * original[name].norm().item(), rel=1e-4)
    assert higher > out.loss.item()  # up the loss
    assert all(torch.equal(v, original[k]) for k, v in model.state_dict().items())  # back, bit for bit
    with pytest.raises(ValueError, match="gamma"):
        WeightPerturbation(model, 0.0)


def test_fit_with_weight_perturbation_trains_differently_after_the_warmup(data) -> None:  # noqa: ANN001
    train, test = data
    base = {"recipe": "trades", "epochs": 2, "train_eps": 0.1, "attack_steps": 2, **TINY}
    plain = fit(_model(), train, test, TrainConfig.from_dict(base))
    late = fit(_model(), train, test, TrainConfig.from_dict({**base, "awp": 0.01, "awp_warmup": 0.5}))
    assert late.history[0] == {**plain.history[0], "seconds": late.history[0]["seconds"]}  # epoch 1: no awp yet
    assert late.history[1]["train_loss"] != plain.history[1]["train_loss"]  # epoch 2: perturbed
    weights = zip(plain.model.state_dict().values(), late.model.state_dict().values(), strict=True)
    assert not any(torch.equal(a, b) for a, b in weights)
