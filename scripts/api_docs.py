"""Build the HTML API reference with pdoc: `python scripts/api_docs.py [OUT]` (`make docs`, OUT: build/api).

Pages: `advmnist` (every name in `advmnist.__all__`), `advmnist.attacks` (every attack class), and
one page per attack module (`advmnist.attacks.gradient`, `...apgd`, ...), listed from the attack
registry so that a new attack gets its page. An attack module without `__all__` is documented by
what it defines (its classes and functions), not by the aliases it imports (`Tensor = torch.Tensor`
would otherwise document torch's Tensor on every page). Any warning (pdoc's or an import's) fails the build:
each is printed on stderr, nothing is written, and the exit status is 1.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import warnings
from pathlib import Path

DEFAULT_OUT = Path("build/api")


def modules() -> list[str]:
    """The modules the reference documents: the public API, the attacks, one page per attack module."""
    from advmnist.attacks import ATTACKS

    return ["advmnist", "advmnist.attacks", *sorted({cls.__module__ for cls in ATTACKS.values()})]


def _defined_here(name: str) -> None:
    """Give a module without `__all__` one: the public classes and functions it defines itself."""
    import importlib
    import inspect

    module = importlib.import_module(name)
    if not hasattr(module, "__all__"):
        module.__all__ = [  # type: ignore[attr-defined]
            key
            for key, value in vars(module).items()
            if not key.startswith("_")
            and (inspect.isclass(value) or inspect.isfunction(value))
            and value.__module__ == name
        ]


def build(out: Path) -> list[str]:
    """Render the reference into `out` (replaced whole, only on success); return the warnings."""
    import pdoc
    import pdoc.render

    import advmnist

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pdoc.render.configure(docformat="markdown", footer_text=f"advmnist {advmnist.__version__}")
            names = modules()
            for name in names[2:]:
                _defined_here(name)
            pdoc.pdoc(*names, output_directory=Path(tmp))
        if caught:
            return [f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}" for w in caught]
        if out.exists():
            shutil.rmtree(out)
        Path(tmp).rename(out)
        Path(tmp).mkdir()  # the context removes its folder on exit
    return []


def main(argv: list[str]) -> int:
    if len(argv) > 1 or (argv and argv[0].startswith("-")):
        print("usage: python scripts/api_docs.py [OUT]  (default: build/api)", file=sys.stderr)
        return 2
    out = Path(argv[0]) if argv else DEFAULT_OUT
    problems = build(out)
    for line in problems:
        print(f"warning: {line}", file=sys.stderr)
    if problems:
        print(f"error: the API reference has {len(problems)} warning(s); nothing written", file=sys.stderr)
        return 1
    print(f"API reference: {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
