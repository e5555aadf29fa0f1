"""What every command shares: the parser class, the common options, the runtime, result lines."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any, NoReturn

from advmnist.tasks.specs import Runtime

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints usage too)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def common_options() -> Parser:
    p = Parser(add_help=False)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or info logs")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to compute (default auto)")
    p.add_argument("--debug", action="store_true", help="on an error, also print its traceback")
    return p


def data_dir_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="folder holding the IDX files (default: $ADVMNIST_DATA, then the cache)")
    p.add_argument("--checksums", help="JSON of file names + sha256 for an MNIST-class dataset of your own")


def command_line() -> str:
    return "advmnist " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def progress(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def device(args: argparse.Namespace) -> str:
    from advmnist.errors import user_input
    from advmnist.study import resolve_device

    with user_input("--device"):
        return resolve_device(args.device)


def runtime(args: argparse.Namespace) -> Runtime:
    return Runtime(device=device(args), progress=progress(args), command=command_line())


def accuracy_line(label: str, acc: Any) -> str:
    """`label  93.90%  [92.25%, 95.28%]  (n=1000)` from an `Accuracy` or its JSON object."""
    if isinstance(acc, dict):
        value, low, high, n = acc["value"], acc["ci_low"], acc["ci_high"], acc["n"]
    else:
        value, low, high, n = acc.value, acc.ci_low, acc.ci_high, acc.n
    return f"{label:<28} {value:7.2%}  [{low:.2%}, {high:.2%}]  (n={n})"
