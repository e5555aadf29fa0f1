"""Attacks: `attack(model, x, y, threat, seed=...) -> AttackResult`, one contract for all."""

from advmnist.attacks.apgd import APGD, APGDCE, APGDDLR, APGDT
from advmnist.attacks.base import Attack, AttackResult, eval_mode
from advmnist.attacks.cascade import AutoAttack, Cascade
from advmnist.attacks.cw import CWL2
from advmnist.attacks.deepfool import DeepFool
from advmnist.attacks.fab import FAB, FABT
from advmnist.attacks.gradient import BIM, FGSM, MIFGSM, PGD, GradientAttack
from advmnist.attacks.losses import LOSSES
from advmnist.attacks.norms import NORMS, NormOps, Threat
from advmnist.attacks.oracle import Oracle
from advmnist.attacks.registry import ATTACKS, attack_defaults, create_attack, list_attacks, parse_attacks
from advmnist.attacks.square import Square

__all__ = [
    "APGD",
    "APGDCE",
    "APGDDLR",
    "APGDT",
    "ATTACKS",
    "AutoAttack",
    "BIM",
    "CWL2",
    "Cascade",
    "DeepFool",
    "FAB",
    "FABT",
    "FGSM",
    "LOSSES",
    "MIFGSM",
    "NORMS",
    "NormOps",
    "PGD",
    "Square",
    "Attack",
    "AttackResult",
    "GradientAttack",
    "Oracle",
    "Threat",
    "attack_defaults",
    "create_attack",
    "parse_attacks",
    "eval_mode",
    "list_attacks",
]
