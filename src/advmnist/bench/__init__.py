"""Benchmarks: every timing of the project, measured against bare loops and peers in the same run.

All benchmark code lives here, inside the package, because `advmnist bench` is a command users
run on their own machines (a top-level `benchmarks/` folder would not be installed with the
package). It writes where the user says (`--out`); inside this repository the default is
`docs/benchmarks*.md`, elsewhere the current folder.
"""

from __future__ import annotations

from pathlib import Path

from advmnist.bench.autoattack import race_autoattack, render_race
from advmnist.bench.suite import run_benchmarks

__all__ = ["default_output", "race_autoattack", "render_race", "run_benchmarks"]


def default_output(name: str, cwd: Path | None = None) -> Path:
    """`docs/<name>` when run from a checkout of this repository, else `<name>` in the current folder."""
    here = cwd or Path.cwd()
    project = here / "pyproject.toml"
    try:
        ours = project.is_file() and 'name = "advmnist"' in project.read_text(encoding="utf-8")
    except OSError:
        ours = False
    return here / "docs" / name if ours and (here / "docs").is_dir() else here / name
