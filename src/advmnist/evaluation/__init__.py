"""Evaluation: robust accuracy per attack and eps, confidence intervals, per-sample rows."""

from advmnist.evaluation.epsilons import eps_label, parse_eps, parse_eps_list
from advmnist.evaluation.evaluate import EvalResult, Evaluation, evaluate
from advmnist.evaluation.stats import accuracy, clopper_pearson, wilson

__all__ = [
    "EvalResult",
    "Evaluation",
    "accuracy",
    "clopper_pearson",
    "eps_label",
    "evaluate",
    "parse_eps",
    "parse_eps_list",
    "wilson",
]
