"""The `advmnist` command: parse, build one spec, call one public API function, print, exit.

User mistakes (any `AdvmnistError`: a bad option, missing data, a folder that holds another run,
an output that cannot be written) print one line on stderr and exit with code 2 (`--debug` adds
the traceback). Any other exception is a bug in advmnist: it keeps its traceback, says so, and
exits with code 1.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from advmnist.cli.parser import build_parser

EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as the shell reports a command whose reader left
EXIT_INTERRUPTED = 130

__all__ = ["EXIT_USAGE", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    from advmnist.errors import AdvmnistError

    func: Callable[..., int] = args.func
    try:
        from advmnist import precision

        precision.mode()  # a bad ADVMNIST_BF16 is refused before anything is written
        code = func(args)
        sys.stdout.flush()  # a closed pipe shows up here, not at exit after main returned
        return code
    except BrokenPipeError:
        # the reader of stdout went away (`advmnist eval ... | head`); files are already written
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return EXIT_BROKEN_PIPE
    except AdvmnistError as exc:
        if args.debug:
            traceback.print_exception(exc)
        message = " ".join(str(exc).split("\n"))
        print(f"advmnist {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"advmnist {args.command}: interrupted (use --resume to continue)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # noqa: BLE001  # a bug: keep its traceback, say so
        traceback.print_exc()
        print(
            f"advmnist {args.command}: internal error: this is a bug in advmnist {_version()}, not a mistake of "
            "yours; please report it with the command line and the traceback above",
            file=sys.stderr,
        )
        return EXIT_BUG


def _version() -> str:
    from advmnist.manifest import package_version

    return package_version()
