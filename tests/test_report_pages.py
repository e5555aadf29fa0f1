"""The report as a reader meets it: plots legible at the size report.html shows them, checks folded.

Every figure the report saves is captured (Agg, no browser) and measured: whole epochs on epoch
axes, no two tick labels overlapping, and the smallest text >= 10 CSS px once the page scales the
image to the width its CSS gives images.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from advmnist.reporting import build_report
from figure_text import Drawn, capture_figures, overlapping_tick_labels, visible_tick_labels

try:
    from fake_run import make_fake_run
except ImportError:  # tests/ imported as a package
    from tests.fake_run import make_fake_run

MIN_TEXT_PX = 10


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Drawn]]:
    run_dir = make_fake_run(tmp_path_factory.mktemp("run") / "fake", robust=True)
    with capture_figures() as figures:
        build_report(run_dir, as_html=True)
    return run_dir, figures


def _page_image_width(page: str) -> int:
    """The widest an image is shown: the body's max-width in px, with figures given no side margin."""
    style = page[page.index("<style>") : page.index("</style>")]
    body = re.search(r"body \{[^}]*max-width: (\d+)px", style)
    assert body, "the page gives images no width in px"
    assert re.search(r"figure \{[^}]*margin: \S+ 0;", style)  # no 40 px default margins either side
    assert re.search(r"img \{[^}]*max-width: 100%", style)
    return int(body.group(1))


def test_every_plot_is_captured(report: tuple[Path, dict[str, Drawn]]) -> None:
    assert len(report[1]) == 8 and all(f.fig.axes for f in report[1].values())


def _epoch_labels(figures: dict[str, Drawn]) -> dict[str, list[str]]:
    return {
        f"{name}: {ax.get_title()}": [t.get_text() for t in visible_tick_labels(ax.xaxis)]
        for name, f in figures.items()
        for ax in f.fig.axes
        if ax.get_xlabel() == "epoch"
    }


def test_epoch_axes_show_whole_epochs_only(report: tuple[Path, dict[str, Drawn]]) -> None:
    labels = _epoch_labels(report[1])
    assert len(labels) == 4  # baseline accuracy and loss, seconds per epoch, the summary's (c)
    assert all(ticks and all(re.fullmatch(r"\d+", t) for t in ticks) for ticks in labels.values()), labels


def test_a_short_run_has_no_half_epochs(tmp_path: Path) -> None:
    """Two or three epochs are where matplotlib's default ticks say 1.5 and 2.5."""
    from advmnist.reporting.load import load_run
    from advmnist.reporting.plots import plot_baseline_training, plot_final, plot_training_comparison

    run_dir = make_fake_run(tmp_path / "run")
    for name, epochs in (("baseline_results.json", 2), ("defended_training_results.json", 3)):
        obj = json.loads((run_dir / name).read_text(encoding="utf-8"))
        obj["history"], obj["epochs"] = obj["history"][:epochs], epochs
        (run_dir / name).write_text(json.dumps(obj), encoding="utf-8")
    run = load_run(run_dir)
    with capture_figures() as figures:
        for plot in (plot_baseline_training, plot_training_comparison, plot_final):
            plot(run, tmp_path / f"{plot.__name__}.png")
    labels = _epoch_labels(figures)
    assert len(labels) == 4
    assert all(ticks and all(re.fullmatch(r"\d+", t) for t in ticks) for ticks in labels.values()), labels


def test_no_two_tick_labels_overlap_or_touch(report: tuple[Path, dict[str, Drawn]]) -> None:
    overlaps = {}
    for name, f in report[1].items():
        f.fig.canvas.draw()
        for ax in f.fig.axes:
            if pairs := overlapping_tick_labels(ax):
                overlaps[f"{name}: {ax.get_title()}"] = pairs
    assert not overlaps


def test_eps_axes_label_clean_the_seed_budget_and_the_mnist_budget(report: tuple[Path, dict[str, Drawn]]) -> None:
    for name in ("robust_curves.png", "robustness_curve_baseline.png"):
        ax = report[1][name].fig.axes[0]
        labels = [t.get_text() for t in visible_tick_labels(ax.xaxis)]
        assert {"0", "8/255", "0.1", "0.2", "0.3"} <= set(labels), (name, labels)
        assert all(t.get_rotation() == 0 for t in visible_tick_labels(ax.xaxis))


def test_the_smallest_text_is_10_css_px_at_the_width_the_page_shows(report: tuple[Path, dict[str, Drawn]]) -> None:
    run_dir, figures = report
    shown_max = _page_image_width((run_dir / "report.html").read_text(encoding="utf-8"))
    too_small = {}
    for name, f in figures.items():
        shown = min(f.natural_width_px, shown_max)  # a narrower image is shown at its natural size
        smallest_px = f.smallest_pt * f.dpi / 72 * shown / f.natural_width_px
        if smallest_px < MIN_TEXT_PX:
            too_small[name] = round(smallest_px, 1)
    assert not too_small


def test_a_flagged_check_is_one_open_line_naming_the_model(tmp_path: Path) -> None:
    run_dir = make_fake_run(tmp_path / "run")
    for name, passed in (("fgsm_attack_results.json", True), ("defended_fgsm_results.json", False)):
        obj = json.loads((run_dir / name).read_text(encoding="utf-8"))
        why = "a larger ball contains the smaller one"
        obj["checks"] = [{"name": "no rise", "passed": passed, "measured": "rises at 0.2", "why": why}]
        (run_dir / name).write_text(json.dumps(obj), encoding="utf-8")
    from advmnist.reporting.blocks import render_html_report, render_markdown_report
    from advmnist.reporting.load import load_run
    from advmnist.reporting.report import _blocks

    blocks = [b for b in _blocks(load_run(run_dir)) if b.kind != "plot"]  # no plots to draw: fast
    md = render_markdown_report(blocks)
    assert "1 of 1 checks flagged a problem" in md
    assert "- no rise: FLAGGED for defended (1 of 2 passed)\n  - baseline: passed (rises at 0.2)\n" in md
    assert md.count("a larger ball contains the smaller one") == 1  # the reason once, not per model
    page = render_html_report(blocks, run_dir)
    assert '<details class="folded" open><summary class="flagged">no rise: FLAGGED for defended' in page
