"""`advmnist run` (the seed study), `advmnist report` and `advmnist plot` (from result files only)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from advmnist.cli.common import command_line, data_dir_option, device, progress


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("report", parents=[common], help="rebuild tables, plots and report from a run folder")
    p.add_argument("run_dir", help="a seed-study run folder, or a folder of `advmnist compare` or `advmnist detect`")
    p.add_argument(
        "--html",
        action="store_true",
        help="also report.html: one self-contained page with a table of contents, the sanity checks one line each "
        "(details on a click) and the plots embedded",
    )
    p.set_defaults(func=run_report)

    p = sub.add_parser("plot", parents=[common], help="robust accuracy vs eps (95%% bands) from eval result files")
    p.add_argument("files", nargs="+", metavar="EVAL_RESULTS.json", help="eval_results.json or *_robust_results.json")
    p.add_argument("--out", required=True, help="image to write (.png, .pdf or .svg)")
    p.add_argument("--title", help="plot title")
    p.add_argument("--label", action="append", help="name of the next file's model (repeat once per file)")
    p.set_defaults(func=run_plot)

    p = sub.add_parser("run", parents=[common], help="the whole seed study")
    p.add_argument("--config", help="TOML file (default: the seed's settings, configs/seed.toml)")
    p.add_argument("--out", help="output folder (default runs/<name>)")
    p.add_argument("--quick", action="store_true", help="small subset (5k train, 1k test, 2 epochs), same outputs")
    p.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    data_dir_option(p)
    p.set_defaults(func=run_study)


def run_report(args: argparse.Namespace) -> int:
    from advmnist.reporting import build_report, headline_table, load_run
    from advmnist.reporting.comparison import COMPARISON, build_comparison_report
    from advmnist.reporting.detection import DETECTION, build_detection_report

    for marker, build in ((COMPARISON, build_comparison_report), (DETECTION, build_detection_report)):
        if (Path(args.run_dir) / marker).is_file():  # a folder of `advmnist compare` or `advmnist detect`
            files = build(args.run_dir, as_html=args.html)
            print(f"report: {Path(args.run_dir) / 'report.md'} ({len(files)} files written)")
            return 0
    files = build_report(args.run_dir, as_html=args.html)
    print(headline_table(load_run(args.run_dir)))
    print(f"report: {Path(args.run_dir) / 'report.md'} ({len(files)} files written)")
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from advmnist.errors import user_input
    from advmnist.reporting import plot_robustness

    with user_input():
        written = plot_robustness(args.files, args.out, labels=args.label, title=args.title)
    print(f"wrote {written}")
    return 0


def run_study(args: argparse.Namespace) -> int:
    from advmnist.config import load_config
    from advmnist.reporting import headline_table, load_run
    from advmnist.study import run_study

    cfg = load_config(args.config, data_dir=args.data_dir, checksums=args.checksums)
    if args.quick:
        cfg = cfg.quick_version()
    out = Path(args.out or Path("runs") / (cfg.name + ("-quick" if args.quick else "")))
    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"== {msg}", flush=True))
    result = run_study(
        cfg,
        out,
        overwrite=args.overwrite,
        resume=args.resume,
        device=device(args),
        progress=progress(args),
        command=command_line(),
        on_stage=say,
    )
    print(headline_table(load_run(result.out)))
    print(f"results: {result.out}/  report: {result.out / 'report.md'}")
    return 0
