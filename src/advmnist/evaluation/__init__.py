"""Evaluation: robust accuracy per attack and eps, confidence intervals, per-sample rows, typed results."""

from advmnist.evaluation.epsilons import eps_label, parse_eps, parse_eps_list
from advmnist.evaluation.evaluate import Plan, evaluate, run_plan
from advmnist.evaluation.results import EpsResult, EvalResult, Evaluation, summarize
from advmnist.evaluation.stats import Accuracy, accuracy, clopper_pearson, wilson

__all__ = [
    "Accuracy",
    "EpsResult",
    "EvalResult",
    "Evaluation",
    "Plan",
    "accuracy",
    "clopper_pearson",
    "eps_label",
    "evaluate",
    "parse_eps",
    "parse_eps_list",
    "run_plan",
    "summarize",
    "wilson",
]
