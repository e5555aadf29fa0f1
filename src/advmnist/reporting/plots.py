"""The seed's seven plots, drawn from the files of a run folder.

No pyplot: each plot is a `matplotlib.figure.Figure` on its own Agg canvas, rendered to bytes and
written atomically, so importing or calling this module leaves matplotlib's global state alone.
The eps axis is linear (the MNIST budget 0.3 is ten times the seed's 8/255, and a linear axis shows
that honestly); ticks carry the eps labels of the result files, as many as fit side by side.

Every figure is legible at the size report.html shows it (see `legible`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from advmnist.errors import RunDirError
from advmnist.io import atomic_write_bytes
from advmnist.reporting.legible import (
    MAX_WIDTH_IN,
    SMALLEST_PT,
    TickFit,
    epoch_axis,
    eps_priority,
    fitting_tick_labels,
)
from advmnist.reporting.load import MODELS, RunFiles, Samples
from advmnist.reporting.tables import SEED_PUBLISHED, accuracy_at

DPI = 120
FINAL_DPI = 300
COLORS = {"baseline": "tab:blue", "defended": "tab:orange"}

# File name -> caption, in the order the report shows them.
PLOT_CAPTIONS: dict[str, str] = {
    "sample_mnist_images.png": "The first 16 test images with their labels.",
    "baseline_training_curves.png": "Baseline training: train/test accuracy and loss per epoch.",
    "adversarial_examples_fgsm.png": (
        "FGSM on the baseline: original, perturbation (colour scale = +-eps), adversarial image, "
        "with the clean and adversarial predictions."
    ),
    "robustness_curve_baseline.png": (
        "Baseline FGSM accuracy vs eps with 95% intervals; crosses are the seed's published numbers."
    ),
    "defense_comparison.png": (
        "Baseline vs defended at every eps (95% interval bars) and the defended model's gain in pp."
    ),
    "training_comparison.png": "Training time of both models, total and per epoch.",
    "final_robustness_comparison.png": (
        "Summary (300 DPI): accuracy vs eps, the seed's budgets, training curves, training time."
    ),
}


def _figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path, dpi: int, fmt: str = "png") -> Path:
    """Render `fig` in memory, then write it atomically (a kill never leaves half a PNG)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    return atomic_write_bytes(path, buf.getvalue())


def _curve_data(run: RunFiles, model: str) -> tuple[np.ndarray, ...]:
    """eps, value, ci_low, ci_high in percent, with the clean accuracy at eps = 0."""
    points = [(0.0, run.clean(model))] + [(p.eps, p.robust) for p in run.sweep(model)]
    eps = np.array([e for e, _ in points])
    acc = np.array([[a.value, a.ci_low, a.ci_high] for _, a in points]) * 100
    return eps, acc[:, 0], acc[:, 1], acc[:, 2]


def _eps_axis(ax: Axes, run: RunFiles) -> TickFit:
    """Draw the eps axis; return what `fitting_tick_labels` needs once the figure is complete."""
    eps = {p.eps_label: p.eps for m in MODELS for p in run.sweep(m)}
    ticks = [0.0, *eps.values()]
    seed_top = max((eps[k] for k in run.seed_eps() if k in eps), default=0.0)
    first = [0.0, eps.get("0.3", ticks[-1]), seed_top]  # clean, the MNIST budget, the seed's largest
    labels = ["0", *eps]
    ax.set_xticks(ticks, labels)
    ax.set_xlim(-0.01, max(ticks) * 1.04 + 0.005)
    seed = [eps[label] for label in run.seed_eps() if label in eps]
    if seed:
        ax.axvspan(0, max(seed), color="grey", alpha=0.12, label="seed's budgets")
    if "0.3" in eps:
        ax.axvline(
            eps["0.3"],
            color="black",
            linestyle=":",
            label="MNIST budget (Madry et al.)",
        )
    ax.set_xlabel("eps (Linf, pixels in [0, 1]; 0 = clean)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    return ticks, labels, eps_priority(ticks, first)


def _plot_curve(ax: Axes, run: RunFiles, model: str) -> None:
    eps, value, low, high = _curve_data(run, model)
    color = COLORS[model]
    ax.fill_between(eps, low, high, color=color, alpha=0.25, label=f"{model} 95% CI")
    ax.errorbar(
        eps,
        value,
        yerr=[value - low, high - value],
        color=color,
        marker="o",
        markersize=4,
        capsize=3,
        label=f"{model} (FGSM)",
    )


def _plot_seed_points(ax: Axes, run: RunFiles, model: str) -> None:
    eps = {p.eps_label: p.eps for p in run.sweep(model)}
    eps["clean"] = 0.0
    pts = [(eps[k], v) for k, v in SEED_PUBLISHED[model].items() if k in eps]
    if pts:
        ax.scatter(
            *zip(*pts, strict=True),
            marker="x",
            color="black",
            zorder=5,
            label=f"seed's {model} (published)",
        )


def _bars(ax: Axes, run: RunFiles, labels: Sequence[str]) -> None:
    """Grouped bars, baseline vs defended, at "clean" and the given eps labels."""
    x = np.arange(len(labels))
    for j, model in enumerate(MODELS):
        accs = [accuracy_at(run, model, k) for k in labels]
        value = np.array([100 * a.value if a else np.nan for a in accs])
        low = np.array([100 * a.ci_low if a else np.nan for a in accs])
        high = np.array([100 * a.ci_high if a else np.nan for a in accs])
        pos = x + (j - 0.5) * 0.4
        ax.bar(
            pos,
            value,
            width=0.38,
            color=COLORS[model],
            label=model,
            yerr=[value - low, high - value],
            capsize=3,
            ecolor="black",
        )
        for p, v, h in zip(pos, value, high, strict=True):
            if np.isfinite(v):
                ax.annotate(
                    f"{v:.1f}",
                    (p, h),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=SMALLEST_PT,
                )
    ax.set_xticks(x, labels)
    ax.set_xlabel("eps (Linf)")
    ax.set_ylabel("accuracy (%)")
    ax.grid(axis="y", alpha=0.3)


def _training_curves(axes: Sequence[Axes], run: RunFiles, models: Sequence[str]) -> None:
    """Accuracy on axes[0] and, if given, loss on axes[1], per epoch."""
    for model in models:
        history = run.training[model]["history"]
        epochs = [row["epoch"] for row in history]
        for split, style in (("train", "--"), ("test", "-")):
            color = COLORS[model]
            acc = [100 * row[f"{split}_accuracy"] for row in history]
            axes[0].plot(epochs, acc, style, marker="o", color=color, label=f"{model} {split}")
            if len(axes) > 1:
                loss = [row[f"{split}_loss"] for row in history]
                axes[1].plot(
                    epochs,
                    loss,
                    style,
                    marker="o",
                    color=color,
                    label=f"{model} {split}",
                )
    names = ("accuracy (%)", "cross-entropy loss")
    for ax, name in zip(axes, names, strict=False):
        epoch_axis(ax)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=SMALLEST_PT, handlelength=3)


def _time_bars(ax: Axes, run: RunFiles) -> None:
    seconds = [float(run.training[m]["training_seconds"]) for m in MODELS]
    bars = ax.bar(MODELS, seconds, color=[COLORS[m] for m in MODELS])
    for bar, model, s in zip(bars, MODELS, seconds, strict=True):
        epochs = run.training[model].get("epochs", len(run.training[model]["history"]))
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            s,
            f"{s:.1f} s\n{epochs} epochs",
            ha="center",
            va="bottom",
            fontsize=SMALLEST_PT,
        )
    ax.set_ylabel("training time (s)")
    ax.set_ylim(0, max(seconds) * 1.25 + 1e-9)
    ratio = f" (defended / baseline = {seconds[1] / seconds[0]:.2f}x)" if seconds[0] > 0 else ""
    ax.set_title("Training time" + ratio)
    ax.grid(axis="y", alpha=0.3)


def plot_samples(samples: Samples, path: Path) -> Path:
    x, y = samples.images("samples/x"), samples.array("samples/y")
    fig = _figure((12, 3.6))  # two rows of eight: a short strip on the page
    axes = fig.subplots(2, 8)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(x):
            ax.imshow(x[i], cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"label {int(y[i])}", fontsize=SMALLEST_PT + 1)
    fig.suptitle("MNIST test samples")
    return _save(fig, path, DPI)


def plot_baseline_training(run: RunFiles, path: Path) -> Path:
    fig = _figure((11, 4.2))
    axes = fig.subplots(1, 2)
    _training_curves(axes, run, ["baseline"])
    axes[0].set_title("Baseline accuracy per epoch")
    axes[1].set_title("Baseline loss per epoch")
    return _save(fig, path, DPI)


def _example_labels(run: RunFiles, samples: Samples) -> list[str]:
    """The seed's largest budget (8/255) and the MNIST budget 0.3, when the samples hold them."""
    seed = [k for k in run.seed_eps() if k in samples.eps_labels]
    wanted = ["8/255" if "8/255" in seed else (seed[-1] if seed else None), "0.3"]
    chosen = [k for k in wanted if k is not None and k in samples.eps_labels]
    if not (chosen or samples.eps_labels):
        raise RunDirError(f"{samples.path}: metadata 'eps_labels' is empty")
    return chosen or samples.eps_labels[-1:]


def required_sample_keys(run: RunFiles, samples: Samples) -> list[str]:
    """The tensors the plots read, so a caller can check them before writing anything."""
    keys = ["samples/x", "samples/y", "examples/x", "examples/y", "baseline/clean_pred"]
    for label in _example_labels(run, samples):
        k = samples.eps_index(label)
        keys += [f"baseline/adv/{k}", f"baseline/adv_pred/{k}"]
    return keys


def plot_adversarial_examples(run: RunFiles, samples: Samples, path: Path) -> Path:
    x, y = samples.images("examples/x"), samples.array("examples/y")
    clean_pred = samples.array("baseline/clean_pred")
    labels = _example_labels(run, samples)
    rows, cols = len(x), 1 + 2 * len(labels)
    fig = _figure((2.3 * cols, 2.2 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i in range(rows):
        axes[i, 0].imshow(x[i], cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_title(f"original: y={int(y[i])}, pred {int(clean_pred[i])}", fontsize=SMALLEST_PT)
    for j, label in enumerate(labels):
        k = samples.eps_index(label)
        x_adv = samples.images(f"baseline/adv/{k}")
        adv_pred = samples.array(f"baseline/adv_pred/{k}")
        delta = x_adv - x
        scale = max(float(np.abs(delta).max()), 1e-12)
        for i in range(rows):
            im = axes[i, 1 + 2 * j].imshow(delta[i], cmap="RdBu_r", vmin=-scale, vmax=scale)
            axes[i, 1 + 2 * j].set_title(f"perturbation, eps {label}", fontsize=SMALLEST_PT)
            axes[i, 2 + 2 * j].imshow(x_adv[i], cmap="gray", vmin=0, vmax=1)
            fooled = int(adv_pred[i]) != int(y[i])
            axes[i, 2 + 2 * j].set_title(
                f"adversarial: pred {int(adv_pred[i])}",
                fontsize=SMALLEST_PT,
                color="red" if fooled else "black",
            )
        fig.colorbar(
            im,
            ax=axes[:, 1 + 2 * j],
            location="bottom",
            shrink=0.9,
            label="adversarial - original",
        )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("FGSM adversarial examples on the baseline (red title: fooled)")
    return _save(fig, path, DPI)


def plot_baseline_curve(run: RunFiles, path: Path) -> Path:
    fig = _figure((8, 5.2))
    ax = fig.subplots()
    _plot_curve(ax, run, "baseline")
    _plot_seed_points(ax, run, "baseline")
    fit = _eps_axis(ax, run)
    ax.set_title("Baseline robust accuracy under FGSM")
    ax.legend(fontsize=SMALLEST_PT, loc="lower left")
    fitting_tick_labels(ax, *fit)
    return _save(fig, path, DPI)


def plot_defense_comparison(run: RunFiles, path: Path) -> Path:
    labels = ["clean", *run.eps_labels()]
    fig = _figure((MAX_WIDTH_IN, 7))  # one above the other: every eps label fits unrotated
    ax, gain_ax = fig.subplots(2, 1, height_ratios=[3, 2])
    _bars(ax, run, labels)
    ax.set_ylim(0, 110)
    ax.set_title("Accuracy under FGSM, 95% interval bars")
    ax.legend(fontsize=SMALLEST_PT, loc="lower left")
    eps_labels = run.eps_labels()
    gains = []
    for k in eps_labels:
        base, defended = accuracy_at(run, "baseline", k), accuracy_at(run, "defended", k)
        gains.append(100 * (defended.value - base.value) if base and defended else 0.0)
    colors = ["tab:green" if g >= 0 else "tab:red" for g in gains]
    columns = range(1, len(gains) + 1)  # under the bars of the same eps above (column 0 is clean)
    gain_ax.bar(columns, gains, color=colors)
    gain_ax.axhline(0, color="black", linewidth=0.8)
    gain_ax.set_xticks(columns, eps_labels)
    gain_ax.set_xlim(ax.get_xlim())
    gain_ax.set_xlabel("eps (Linf)")
    gain_ax.set_ylabel("defended - baseline (pp)")
    gain_ax.set_title("Gain from FGSM training")
    gain_ax.grid(axis="y", alpha=0.3)
    return _save(fig, path, DPI)


def plot_training_comparison(run: RunFiles, path: Path) -> Path:
    fig = _figure((11, 4.2))
    ax, epoch_ax = fig.subplots(1, 2)
    _time_bars(ax, run)
    for model in MODELS:
        history = run.training[model]["history"]
        epoch_ax.plot(
            [r["epoch"] for r in history],
            [r["seconds"] for r in history],
            marker="o",
            color=COLORS[model],
            label=model,
        )
    epoch_axis(epoch_ax)
    epoch_ax.set_ylabel("seconds")
    slowest = max(r["seconds"] for m in MODELS for r in run.training[m]["history"])
    epoch_ax.set_ylim(0, 1.15 * slowest + 1e-9)
    epoch_ax.set_title("Seconds per epoch")
    epoch_ax.grid(alpha=0.3)
    epoch_ax.legend(fontsize=SMALLEST_PT)
    return _save(fig, path, DPI)


def plot_final(run: RunFiles, path: Path) -> Path:
    fig = _figure((MAX_WIDTH_IN, 9.5))
    (curve_ax, seed_ax), (train_ax, time_ax) = fig.subplots(2, 2)
    for model in MODELS:
        _plot_curve(curve_ax, run, model)
    fit = _eps_axis(curve_ax, run)
    curve_ax.set_title("(a) FGSM accuracy vs eps")
    curve_ax.legend(fontsize=SMALLEST_PT, loc="lower left")
    seed_labels = ["clean", *(k for k in run.seed_eps() if run.point("baseline", k))]
    _bars(seed_ax, run, seed_labels)
    lows = [a.ci_low for m in MODELS for k in seed_labels if (a := accuracy_at(run, m, k))]
    bottom = max(0.0, np.floor(100 * min(lows)) - 3) if lows else 0.0
    seed_ax.set_ylim(bottom, 101)
    seed_ax.set_title(f"(b) The seed's budgets (y axis starts at {bottom:.0f}%)")
    seed_ax.legend(fontsize=SMALLEST_PT, loc="lower left")
    _training_curves([train_ax], run, MODELS)
    train_ax.set_title("(c) Accuracy per epoch")
    _time_bars(time_ax, run)
    time_ax.set_title("(d) " + time_ax.get_title())
    fig.suptitle(f"{run.name}: baseline vs FGSM-trained model", fontsize=14)
    fitting_tick_labels(curve_ax, *fit)
    return _save(fig, path, FINAL_DPI)


def write_plots(run: RunFiles, samples: Samples, plot_dir: Path) -> list[Path]:
    """Write the seven plots into `plot_dir`; return their paths in PLOT_CAPTIONS order."""
    names = list(PLOT_CAPTIONS)
    return [
        plot_samples(samples, plot_dir / names[0]),
        plot_baseline_training(run, plot_dir / names[1]),
        plot_adversarial_examples(run, samples, plot_dir / names[2]),
        plot_baseline_curve(run, plot_dir / names[3]),
        plot_defense_comparison(run, plot_dir / names[4]),
        plot_training_comparison(run, plot_dir / names[5]),
        plot_final(run, plot_dir / names[6]),
    ]
