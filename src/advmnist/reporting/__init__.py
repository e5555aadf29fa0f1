"""Tables, the seed's seven plots and the report, built from the files of a run folder only.

Needs no torch and no data: `build_report(run_dir)` reads the JSON files and samples.safetensors
described in docs/run-format.md and writes results_tables.txt, plots/*.png, report.md, report.txt.
`plot_robustness(files, path)` draws robust accuracy vs eps from `advmnist eval` result files.
"""

from __future__ import annotations

from advmnist.reporting.curves import plot_robust_curves, plot_robustness
from advmnist.reporting.load import (
    Accuracy,
    AttackCurve,
    RobustResults,
    RunFiles,
    Samples,
    SweepPoint,
    load_robust,
    load_run,
    load_samples,
)
from advmnist.reporting.plots import PLOT_CAPTIONS
from advmnist.reporting.report import build_report
from advmnist.reporting.tables import SEED_PUBLISHED, headline_table, tables_text

__all__ = [
    "PLOT_CAPTIONS",
    "SEED_PUBLISHED",
    "Accuracy",
    "AttackCurve",
    "RobustResults",
    "RunFiles",
    "Samples",
    "SweepPoint",
    "build_report",
    "headline_table",
    "load_robust",
    "load_run",
    "load_samples",
    "plot_robust_curves",
    "plot_robustness",
    "tables_text",
]
