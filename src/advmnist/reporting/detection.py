"""The report of `advmnist detect`: one table per attack, the ROC plot, and the verdict that counts.

Reads `detect_results.json` only (no torch), so `advmnist report` rebuilds it from a detect folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advmnist.errors import RunDirError
from advmnist.io import read_json
from advmnist.reporting.blocks import Block, write_reports
from advmnist.reporting.load import accuracy
from advmnist.reporting.tables import Table, fmt_acc

DETECTION = "detect_results.json"


def _load(folder: Path) -> dict[str, Any]:
    path = folder / DETECTION
    try:
        obj = read_json(path)
        for key in ("model", "eps", "threshold", "clean", "attacks", "verdict", "worst_case_accuracy_with_detector"):
            obj[key]  # noqa: B018  (a KeyError names what is missing)
        return obj
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{path}: unreadable or incomplete ({exc!r})") from None


def detection_table(obj: dict[str, Any]) -> Table:
    rows = []
    for row in obj["attacks"]:
        auc = f"{row['auc']:.3f}" if row.get("auc") is not None else "-"
        name = f"{row['attack']}: classifier + detector" if row["adaptive"] else row["attack"]
        rows.append(
            (
                name,
                fmt_acc(accuracy(row["robust_accuracy"])),
                str(row["successful"]),
                auc,
                fmt_acc(accuracy(row["detection_rate"])) if isinstance(row["detection_rate"], dict) else "-",
                fmt_acc(accuracy(row["accuracy_with_detector"])),
            )
        )
    clean = obj["clean"]
    return Table(
        f"Feature squeezing at Linf eps {obj.get('eps_label', obj['eps'])}, {obj['n']} test images",
        ("attack", "classifier accuracy", "successful", "AUC", "detected", "accuracy with detector"),
        tuple(rows),
        f"Threshold {obj['threshold']:.4g}, calibrated on {obj.get('calibration_images', 'held-out images')} for a "
        f"false-positive rate of {obj.get('fpr_target', 0):.0%}; on the evaluated clean images it flags "
        f"{fmt_acc(accuracy(clean['false_positive_rate']))}. 'Accuracy with detector': classified right or "
        "flagged. [a, b]: 95% Clopper-Pearson intervals.",
    )


def build_detection_report(folder: str | Path, *, as_html: bool = False) -> list[Path]:
    """Write report.md and report.txt (and report.html) beside `detect_results.json` and its roc.png."""
    folder = Path(folder)
    obj = _load(folder)
    table = detection_table(obj)
    fpr = fmt_acc(accuracy(obj["clean"]["false_positive_rate"]))
    closing = f"{obj['verdict']} The price: {fpr} of the clean test images are flagged (rejected) too."
    blocks = [
        Block("h1", f"Detection: feature squeezing on {obj['model']}"),
        Block("table", table),
        Block("p", closing),
        Block("plot", ("roc.png", "ROC curve per attack; the dot is the calibrated threshold.")),
    ]
    return write_reports(blocks, folder, plot_dir="", as_html=as_html)
