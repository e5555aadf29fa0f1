"""ROC curves of a detector against each attack, drawn from `detect_results.json` (no torch, no pyplot)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from advmnist.io import read_json
from advmnist.reporting.curves import FORMATS, GROUP_COLORS
from advmnist.reporting.legible import SMALLEST_PT
from advmnist.reporting.plots import DPI, _figure, _save


def plot_roc(results: Mapping[str, Any] | str | Path, path: str | Path, *, title: str | None = None) -> Path:
    """One ROC curve per attack (clean vs successful adversarial images) and each one's operating point.

    The operating point is the calibrated threshold: the clean false-positive rate on the evaluated
    images against the attack's detection rate. The adaptive attack is drawn solid and thick.
    """
    data = read_json(results) if isinstance(results, str | Path) else results
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"plot path {path} must end in .png, .pdf or .svg")
    fig = _figure((7.5, 6))
    ax = fig.subplots()
    clean_fpr = data["clean"]["false_positive_rate"]["value"]
    for i, row in enumerate(data["attacks"]):
        color = GROUP_COLORS[i % len(GROUP_COLORS)]
        label = f"{row['attack']}: no successful adversarial images"
        if row["roc"]["fpr"]:
            label = f"{row['attack']} (AUC {row['auc']:.3f}, n={row['successful']})"
            width, linestyle = (2.5, "-") if row["adaptive"] else (1.5, "--")
            ax.plot(
                row["roc"]["fpr"], row["roc"]["tpr"], color=color, label=label, linewidth=width, linestyle=linestyle
            )
            ax.plot([clean_fpr], [row["detection_rate"]["value"]], marker="o", color=color)
        else:
            ax.plot([], [], color=color, label=label)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    ax.axvline(clean_fpr, color="black", linewidth=0.8, alpha=0.5, label=f"threshold: clean FPR {clean_fpr:.1%}")
    ax.set_xlabel("false positive rate (clean test images flagged)")
    ax.set_ylabel("detection rate (successful adversarial images flagged)")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"Feature squeezing ROC, Linf eps {data['eps']:g} (n={data['n']})")
    ax.legend(fontsize=SMALLEST_PT, loc="lower right")
    return _save(fig, path, DPI, fmt)
