"""Robust accuracy vs eps with 95% interval bands: for a run's strong attacks and for `advmnist plot`.

`plot_robust_curves` draws any list of `(label, [(eps, Accuracy), ...])` series; the two callers
below only turn result files into series. Like the seed's plots, no pyplot and an atomic write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from matplotlib.axes import Axes

from advmnist.reporting.legible import SMALLEST_PT, TickFit, eps_priority, fitting_tick_labels
from advmnist.reporting.load import Accuracy, RobustResults, RunFiles, load_robust
from advmnist.reporting.plots import DPI, _figure, _save
from advmnist.reporting.tables import attack_name, ordinal_every

Series = tuple[str, Sequence[tuple[float, Accuracy]]]
ResultSource = str | Path | Mapping[str, Any]

ROBUST_PLOT = "robust_curves.png"
ROBUST_CAPTION = (
    "Robust accuracy vs eps under FGSM and the strong attacks, both models; shaded: 95% intervals. "
    "The strong attacks run on a subset, hence their wider bands."
)
GROUP_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:cyan")
STYLES = (("--", "s"), ("-", "o"), ("-.", "^"), (":", "D"), ("-", "v"), ("--", "P"))  # (linestyle, marker)
FORMATS = ("png", "pdf", "svg")
MNIST_LINF = 0.3  # the standard MNIST Linf budget (Madry et al. 2018)


def eps_tick(eps: float) -> str:
    """A tick label: a decimal when the eps is one ("0.3"), else k/255 when it is one ("8/255")."""
    if eps == 0:
        return "0"
    if abs(eps - round(eps, 3)) > 1e-12 and abs(eps * 255 - round(eps * 255)) < 1e-6:
        return f"{round(eps * 255)}/255"
    return f"{eps:g}"


def plot_robust_curves(
    series: Sequence[Series],
    path: str | Path,
    *,
    title: str = "Robust accuracy vs eps",
    groups: Sequence[str] | None = None,
    norm: str = "linf",
) -> Path:
    """One line per series, its 95% interval shaded; series of the same group share a colour.

    `groups` (one per series, default: each series its own) lets a model's attacks share a colour
    and differ in line style. The format follows the suffix of `path` (png, pdf or svg).
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"plot path {path} must end in .png, .pdf or .svg")
    if not series:
        raise ValueError("nothing to plot: no series given")
    groups = list(groups) if groups is not None else [label for label, _ in series]
    if len(groups) != len(series):
        raise ValueError(f"need one group per series, got {len(groups)} for {len(series)}")
    fig = _figure((10, 5.6))
    ax = fig.subplots()
    order = list(dict.fromkeys(groups))
    seen: dict[str, int] = {}
    for (label, points), group in zip(series, groups, strict=True):
        color = GROUP_COLORS[order.index(group) % len(GROUP_COLORS)]
        linestyle, marker = STYLES[seen.get(group, 0) % len(STYLES)]
        seen[group] = seen.get(group, 0) + 1
        _draw(ax, label, points, color, linestyle, marker)
    fit = _robust_axis(ax, [e for _, points in series for e, _ in points], norm)
    ax.set_title(title)
    ax.legend(
        fontsize=SMALLEST_PT,
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        title="shaded: 95% CI",
        title_fontsize=SMALLEST_PT,
    )
    fitting_tick_labels(ax, *fit)
    return _save(fig, path, DPI, fmt)


def _draw(ax: Axes, label: str, points: Sequence[tuple[float, Accuracy]], color: str, ls: str, marker: str) -> None:
    pts = sorted(points, key=lambda p: p[0])
    eps = np.array([e for e, _ in pts])
    acc = np.array([[a.value, a.ci_low, a.ci_high] for _, a in pts]).reshape(-1, 3) * 100  # (P, 3)
    value, low, high = acc[:, 0], acc[:, 1], acc[:, 2]
    ax.fill_between(eps, low, high, color=color, alpha=0.15, linewidth=0)
    ax.plot(eps, value, linestyle=ls, marker=marker, markersize=4, color=color, label=label)
    if len(pts) == 1:  # a band needs two points: show the lone interval as a bar
        ax.errorbar(eps, value, yerr=[value - low, high - value], color=color, capsize=3, linestyle="none")


def _robust_axis(ax: Axes, eps: list[float], norm: str) -> TickFit:
    ticks = sorted({0.0, *eps})
    ax.set_xlim(-0.01, max(ticks) * 1.04 + 0.005)
    if norm == "linf" and any(abs(e - MNIST_LINF) < 1e-9 for e in ticks):
        ax.axvline(MNIST_LINF, color="black", linestyle=":", label="MNIST budget (Madry et al.)")
    ax.set_xlabel(f"eps ({'Linf' if norm == 'linf' else norm.upper()}, pixels in [0, 1]; 0 = clean)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    first = [0.0, MNIST_LINF if norm == "linf" else ticks[-1]]  # clean, the MNIST budget, then the largest down
    return ticks, [eps_tick(e) for e in ticks], eps_priority(ticks, first)


def _with_clean(results: RobustResults, points: Sequence[tuple[float, Accuracy]]) -> list[tuple[float, Accuracy]]:
    """eps 0 is the clean accuracy: every curve starts there."""
    return list(points) if any(e == 0 for e, _ in points) else [(0.0, results.clean), *points]


def _series(results: RobustResults, name: str) -> list[Series]:
    return [
        (f"{name} {attack_name(curve)}", _with_clean(results, [(p.eps, p.robust) for p in curve.points]))
        for curve in results.attacks
    ]


def plot_run_robust(run: RunFiles, path: Path) -> Path:
    """robust_curves.png of a run: per model, FGSM over its whole sweep, then each strong attack."""
    series: list[Series] = []
    groups: list[str] = []
    for model, results in run.robust.items():
        fgsm = [(0.0, run.clean(model))] + [(p.eps, p.robust) for p in run.sweep(model)]
        model_series = [(f"{model} FGSM (n={run.clean(model).n})", fgsm), *_series(results, model)]
        series += model_series
        groups += [model] * len(model_series)
    subsets = sorted({f"n={r.n}, {ordinal_every(r.every)}" for r in run.robust.values()})
    title = f"{run.name}: robust accuracy vs eps (strong attacks on {'; '.join(subsets)})"
    return plot_robust_curves(series, path, title=title, groups=groups)


def plot_robustness(
    files_or_dicts: ResultSource | Sequence[ResultSource],
    path: str | Path,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Robust accuracy vs eps with 95% bands for every model x attack of `eval_results.json` files.

    Also reads a run's `<model>_robust_results.json` and FGSM sweep files, or their parsed JSON
    objects. `labels` name the files (default: the basename of each file's "model"). Every file is
    validated before anything is written; a bad one raises `RunDirError` naming it. `title`
    defaults to "Robust accuracy vs eps". Returns `path`, the PNG written.
    """
    sources = [files_or_dicts] if isinstance(files_or_dicts, str | Path | Mapping) else list(files_or_dicts)
    if not sources:
        raise ValueError("nothing to plot: give at least one result file")
    if labels is not None and len(labels) != len(sources):
        raise ValueError(f"got {len(labels)} label(s) for {len(sources)} result file(s)")
    loaded = [
        load_robust(s, None if isinstance(s, str | Path) else f"result object {i + 1}") for i, s in enumerate(sources)
    ]
    norms = sorted({r.norm for r in loaded})
    if len(norms) > 1:
        raise ValueError(f"the files mix norms ({', '.join(norms)}); plot each norm on its own")
    names = list(labels) if labels is not None else _names(loaded, sources)
    series: list[Series] = []
    groups: list[str] = []
    for results, name in zip(loaded, names, strict=True):
        model_series = _series(results, name)
        series += model_series
        groups += [name] * len(model_series)
    return plot_robust_curves(series, path, title=title or "Robust accuracy vs eps", groups=groups, norm=norms[0])


def _names(loaded: list[RobustResults], sources: list[ResultSource]) -> list[str]:
    """The basename of each model; two alike get the model's folder, else the file's, else a number."""
    base = [_basename(r.model) for r in loaded]
    paths = [Path(s) if isinstance(s, str | Path) else None for s in sources]
    options = [
        [
            f"{PurePath(r.model).parent.name}/{b}" if PurePath(r.model).parent.name else ""
            for r, b in zip(loaded, base, strict=True)
        ],
        [f"{p.parent.name}/{b}" if p and p.parent.name else "" for p, b in zip(paths, base, strict=True)],
        [f"{b} ({p.stem})" if p else "" for p, b in zip(paths, base, strict=True)],
    ]
    names = []
    for i, name in enumerate(base):
        same = [j for j, other in enumerate(base) if other == name and j != i]
        unique = (o[i] for o in options if o[i] and all(o[j] != o[i] for j in same))
        names.append(next(unique, f"{name} #{i + 1}") if same else name)
    return names


def _basename(model: str) -> str:
    name = PurePath(model).name or model
    for suffix in (".safetensors", ".json"):
        name = name.removesuffix(suffix)
    return name
