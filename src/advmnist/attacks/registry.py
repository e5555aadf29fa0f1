"""The attack registry: feeds `advmnist attacks`, the CLI choices and the contract tests."""

from __future__ import annotations

import dataclasses
from typing import Any

from advmnist.attacks.apgd import APGDCE, APGDDLR, APGDT
from advmnist.attacks.base import Attack
from advmnist.attacks.cascade import AutoAttack, Cascade
from advmnist.attacks.cw import CWL2
from advmnist.attacks.deepfool import DeepFool
from advmnist.attacks.fab import FAB, FABT
from advmnist.attacks.gradient import BIM, FGSM, MIFGSM, PGD
from advmnist.attacks.square import Square
from advmnist.specs import parse_spec

ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls
    for cls in (FGSM, BIM, PGD, MIFGSM, APGDCE, APGDDLR, APGDT, Square, Cascade, AutoAttack, CWL2, DeepFool, FAB, FABT)
}


def list_attacks() -> list[str]:
    """The names of the registered attacks, sorted: what `create_attack` and `--attack` accept."""
    return sorted(ATTACKS)


def create_attack(name: str, **kwargs: Any) -> Attack:
    """Build a registered attack with its defaults overridden by `kwargs`.

    A cascade's `attacks` may be given by name (`create_attack("cascade", attacks=("apgd-ce",
    "apgd-t"))`): each becomes that attack with its defaults, as the cascade itself holds objects.
    """
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose from {', '.join(list_attacks())}")
    if issubclass(ATTACKS[name], Cascade) and "attacks" in kwargs:
        kwargs["attacks"] = _members_by_name(kwargs["attacks"])
    try:
        return ATTACKS[name](**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad settings for attack {name!r}: {exc}") from None


def _members_by_name(attacks: object) -> object:
    """A cascade's members from names (`"apgd-ce"` or a tuple of names and attacks); other values pass."""
    items = (attacks,) if isinstance(attacks, str) else attacks
    if not isinstance(items, (tuple, list)):
        return attacks  # the cascade refuses it with its own message
    if any(isinstance(a, str) and issubclass(ATTACKS.get(a, Attack), Cascade) for a in items):
        raise ValueError(f"a cascade needs a non-empty list of other attacks, got {list(items)}")
    return tuple(create_attack(a) if isinstance(a, str) else a for a in items)


def parse_attacks(text: str, **common: Any) -> list[Attack]:
    """Attacks from a comma list with optional settings in brackets, e.g.
    `"fgsm,pgd[steps=50,restarts=10],cascade[attacks=apgd-ce+apgd-t]"`. Values are read as int,
    float or true/false, `a+b` as a tuple, else kept as strings; `common` settings (e.g.
    `bf16=True`) go to every attack."""
    specs, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth < 0 or depth > 1:
            raise ValueError(f"unbalanced brackets in attack list {text!r}")
        if char == "," and depth == 0:
            specs.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise ValueError(f"unbalanced brackets in attack list {text!r}")
    specs.append(current)
    attacks = []
    for spec in specs:
        name, settings = parse_spec(spec, "attack setting")
        attacks.append(create_attack(name, **{**common, **settings}))
    return attacks


def attack_defaults(name: str) -> dict[str, Any]:
    """The hyperparameters of an attack and their default values (a cascade's members by name)."""
    attack = create_attack(name)
    return {f.name: _by_name(getattr(attack, f.name)) for f in dataclasses.fields(attack)}


def _by_name(value: Any) -> Any:
    if isinstance(value, tuple) and value and all(isinstance(v, Attack) for v in value):
        return tuple(v.name for v in value)
    return value
