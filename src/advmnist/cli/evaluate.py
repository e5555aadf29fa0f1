"""`advmnist eval`, `advmnist detect` and `advmnist compare`: flags generated from their specs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from advmnist.cli.common import accuracy_line, runtime
from advmnist.options import add_options, given


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    from advmnist.tasks import CompareSpec, DetectSpec, EvalSpec

    p = sub.add_parser("eval", parents=[common], help="attack a saved model at several eps")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="a .safetensors model (with its .json card)")
    which.add_argument("--model-factory", help="any classifier on [0, 1] images: 'package.module:function'")
    p.add_argument("--weights", help="safetensors weights for --model-factory")
    add_options(p, EvalSpec)
    p.set_defaults(func=run_eval)

    p = sub.add_parser("detect", parents=[common], help="feature squeezing detector vs plain and adaptive attacks")
    p.add_argument("--model", required=True, help="a .safetensors model (with its .json card)")
    add_options(p, DetectSpec, skip=("resume",))
    p.set_defaults(func=run_detect)

    p = sub.add_parser("compare", parents=[common], help="evaluate several models alike: tables, plot, report")
    p.add_argument("--model", action="append", required=True, metavar="NAME=PATH", help="a checkpoint (repeat)")
    add_options(p, CompareSpec)
    p.set_defaults(func=run_compare)


def run_eval(args: argparse.Namespace) -> int:
    from advmnist.tasks import EvalSpec, ModelSource, evaluate_checkpoint

    model = ModelSource(args.model, args.model_factory, args.weights)
    result = evaluate_checkpoint(EvalSpec(model, runtime=runtime(args), **given(EvalSpec, args)))
    print(accuracy_line("clean", result.clean_accuracy))
    for attack in result.attacks:
        for r in attack.results:
            parts = set(r.broken_by) - {attack.attack}  # a cascade: which of its attacks broke the points
            by = ", ".join(f"{k} {v}" for k, v in r.broken_by.items()) if parts else ""
            line = accuracy_line(f"{attack.attack} {result.norm} eps {r.eps_label}", r.robust_accuracy)
            print(line + (f"  broken by: {by}" if by else ""))
        print(
            f"  {attack.attack}: {attack.seconds:.1f} s, {attack.forwards} forward / {attack.backwards} backward passes"
        )
    for check in result.checks:
        status = "ok  " if check.passed else "FLAG"
        print(f"check {status} {check.name}: {check.measured}" + ("" if check.passed else f" ({check.why})"))
    print(f"results: {Path(args.out) / 'eval_results.json'}")
    return 0


def run_detect(args: argparse.Namespace) -> int:
    from advmnist.tasks import DetectSpec, ModelSource, detect_checkpoint

    result = detect_checkpoint(DetectSpec(ModelSource(args.model), runtime=runtime(args), **given(DetectSpec, args)))
    eps = result["eps_label"]
    for row in result["attacks"]:
        acc = accuracy_line(f"{row['attack']} linf eps {eps}", row["accuracy_with_detector"]) + " with detector"
        if row["adaptive"]:
            evaded = row["evasion_rate"]
            print(f"{acc}; evades classifier+detector {evaded['value']:.2%}  <- the number that counts")
        else:
            auc = "n/a" if row["auc"] is None else f"{row['auc']:.3f}"
            tpr = "n/a" if row["detection_rate"] is None else f"{row['detection_rate']['value']:.2%}"
            print(f"{acc}; AUC {auc}, TPR at threshold {tpr} (of {row['successful']} successful)")
    print(f"results: {Path(args.out) / 'detect_results.json'}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from advmnist.errors import UsageError
    from advmnist.tasks import CompareSpec, compare_models

    pairs = [spec.split("=", 1) for spec in args.model]
    if any(len(p) != 2 for p in pairs):
        raise UsageError(f"--model takes NAME=PATH, got {' '.join(args.model)}")
    models = tuple((name, path) for name, path in pairs)
    files = compare_models(CompareSpec(models, runtime=runtime(args), **given(CompareSpec, args)))
    print((Path(args.out) / "report.txt").read_text())
    print(f"report: {Path(args.out) / 'report.md'} ({len(files)} files written)")
    return 0
