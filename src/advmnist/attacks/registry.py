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

ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls
    for cls in (FGSM, BIM, PGD, MIFGSM, APGDCE, APGDDLR, APGDT, Square, Cascade, AutoAttack, CWL2, DeepFool, FAB, FABT)
}


def list_attacks() -> list[str]:
    return sorted(ATTACKS)


def create_attack(name: str, **kwargs: Any) -> Attack:
    """Build a registered attack with its defaults overridden by `kwargs`."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose from {', '.join(list_attacks())}")
    try:
        return ATTACKS[name](**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad settings for attack {name!r}: {exc}") from None


def attack_defaults(name: str) -> dict[str, Any]:
    """The hyperparameters of an attack and their default values."""
    attack = create_attack(name)
    return {f.name: getattr(attack, f.name) for f in dataclasses.fields(attack)}
