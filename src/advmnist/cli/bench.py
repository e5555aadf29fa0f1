"""`advmnist bench`: speed against bare loops and peers (`--autoattack`: against the official code)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from advmnist.cli.common import data_dir_option


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bench", parents=[common], help="measure speed against bare PyTorch loops")
    p.add_argument(
        "--out", help="markdown file to write (default: docs/benchmarks*.md in this repository, else ./benchmarks*.md)"
    )
    p.add_argument("--batches", type=int, default=30, help="batches per measurement")
    p.add_argument("--study", action="store_true", help="also time the whole seed study vs a bare loop (~15 min)")
    p.add_argument("--only", choices=("micro", "attacks"), help="run just one section (attacks: PGD-40 vs the peers)")
    p.add_argument("--autoattack", metavar="MODEL", help="instead: AutoAttack vs the official code on this checkpoint")
    p.add_argument("--autoattack-n", type=int, default=200, help="test images for --autoattack (default 200)")
    p.add_argument("--autoattack-eps", default="0.1", help="Linf eps for --autoattack (default 0.1)")
    data_dir_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from advmnist.bench import default_output, run_benchmarks
    from advmnist.errors import user_input
    from advmnist.tasks import DataOptions

    data = DataOptions(args.data_dir, args.checksums)
    if args.autoattack:
        return _autoattack(args, data)
    out = Path(args.out) if args.out else default_output("benchmarks.md")
    with user_input():
        data.dataset  # noqa: B018  # a bad checksums file fails here
        if args.batches < 1:
            raise ValueError(f"--batches must be >= 1, got {args.batches}")
    path = run_benchmarks(
        out, batches=args.batches, study=args.study, only=args.only, data_dir=args.data_dir, spec=data.dataset
    )
    print(Path(path).read_text(encoding="utf-8"))
    return 0


def _autoattack(args: argparse.Namespace, data: Any) -> int:
    from advmnist.bench import default_output, race_autoattack, render_race
    from advmnist.errors import UsageError, user_input
    from advmnist.evaluation import parse_eps
    from advmnist.io import atomic_write_text
    from advmnist.manifest import cpu_name
    from advmnist.models import load_model

    with user_input("--autoattack-eps"):
        eps = parse_eps(args.autoattack_eps)
    if not 0 < eps <= 1 or args.autoattack_n < 1:
        raise UsageError(f"need 0 < --autoattack-eps <= 1 and --autoattack-n >= 1, got {eps}, {args.autoattack_n}")
    model, _ = load_model(args.autoattack)
    test = data.load("test", args.autoattack_n)
    race = race_autoattack(model, test.x, test.y, eps)
    out = Path(args.out) if args.out else default_output("benchmarks-autoattack.md")
    command = f"advmnist bench --autoattack {args.autoattack} --autoattack-n {args.autoattack_n}"
    command += f" --autoattack-eps {args.autoattack_eps}"
    atomic_write_text(out, render_race(race, command, cpu_name()))
    print(out.read_text(encoding="utf-8"))
    return 0
