"""`advmnist train` and `advmnist recipes`: flags generated from the recipes' and the loop's settings."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from advmnist.cli.common import runtime
from advmnist.options import Declared, add_fields, add_options, fields_with_options, flag_of, given, given_fields


def recipe_fields() -> list[Declared]:
    """Every recipe setting once (recipes that share one share its declaration)."""
    from advmnist.training import RECIPES

    seen: dict[str, Declared] = {}
    for cls in RECIPES.values():
        for declared in fields_with_options(cls):
            seen.setdefault(declared[0].name, declared)
    return list(seen.values())


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    from advmnist.tasks import TrainSpec
    from advmnist.training import TrainConfig

    p = sub.add_parser("train", parents=[common], help="train one model (see `advmnist recipes`)")
    p.add_argument("--config", help="a TOML preset (configs/*.toml); flags given here override it")
    add_fields(p, fields_with_options(TrainConfig))
    add_fields(
        p.add_argument_group("recipe settings (each recipe takes its own; see `advmnist recipes`)"), recipe_fields()
    )
    add_options(p, TrainSpec)
    p.set_defaults(func=run)

    p = sub.add_parser("recipes", parents=[common], help="list the training recipes and their settings")
    p.set_defaults(func=list_recipes)


def run(args: argparse.Namespace) -> int:
    from advmnist.config import train_config
    from advmnist.tasks import TrainSpec, train_model
    from advmnist.training import TrainConfig

    flags = given_fields(fields_with_options(TrainConfig), vars(args)) | given_fields(recipe_fields(), vars(args))
    cfg, arch = train_config(args.config, arch=args.arch, **flags)
    options = given(TrainSpec, args) | {"arch": arch}
    result = train_model(TrainSpec(cfg, runtime=runtime(args), **options))
    last = result.history[-1] if result.history else {}
    clean = result.clean_accuracy["value"] if result.clean_accuracy else float("nan")
    best = cfg.select == "best" and result.best_epoch not in (0, len(result.history))
    kept = f" (the saved model is epoch {result.best_epoch}'s)" if best else ""
    print(
        f"trained {arch} ({cfg.recipe}, {len(result.history)} epochs, {result.seconds:.0f} s): "
        f"test accuracy {clean:.2%}{kept}"
    )
    if "val_pgd" in last:
        print(f"validation: clean {last['val_clean']:.2%}, PGD-10 at eps {cfg.train_eps:.4g} {last['val_pgd']:.2%}")
    if result.collapse is not None:
        c = result.collapse
        print(f"watchdog: collapse at epoch {c['epoch']}; rolled back to epoch {c['rolled_back_to_epoch']} and stopped")
    print(f"model: {Path(args.out) / 'model.safetensors'}")
    return 0


def list_recipes(args: argparse.Namespace) -> int:
    from advmnist.training import RECIPES, TrainConfig

    for name, cls in RECIPES.items():
        print(f"{name:<10} {cls.summary}")
        for f, meta, _ in fields_with_options(cls):
            default = "(required)" if f.default == () else repr(f.default)
            print(f"{'':<11}{f.name} = {default:<10} {flag_of(f):<15} {meta.help.split(': ', 1)[-1]}")
    loop = ", ".join(
        f"{f.name}={f.default!r}"
        for f, meta, _ in fields_with_options(TrainConfig)
        if f.name not in ("recipe", "recipe_settings")
    )
    print(f"\nevery recipe also takes the loop's settings: {loop}")
    return 0
