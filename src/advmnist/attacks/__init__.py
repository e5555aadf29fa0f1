"""Attacks: `attack(model, x, y, threat, seed=...) -> AttackResult`, one contract for all."""

from advmnist.attacks.base import Attack, AttackResult, Oracle, eval_mode
from advmnist.attacks.gradient import FGSM, PGD, GradientAttack
from advmnist.attacks.norms import NORMS, Threat
from advmnist.attacks.registry import ATTACKS, attack_defaults, create_attack, list_attacks

__all__ = [
    "ATTACKS",
    "FGSM",
    "NORMS",
    "PGD",
    "Attack",
    "AttackResult",
    "GradientAttack",
    "Oracle",
    "Threat",
    "attack_defaults",
    "create_attack",
    "eval_mode",
    "list_attacks",
]
