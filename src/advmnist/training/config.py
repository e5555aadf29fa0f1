"""`TrainConfig`: the training loop's settings plus the recipe, everything that decides a training run.

Each field is declared once with `option(...)`: its name is the TOML key of a preset, its flag the
`advmnist train` flag. The recipe (a registered `Recipe` with its own settings) is a field too; in
JSON files the config is one flat object, `{"recipe": "trades", "epochs": 40, ..., "trades_beta": 6.0}`,
as `to_dict` writes it and `from_dict` reads it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from advmnist.options import fields_with_options, option
from advmnist.training.recipes import RECIPES, Recipe, create_recipe
from advmnist.training.schedules import LR_SCHEDULES

PRECISIONS = ("fp32", "bf16")
SELECTIONS = ("last", "best")


@dataclass(frozen=True)
class TrainConfig:
    """The loop's settings and the recipe: its name, and its settings (default: the recipe's defaults).

    Defaults: `recipe="standard"` (`recipe_settings=None`: that recipe's own defaults), `epochs=5`,
    `batch_size=128`, SGD at `lr=0.01` with `momentum=0.9` and `weight_decay=0`, `seed=42` (weights,
    batches and training attacks), Linf `train_eps=8/255`, `precision="bf16"` (autocast; or "fp32"),
    `channels_last=True` (faster convolutions on a CPU), test accuracy after every epoch
    (`eval_every_epoch=True`). The watchdog, when on, trips on a fall of `watchdog_drop=0.2` below
    the best validation PGD accuracy, measured on `watchdog_size=512` images.

    Beyond the seed: `lr_schedule`, `eps_ramp` (fraction of training over which the training eps
    grows linearly from 0), `val_size` training images held out for validation (never the test
    set), `watchdog` (catastrophic-overfitting guard, needs `val_size`), `select` (`best`: keep the
    epoch with the highest validation PGD accuracy), `ema` (validate, select and keep an
    exponential moving average of the weights), `shift` (random translations as augmentation),
    `awp` (adversarial weight perturbation, Wu et al. 2020) after the first `awp_warmup` of training.
    """

    recipe: str = option("standard", f"training recipe: {', '.join(RECIPES)} (see `advmnist recipes`)")
    epochs: int = option(5, "epochs (default 5 for standard, 8 for the other recipes)")
    batch_size: int = option(128, "images per step")
    lr: float = option(0.01, "peak learning rate")
    momentum: float = option(0.9, "SGD momentum")
    weight_decay: float = option(0.0, "SGD weight decay")
    lr_schedule: str = option("constant", f"learning-rate schedule: {', '.join(LR_SCHEDULES)}")
    seed: int = option(42, "seed of the initial weights, the batches and the training attacks")
    train_eps: float = option(8 / 255, "training eps, Linf (default 8/255; fractions allowed)", flag="--eps", text=True)
    eps_ramp: float = option(0.0, "fraction of training over which eps grows from 0")
    precision: str = option("bf16", "bf16 (autocast) or fp32")
    channels_last: bool = option(True, "NHWC memory format (faster convolutions on a CPU)", cli=False)
    eval_every_epoch: bool = option(True, "test accuracy after every epoch (else after the last)", cli=False)
    val_size: int = option(0, "training images held out for validation")
    watchdog: bool = option(False, "roll back and stop on a collapse of the validation PGD accuracy")
    watchdog_drop: float = option(0.2, "a fall of the validation PGD accuracy this far below its best", cli=False)
    watchdog_size: int = option(512, "validation images the per-epoch PGD check attacks", cli=False)
    select: str = option("last", "last or best (the epoch with the best validation PGD accuracy)")
    ema: float = option(0.0, "keep a moving average of the weights with this decay (e.g. 0.999; 0: off)")
    shift: int = option(0, "augment: translate training images by up to N pixels")
    awp: float = option(0.0, "adversarial weight perturbation: size per weight norm (e.g. 0.005; 0: off)")
    awp_warmup: float = option(0.0, "fraction of training before --awp starts")
    recipe_settings: Recipe = dataclasses.field(default=None)  # type: ignore[assignment]  # None: the defaults

    def __post_init__(self) -> None:
        if self.recipe_settings is None:
            object.__setattr__(self, "recipe_settings", create_recipe(self.recipe))
        if not isinstance(self.recipe_settings, Recipe) or self.recipe_settings.name != self.recipe:
            raise ValueError(f"recipe_settings must be the {self.recipe!r} recipe's, got {self.recipe_settings!r}")
        _choice("precision", self.precision, PRECISIONS)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _choice("select", self.select, SELECTIONS)
        if not isinstance(self.shift, int) or isinstance(self.shift, bool) or not 0 <= self.shift <= 8:
            raise ValueError(f"shift must be an integer in [0, 8] pixels, got {self.shift!r}")
        for name in ("epochs", "batch_size", "watchdog_size"):
            _integer(name, getattr(self, name), low=1)
        _integer("val_size", self.val_size, low=0)
        _number("lr", self.lr, low=0, strict=True)
        _number("momentum", self.momentum, low=0, high=1, open_high=True)
        _number("weight_decay", self.weight_decay, low=0)
        _number("train_eps", self.train_eps, low=0, high=1)
        _number("eps_ramp", self.eps_ramp, low=0, high=1)
        _number("watchdog_drop", self.watchdog_drop, low=0, high=1, strict=True)
        _number("ema", self.ema, low=0, high=1, open_high=True)
        _number("awp", self.awp, low=0, high=1)
        _number("awp_warmup", self.awp_warmup, low=0, high=1, open_high=True)
        if (self.watchdog or self.select == "best") and self.val_size == 0:
            raise ValueError("the watchdog and select='best' need a validation split (val_size > 0)")
        if self.recipe_settings.adversarial and self.train_eps == 0:
            raise ValueError(f"the {self.recipe} recipe needs train_eps > 0")

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"

    def to_dict(self) -> dict[str, Any]:
        """One flat JSON object: the recipe's name, the loop's settings, the recipe's settings."""
        loop = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "recipe_settings"}
        return {**loop, **self.recipe_settings.settings()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """The inverse of `to_dict`: loop settings by field name, recipe settings by their keys."""
        raw = dict(raw)
        name = raw.pop("recipe", "standard")
        own = {f.name for f in dataclasses.fields(cls)}
        recipe_cls = RECIPES.get(name) if isinstance(name, str) else None
        if recipe_cls is None:
            return cls(recipe=name, **raw)  # the recipe check names the bad value
        settings = {k: raw.pop(k) for k in list(raw) if k not in own}
        return cls(recipe=name, recipe_settings=create_recipe(name, **settings), **raw)


def loop_keys() -> list[str]:
    """The TOML keys of the loop's settings (the recipes' keys: `recipes.all_settings`)."""
    return [f.name for f, _, _ in fields_with_options(TrainConfig)]  # recipe_settings is not a key


def _choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")


def _integer(name: str, value: object, *, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _number(
    name: str,
    value: object,
    *,
    low: float,
    high: float = math.inf,
    strict: bool = False,
    open_high: bool = False,
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        assert isinstance(value, (int, float))
        ok = (value > low if strict else value >= low) and (value < high if open_high else value <= high)
    if not ok:
        bounds = f"{'(' if strict else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise ValueError(f"{name} must be a number in {bounds}, got {value!r}")
