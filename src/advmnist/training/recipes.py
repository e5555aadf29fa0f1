"""The recipe registry: each training recipe is a small frozen dataclass that owns its settings.

    advmnist.training.create_recipe("trades", trades_beta=8.0).objective(bf16=True)

A recipe's fields are its settings, declared once with `option(...)`: the field name is the TOML
key of a preset, the option's flag is the `advmnist train` flag, and `advmnist recipes` lists them.
Recipes that share a setting (the inner PGD of pgd, trades and mart) share its declaration
through a mixin. The loop's own settings (epochs, lr, schedules, validation, ...) live in
`TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from advmnist.options import fields_with_options, option
from advmnist.training.objectives import (
    TRADES_STARTS,
    Objective,
    ensemble,
    fgsm_mix,
    fgsm_rs,
    mart,
    pgd_at,
    standard_ce,
    trades,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """Base class: `name`, a one-line `summary`, its settings as fields, and `objective`."""

    name: ClassVar[str] = "recipe"
    summary: ClassVar[str] = ""
    adversarial: ClassVar[bool] = True  # trains on perturbed inputs: needs train_eps > 0

    def objective(self, *, bf16: bool, statics: Sequence[nn.Module] = ()) -> Objective:
        raise NotImplementedError

    def static_models(self) -> tuple[str, ...]:
        """Checkpoints the recipe needs loaded beside the model it trains (the ensemble's)."""
        return ()

    def settings(self) -> dict[str, Any]:
        """The recipe's settings by TOML key (tuples as lists, as in the JSON files)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def setting_names(cls) -> list[str]:
        return [f.name for f, _, _ in fields_with_options(cls)]


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _positive_float(name: str, value: object, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (value >= 0 if allow_zero else value > 0) or value != value or value == float("inf"):  # type: ignore[operator]
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value!r}")


@dataclass(frozen=True)
class _InnerPGD(Recipe):
    """The inner maximization of pgd, trades and mart: `attack_steps` signed-gradient steps."""

    attack_steps: int = option(7, "pgd / trades / mart: attack steps per example", flag="--steps")
    attack_rel_step: float | None = option(
        None, "pgd / trades / mart: step size per eps (default 2.5 / steps)", flag="--step-size"
    )

    def __post_init__(self) -> None:
        _positive_int("attack_steps", self.attack_steps)
        if self.attack_rel_step is not None:
            _positive_float("attack_rel_step", self.attack_rel_step)
            if self.attack_rel_step > 1:
                log.warning(
                    "attack step %.3g * eps is larger than eps: the walk can jump across the ball", self.attack_rel_step
                )


@dataclass(frozen=True)
class _KLWeight(_InnerPGD):
    trades_beta: float = option(6.0, "trades / mart: weight of the KL term", flag="--beta")

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_float("trades_beta", self.trades_beta, allow_zero=True)


@dataclass(frozen=True)
class Standard(Recipe):
    name: ClassVar[str] = "standard"
    summary: ClassVar[str] = "cross-entropy on clean images (the seed's baseline)"
    adversarial: ClassVar[bool] = False

    def objective(self, *, bf16: bool, statics: Sequence[nn.Module] = ()) -> Objective:
        return standard_ce()


@dataclass(frozen=True)
class FGSMMix(Recipe):
    name: ClassVar[str] = "fgsm-mix"
    summary: ClassVar[str] = "half of each batch clean, half FGSM at train_eps (the seed's defense)"

    def objective(self, *, bf16: bool, statics: Sequence[nn.Module] = ()) -> Objective:
        return fgsm_mix(bf16=bf16)


@dataclass(frozen=True)
class FGSMRS(Recipe):
    name: ClassVar[str] = "fgsm-rs"
    summary: ClassVar[str] = "FGSM from a random start (Wong et al. 2020): fast adversarial training"
    rs_alpha: float = option(1.25, "fgsm-rs: step size per eps", flag="--rs-alpha")

    def __post_init__(self) -> None:
        _positive_float("rs_alpha", self.rs_alpha)

    def objective(self, *, bf16: bool, statics: Sequence[nn.Module] = ()) -> Objective:
        return fgsm_rs(alpha=self.rs_alpha, bf16=bf16)


@dataclass(frozen=True)
class PGDAT(_InnerPGD):
    name: ClassVar[str] = "pgd"
    summary: ClassVar[str] = "PGD adversarial training (Madry et al. 2018)"
    attack_restarts: int = option(1, "pgd: random restarts of the training attack", flag="--restarts")

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive_int("attack_restarts", self.attack_restarts)

    def objective(self, *, bf16: bool, statics: Sequence[nn.Module] = ()) -> Objective:
        return pgd_at(
            steps=self.attack_steps, rel_step_size=self.attack_rel_step, restarts=self.attack_restarts, bf16=bf16
        )


@dataclass(frozen=True)
class TRADES(_KLWeight):
    name: ClassVar[str] = "trades"
    summary: ClassVar[str] = "TRADES (Zhang et al. 2019): clean CE + beta * KL(f(x) || f(x'))"
    trades_start: str = option(
        "normal",
        "trades: start the KL walk at x + 0.001 N(0, 1) (normal, the paper's) or uniform in the ball",
        choices=TRADES_STARTS,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.trades_start not in TRADES_STARTS:
            raise ValueError(f"unknown trades_start {self.trades_start!r}; choose from {', '.join(TRADES_STARTS)}")

    def objective(self, *, bf16: bool, statics: Sequence[nn.Module] = ()) -> Objective:
        return trades(
            beta=self.trades_beta,
            steps=self.attack_steps,
            rel_step_size=self.attack_rel_step,
            start=self.trades_start,
            bf16=bf16,
        )


@dataclass(frozen=True)
class MART(_KLWeight):
    name: ClassVar[str] = "mart"
    summary: ClassVar[str] = "MART (Wang et al. 2020): boosted CE on PGD points + KL weighted by 1 - p_y"

    def objective(self, *, bf16: bool, statics: Sequence[nn.Module] = ()) -> Objective:
        return mart(beta=self.trades_beta, steps=self.attack_steps, rel_step_size=self.attack_rel_step, bf16=bf16)


@dataclass(frozen=True)
class Ensemble(Recipe):
    name: ClassVar[str] = "ensemble"
    summary: ClassVar[str] = "ensemble adversarial training (Tramer et al. 2018): FGSM-RS points from static models too"
    ensemble_models: tuple[str, ...] = option(
        (), "ensemble: a static pre-trained model (repeat)", flag="--ensemble", metavar="MODEL"
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "ensemble_models", tuple(str(p) for p in self.ensemble_models))
        if not self.ensemble_models:
            raise ValueError("the ensemble recipe needs static pre-trained models (ensemble_models / --ensemble)")

    def static_models(self) -> tuple[str, ...]:
        return self.ensemble_models

    def objective(self, *, bf16: bool, statics: Sequence[nn.Module] = ()) -> Objective:
        return ensemble(statics, bf16=bf16)


RECIPES: dict[str, type[Recipe]] = {cls.name: cls for cls in (Standard, FGSMMix, FGSMRS, PGDAT, TRADES, MART, Ensemble)}


def list_recipes() -> list[str]:
    """The names of the training recipes (`advmnist recipes`), in registry order: `create_recipe` accepts them."""
    return list(RECIPES)


def recipe_class(name: str) -> type[Recipe]:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    return RECIPES[name]


def create_recipe(name: str, **settings: Any) -> Recipe:
    """A registered recipe with its defaults overridden by `settings` (TOML keys); a foreign key is refused."""
    cls = recipe_class(name)
    own = set(cls.setting_names())
    foreign = sorted(set(settings) - own)
    if foreign:
        owners = {k: [n for n, c in RECIPES.items() if k in c.setting_names()] for k in foreign}
        why = "; ".join(
            f"{k} is a setting of {', '.join(v)}" if v else f"{k} is no recipe's setting" for k, v in owners.items()
        )
        raise ValueError(f"the {name} recipe does not take {', '.join(foreign)} ({why})")
    return cls(**settings)


def all_settings() -> dict[str, list[str]]:
    """Every recipe setting (TOML key) and the recipes that own it."""
    found: dict[str, list[str]] = {}
    for name, cls in RECIPES.items():
        for key in cls.setting_names():
            found.setdefault(key, []).append(name)
    return found
