"""Plots legible at the size report.html shows them: font floor, whole epochs, eps labels that fit.

report.html shows an image at most `IMAGE_MAX_WIDTH_PX` (1152) CSS px wide, so a figure W inches
wide, drawn at any DPI, shows a point of text as 1152 / (72 W) CSS px once scaled down to the page.
No text is smaller than `SMALLEST_PT` and no figure wider than `MAX_WIDTH_IN`, so the smallest
text is >= 9 * 1152 / (72 * 12) = 12 CSS px on the page (a figure narrower than the page is shown
at its natural size: at 120 DPI, 9 pt is 15 px).
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

SMALLEST_PT = 9  # bar values, legends, small titles; ticks and axis labels keep matplotlib's 10
MAX_WIDTH_IN = 12.0

TickFit = tuple[Sequence[float], Sequence[str], Sequence[int]]  # ticks, labels, priority


def fitting_tick_labels(ax: Axes, ticks: Sequence[float], labels: Sequence[str], priority: Sequence[int]) -> None:
    """A tick at every value, a label wherever it fits: labels are kept in `priority` order when
    their box (padded) clears every label kept before, the rest left blank, so none overlap.

    Call it last, when titles and legends are in place: it lays the figure out to measure.
    """
    ax.set_xticks(ticks, labels)
    fig = ax.figure
    if not isinstance(fig, Figure):  # a subfigure: its root figure lays it out
        raise TypeError("fitting_tick_labels needs an axes of a top-level Figure")
    fig.draw_without_rendering()  # lay out first: the boxes depend on the axes' final width
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    pad = 0.4 * fig.dpi * SMALLEST_PT / 72  # about half a character between two labels
    boxes = [t.get_window_extent(renderer).padded(pad, 0) for t in ax.xaxis.get_ticklabels()]
    kept: list[int] = []
    for i in priority:
        if all(not boxes[i].overlaps(boxes[j]) for j in kept):
            kept.append(i)
    ax.set_xticks(ticks, [label if i in kept else "" for i, label in enumerate(labels)])


def eps_priority(eps: Sequence[float], first: Sequence[float]) -> list[int]:
    """Indices of `eps`: those in `first` (in its order), then from the largest eps down."""
    chosen = list(dict.fromkeys(eps.index(e) for e in first if e in eps))
    rest = sorted((i for i in range(len(eps)) if i not in chosen), key=lambda i: -eps[i])
    return chosen + rest


def epoch_axis(ax: Axes) -> None:
    """Epochs are whole: ticks at integers only (never 1.5)."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
