"""The text of matplotlib figures as the report draws them: sizes, tick labels, overlaps (Agg only)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.text import Text


@dataclass(frozen=True)
class Drawn:
    """A figure the report saved: its smallest text (points), its width (pixels) and its axes."""

    fig: Figure
    dpi: float
    smallest_pt: float
    natural_width_px: float


def drawn_texts(fig: Figure) -> list[Text]:
    """Every visible, non-empty text of `fig`, tick labels included (after a draw).

    matplotlib keeps the labels of ticks outside the view but never draws them: those are left out.
    """
    fig.canvas.draw()
    ticks, shown = set(), set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                ticks |= {id(tick.label1), id(tick.label2)}
            shown |= {id(t) for t in visible_tick_labels(axis)}
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return [t for t in texts if id(t) not in ticks or id(t) in shown]


def visible_tick_labels(axis: Axis) -> list[Text]:
    """The tick labels `axis` draws: non-empty, visible, at a tick inside the view interval."""
    low, high = sorted(axis.get_view_interval())
    pad = 1e-9 * max(1.0, abs(high - low))
    labels = []
    for tick in axis.get_major_ticks() + axis.get_minor_ticks():
        loc = tick.get_loc()
        if loc is None or not low - pad <= loc <= high + pad:
            continue
        labels += [t for t in (tick.label1, tick.label2) if t.get_visible() and t.get_text().strip()]
    return labels


def overlapping_tick_labels(ax: Axes, gap_pt: float = 2.0) -> list[tuple[str, str]]:
    """Pairs of x or y tick labels of `ax` whose drawn boxes overlap or come closer than `gap_pt`."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    pad = gap_pt / 2 * fig.dpi / 72
    pairs = []
    for axis in (ax.xaxis, ax.yaxis):
        labels = visible_tick_labels(axis)
        boxes = [t.get_window_extent(renderer).padded(pad) for t in labels]
        for i in range(len(labels)):
            for j in range(i + 1, len(labels)):
                if boxes[i].overlaps(boxes[j]):
                    pairs.append((labels[i].get_text(), labels[j].get_text()))
    return pairs


def smallest_pt(fig: Figure) -> float:
    return min(t.get_fontsize() for t in drawn_texts(fig))


@contextmanager
def capture_figures() -> Iterator[dict[str, Drawn]]:
    """Record every figure the reporting package saves, by file name, as it builds a report."""
    from advmnist.reporting import curves, plots

    saved: dict[str, Drawn] = {}
    original = plots._save

    def spy(fig: Figure, path: Path, dpi: int, fmt: str = "png") -> Path:
        written = original(fig, path, dpi, fmt)
        saved[Path(path).name] = Drawn(fig, dpi, smallest_pt(fig), fig.get_figwidth() * dpi)
        return written

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "_save", spy)
        mp.setattr(curves, "_save", spy)
        yield saved
