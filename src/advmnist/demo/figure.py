"""The demo's result figure: per model, a 2x2 block (original, adversarial, perturbation with its
colour bar, class probabilities), the models one under another.

Sized for a phone first. The PNG is 460 px wide: a desktop shows it at that size, a 390 px phone
at ~0.7x (Gradio's margins), where the smallest text (11 pt = 15.3 px) is still ~10.7 px. The
layout is placed by hand, in pixels, so that every title is wrapped (by its measured width) to
fit its own column and no text can collide with another, whatever the model names.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

if TYPE_CHECKING:
    from advmnist.demo.engine import Outcome

DPI = 100
WIDTH = 460  # px
SMALL_PT = 11.0  # ticks, legend, colour bar: the smallest text in the figure
TITLE_PT = 12.0  # panel titles
HEADER_PT = 13.0  # the attack line and each model's name
LINE = 1.3  # line height, in font sizes
PANEL = 165  # px: each image panel is PANEL x PANEL
CENTRES = (WIDTH / 4, 3 * WIDTH / 4)  # the two columns' centres
COLUMN_TEXT = WIDTH / 2 - 8  # px a panel title may take (its column, less a margin)
TOP = 30  # px left free above the heading: Gradio lays its label and buttons over the image there


def render(image: np.ndarray, outcomes: Sequence[Outcome], heading: str, norm_name: str) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    build_figure(image, outcomes, heading, norm_name).savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _px(points: float) -> float:
    return points * DPI / 72


def build_figure(image: np.ndarray, outcomes: Sequence[Outcome], heading: str, norm_name: str) -> Figure:
    """(28, 28) clean image, one outcome per model -> the figure (Agg canvas attached)."""
    renderer = FigureCanvasAgg(Figure(dpi=DPI)).get_renderer()
    head = wrap(heading, WIDTH - 20, HEADER_PT, renderer, bold=True)
    blocks = [_texts(o, norm_name, renderer) for o in outcomes]
    heights = [_block_height(texts) for texts in blocks]
    top = TOP + _lines(head) * _px(HEADER_PT) * LINE + 10
    height = top + sum(heights)
    fig = Figure(figsize=(WIDTH / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.text(0.5, 1 - (TOP + 6) / height, head, ha="center", va="top", fontsize=HEADER_PT, weight="bold")
    y = top  # px from the top
    for o, texts, block in zip(outcomes, blocks, heights, strict=True):
        _model_block(fig, height, y, image, o, texts)
        y += block
    return fig


def _texts(o: Outcome, norm_name: str, renderer: RendererBase) -> dict[str, str]:
    """One model's header and panel titles, wrapped to their widths."""
    verdict = "fooled" if o.success else "not fooled"
    raw = {
        "model": f"model: {o.model}",
        "clean": f"original: {o.pred_before} ({o.probs_before.max():.0%})",
        "adv": f"adversarial: {o.pred_after} ({o.probs_after.max():.0%}), {verdict}",
        "pert": f"perturbation (adv\N{NO-BREAK SPACE}-\N{NO-BREAK SPACE}clean)\n{norm_name} = {o.distance:.3f}",
        "probs": "class probabilities",
    }
    wrapped = {key: wrap(text, COLUMN_TEXT, TITLE_PT, renderer) for key, text in raw.items()}
    wrapped["model"] = wrap(raw["model"], WIDTH - 20, HEADER_PT, renderer)
    return wrapped


def _lines(text: str) -> int:
    return text.count("\n") + 1


def _title_zone(texts: dict[str, str], *keys: str) -> float:
    return max(_lines(texts[k]) for k in keys) * _px(TITLE_PT) * LINE + 8


def _block_height(texts: dict[str, str]) -> float:
    header = _lines(texts["model"]) * _px(HEADER_PT) * LINE + 6
    row1 = _title_zone(texts, "clean", "adv") + PANEL
    row2 = _title_zone(texts, "pert", "probs") + PANEL + 70  # colour bar, its ticks and label below
    return header + row1 + row2 + 16


def _model_block(fig: Figure, height: float, y: float, image: np.ndarray, o: Outcome, texts: dict[str, str]) -> None:
    """Draw one model's block with its top `y` px below the figure's top."""

    def axes(centre: float, top: float, w: float, h: float) -> Axes:  # px -> figure fractions
        left, bottom = (centre - w / 2) / WIDTH, 1 - (top + h) / height
        return fig.add_axes((left, bottom, w / WIDTH, h / height))

    fig.text(0.5, 1 - y / height, texts["model"], ha="center", va="top", fontsize=HEADER_PT)
    y += _lines(texts["model"]) * _px(HEADER_PT) * LINE + 6 + _title_zone(texts, "clean", "adv")
    clean, adv = axes(CENTRES[0], y, PANEL, PANEL), axes(CENTRES[1], y, PANEL, PANEL)
    y += PANEL + _title_zone(texts, "pert", "probs")
    pert, probs = axes(CENTRES[0], y, PANEL, PANEL), axes(CENTRES[1] + 12, y, PANEL - 24, PANEL)
    bar = axes(CENTRES[0], y + PANEL + 8, PANEL, 9)
    clean.imshow(image, cmap="gray", vmin=0, vmax=1)
    adv.imshow(o.x_adv, cmap="gray", vmin=0, vmax=1)
    delta = o.x_adv - image
    scale = float(np.abs(delta).max()) or 1.0
    shown = pert.imshow(delta, cmap="seismic", vmin=-scale, vmax=scale)
    colours = fig.colorbar(shown, cax=bar, orientation="horizontal", ticks=[-scale, 0, scale], format="%.2f")
    colours.set_label("pixel change (red: brighter)", fontsize=SMALL_PT)
    colours.ax.tick_params(labelsize=SMALL_PT)
    for ax, key in ((clean, "clean"), (adv, "adv"), (pert, "pert"), (probs, "probs")):
        ax.set_title(texts[key], fontsize=TITLE_PT, pad=5)
        if ax is not probs:
            ax.set_xticks([])
            ax.set_yticks([])
    classes = np.arange(10)
    probs.bar(classes - 0.2, o.probs_before, width=0.4, label="before", color="tab:blue")
    probs.bar(classes + 0.2, o.probs_after, width=0.4, label="after", color="tab:red")
    probs.set_xticks(classes)
    probs.set_xlim(-0.6, 9.6)
    probs.set_ylim(0, 1.25)  # headroom for the legend
    probs.set_yticks([0, 0.5, 1])
    probs.tick_params(labelsize=SMALL_PT)
    probs.set_xlabel("class", fontsize=SMALL_PT, labelpad=1)
    probs.legend(
        fontsize=SMALL_PT,
        loc="upper center",
        ncols=2,
        frameon=False,
        handlelength=0.8,
        handletextpad=0.4,
        columnspacing=0.8,
    )


def wrap(text: str, max_px: float, size: float, renderer: RendererBase, *, bold: bool = False) -> str:
    """`text` broken into lines no wider than `max_px` when drawn at `size` points: its own line
    breaks kept, words (split at plain spaces; a no-break space binds) kept whole where they fit,
    a word wider than a line cut."""
    font = FontProperties(size=size, weight="bold" if bold else "normal")

    def width(s: str) -> float:
        return float(renderer.get_text_width_height_descent(s, font, ismath=False)[0])

    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if width(candidate) <= max_px:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for char in word:  # a word alone: as many characters per line as fit
                if line and width(line + char) > max_px:
                    lines.append(line)
                    line = ""
                line += char
        lines.append(line)
    return "\n".join(lines)
