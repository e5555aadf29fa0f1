"""The study configuration: TOML in, a validated frozen dataclass out, JSON into every run folder."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advmnist.errors import ConfigError
from advmnist.evaluation.epsilons import parse_eps
from advmnist.training.config import TrainConfig, loop_keys
from advmnist.training.recipes import all_settings

SEED_EPS = ("2/255", "4/255", "8/255")
# The seed's budgets plus the MNIST threat model's (Madry et al. 2018), to show the whole curve.
EVAL_EPS = (*SEED_EPS, "0.1", "0.2", "0.3")


@dataclass(frozen=True)
class ModelPlan:
    recipe: str
    epochs: int
    train_eps: str = "8/255"


@dataclass(frozen=True)
class StudyConfig:
    """The seed study: a baseline and a defended seed CNN, both attacked with FGSM at `eval_eps`.

    Defaults (`configs/*.toml` override any of them; `load_config` reads one):

    - `name="seed-study"` (the run's name in the report), `arch="seed-cnn"`, `seed=42`;
    - training: `batch_size=128`, SGD with `lr=0.01` and `momentum=0.9`, `precision="bf16"`;
      `baseline` is the "standard" recipe for 5 epochs, `defended` "fgsm-mix" for 8 (each a
      `ModelPlan`: recipe, epochs, training eps 8/255);
    - FGSM at `eval_eps` (2/255, 4/255, 8/255, 0.1, 0.2, 0.3), of which `seed_eps` (the first three)
      are the seed notebook's budgets that the report compares, in batches of `eval_batch_size=256`;
    - all of MNIST: `n_train=60_000`, `n_test=10_000` (`quick=True` marks the small subset of
      `quick_version`);
    - strong attacks `robust_attacks=("pgd", "autoattack")` at `robust_eps` (0.1, 0.2, 0.3) on every
      `robust_every=50`-th test image;
    - the data: `data_dir` ("" : `$ADVMNIST_DATA`, then the user cache) and `checksums` ("": MNIST).
    """

    name: str = "seed-study"
    arch: str = "seed-cnn"
    seed: int = 42
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    precision: str = "bf16"
    eval_eps: tuple[str, ...] = EVAL_EPS
    seed_eps: tuple[str, ...] = SEED_EPS
    eval_batch_size: int = 256
    n_train: int = 60_000
    n_test: int = 10_000
    quick: bool = False
    # Beyond the seed: strong attacks at the MNIST threat model on every `robust_every`-th test image.
    robust_attacks: tuple[str, ...] = ("pgd", "autoattack")
    robust_eps: tuple[str, ...] = ("0.1", "0.2", "0.3")
    robust_every: int = 50
    baseline: ModelPlan = field(default_factory=lambda: ModelPlan("standard", 5))
    defended: ModelPlan = field(default_factory=lambda: ModelPlan("fgsm-mix", 8))
    data_dir: str = ""
    checksums: str = ""

    def __post_init__(self) -> None:
        for label in (*self.eval_eps, *self.robust_eps, self.defended.train_eps, self.baseline.train_eps):
            if parse_eps(label) > 1:
                raise ValueError(f"eps {label!r} is above 1 (images live in [0, 1])")
        missing = [e for e in self.seed_eps if e not in self.eval_eps]
        if missing:
            raise ValueError(f"seed_eps {missing} must also be in eval_eps")
        from advmnist.attacks import create_attack

        for attack in self.robust_attacks:
            create_attack(attack)  # validates the name
        for name in ("n_train", "n_test", "eval_batch_size", "robust_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for plan in (self.baseline, self.defended):
            self.train_config(plan)  # validates recipe, epochs, lr, ...

    def train_config(self, plan: ModelPlan) -> TrainConfig:
        return TrainConfig(
            recipe=plan.recipe,
            epochs=plan.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            momentum=self.momentum,
            seed=self.seed,
            train_eps=parse_eps(plan.train_eps),
            precision=self.precision,
        )

    def quick_version(self) -> StudyConfig:
        """A small subset with the same outputs: 5,000 training and 1,000 test images, 2 epochs each."""
        return dataclasses.replace(
            self,
            quick=True,
            n_train=min(self.n_train, 5000),
            n_test=min(self.n_test, 1000),
            baseline=dataclasses.replace(self.baseline, epochs=min(self.baseline.epochs, 2)),
            defended=dataclasses.replace(self.defended, epochs=min(self.defended.epochs, 2)),
        )

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("eval_eps", "seed_eps", "robust_attacks", "robust_eps"):
            out[key] = list(getattr(self, key))
        return out


def config_from_dict(raw: dict[str, Any], where: str = "config") -> StudyConfig:
    """Build a StudyConfig from parsed TOML/JSON; unknown keys and bad values are ConfigErrors."""
    fields = {f.name for f in dataclasses.fields(StudyConfig)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = dict(raw)
    try:
        for key in ("baseline", "defended"):
            if key in kwargs:
                plan = kwargs[key]
                if not isinstance(plan, dict):
                    raise TypeError(f"[{key}] must be a table")
                valid = [f.name for f in dataclasses.fields(ModelPlan)]
                wrong = [k for k in plan if k not in valid]
                needed = [f.name for f in dataclasses.fields(ModelPlan) if f.default is dataclasses.MISSING]
                absent = [k for k in needed if k not in plan]
                if wrong or absent:
                    problem = f"unknown key(s) {', '.join(wrong)}" if wrong else f"missing key(s) {', '.join(absent)}"
                    raise ConfigError(f"{where}: [{key}]: {problem} (valid keys: {', '.join(valid)})")
                kwargs[key] = ModelPlan(**plan)
        for key in ("eval_eps", "seed_eps", "robust_attacks", "robust_eps"):
            if key in kwargs:
                kwargs[key] = tuple(str(e) for e in kwargs[key])
        return StudyConfig(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _read_toml(path: str | Path | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """The TOML file's table (empty when `path` is None) with the `overrides` that are not None."""
    raw = _read_preset(Path(path), ()) if path is not None else {}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return raw


def _read_preset(path: Path, included_by: tuple[Path, ...]) -> dict[str, Any]:
    """A TOML file's table on top of the one its `base = "other.toml"` key names (relative to the file).

    A preset that changes one setting of another names it as its base and holds only the change; keys
    of the file win over its base's, tables (`[baseline]`) merge key by key. A base chain may not loop.
    """
    where = f"{path} (base of {included_by[0]})" if included_by else str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: config file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    if "base" not in raw:
        return raw
    base = raw.pop("base")
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: base must be the name of another TOML file, not {base!r}")
    base_path = path.parent / base
    if base_path.resolve() in {p.resolve() for p in (path, *included_by)}:
        raise ConfigError(f"{path}: base {base!r} leads back to itself")
    return _merged(_read_preset(base_path, (path, *included_by)), raw)


def _merged(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`base` with `top`'s keys over it; a table in both merges key by key."""
    out = dict(base)
    for key, value in top.items():
        both_tables = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both_tables else value
    return out


def load_config(path: str | Path | None = None, **overrides: Any) -> StudyConfig:
    """Read a TOML file (or the defaults when `path` is None) and apply `overrides`."""
    raw = _read_toml(path, overrides)
    return config_from_dict(raw, str(path or "config"))


def train_config(path: str | Path | None = None, **overrides: Any) -> tuple[TrainConfig, str]:
    """A training preset (TOML: TrainConfig fields, recipe settings and `arch`) with `overrides` applied.

    Returns (config, arch). `train_eps` may be a fraction string ("8/255"); `epochs` defaults to 5
    for `standard` and 8 for the other recipes. Unknown keys, bad values and a setting of another
    recipe (given here or in the file itself) are ConfigErrors; another recipe's setting inherited
    from a `base` preset is dropped (the file changed the recipe).
    """
    raw = _read_toml(path, overrides)
    where = str(path or "train config")
    recipe_keys = all_settings()
    unknown = sorted(set(raw) - set(loop_keys()) - set(recipe_keys) - {"arch"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    arch = str(raw.pop("arch", "seed-cnn"))
    if "recipe" not in raw:
        raise ConfigError(f"{where}: no recipe (give --recipe or a preset with `recipe = ...`)")
    recipe = raw["recipe"]
    explicit = set(_top_keys(path)) | {k for k, v in overrides.items() if v is not None}
    for key in [k for k in raw if k in recipe_keys and recipe not in recipe_keys[k]]:
        if key in explicit:
            owners = ", ".join(recipe_keys[key])
            raise ConfigError(f"{where}: {key} is a setting of {owners}, not of the {recipe} recipe")
        del raw[key]  # inherited from a base preset of another recipe
    raw.setdefault("epochs", 5 if recipe == "standard" else 8)
    try:
        if "train_eps" in raw:
            raw["train_eps"] = parse_eps(str(raw["train_eps"]))
        return TrainConfig.from_dict(raw), arch
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _top_keys(path: str | Path | None) -> list[str]:
    """The keys written in the file itself (not inherited from its base)."""
    if path is None:
        return []
    try:
        return list(tomllib.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []  # _read_toml has reported it already
