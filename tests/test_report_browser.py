"""The HTML report in a real browser (Debian's Chromium via Playwright) at desktop size, 1280x900.

A reader finds each section from a table of contents, scans the sanity checks as one line each
(details on a click, no script), and can read every plot at the size the page shows it. One report
and one browser serve the whole module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from figure_text import Drawn, capture_figures

try:
    from fake_run import make_fake_run
except ImportError:  # tests/ imported as a package
    from tests.fake_run import make_fake_run

VIEWPORT = {"width": 1280, "height": 900}
MIN_TEXT_PX = 10  # the smallest text a reader should meet on the page, in CSS pixels
# The six checks a real evaluation records for each model (from a real run's fgsm_attack_results.json).
WHY_RISE = "a larger ball contains the smaller one: a rise means the attack is failing, not the model succeeding"
CHECKS = [
    ("deterministic in eval mode", "max |difference| between two forward passes: 0", "randomness at test time"),
    ("outputs are logits", "unnormalized scores", "attacks need logits: probabilities saturate the gradient"),
    ("inputs in [0, 1]", "range [0, 1]", "the threat model is defined on pixels in [0, 1]"),
    ("input gradients informative", "0% of 64 points have an all-zero gradient", "zero gradients hide attacks"),
    ("robust accuracy does not rise with eps (fgsm)", "non-increasing", WHY_RISE),
    ("an unbounded budget breaks every point", "PGD-20 at eps 1 leaves 0.0% of 64 points correct", "else blind"),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Drawn]]:
    """A run with the strong attacks and a real evaluation's checks; its report.html and its figures."""
    from advmnist.reporting import build_report

    run_dir = make_fake_run(tmp_path_factory.mktemp("run") / "fake", robust=True)
    for name in ("fgsm_attack_results.json", "defended_fgsm_results.json"):
        obj = json.loads((run_dir / name).read_text(encoding="utf-8"))
        obj["checks"] = [{"name": n, "passed": True, "measured": m, "why": w} for n, m, w in CHECKS]
        (run_dir / name).write_text(json.dumps(obj), encoding="utf-8")
    with capture_figures() as figures:
        build_report(run_dir, as_html=True)
    return run_dir / "report.html", figures


@pytest.fixture
def page(browser: Any, report: tuple[Path, dict[str, Drawn]]) -> Iterator[Any]:
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(report[0].as_uri())
    yield page
    page.close()


def _section_height(page: Any, title: str) -> float:
    """From the section's heading to the next heading, in CSS pixels."""
    return float(
        page.evaluate(
            """title => {
                const hs = [...document.querySelectorAll('h2')];
                const i = hs.findIndex(h => h.textContent === title);
                const end = i + 1 < hs.length ? hs[i + 1].getBoundingClientRect().top : document.body.scrollHeight;
                return end - hs[i].getBoundingClientRect().top;
            }""",
            title,
        )
    )


def test_a_table_of_contents_links_every_section(page: Any) -> None:
    links = page.locator("nav a")
    targets = links.evaluate_all("as => as.map(a => a.getAttribute('href'))")
    headings = page.locator("h2").evaluate_all("hs => hs.map(h => h.textContent)")
    assert len(targets) == len(headings) >= 8  # one link per section
    for href in targets:
        assert href.startswith("#") and page.locator(f"[id='{href[1:]}']").count() == 1, href
    assert page.locator("nav").bounding_box()["y"] < VIEWPORT["height"]  # seen without scrolling
    page.locator("nav a", has_text="The defense").click()
    top = page.evaluate("document.getElementById('the-defense').getBoundingClientRect().top")
    assert page.evaluate("window.scrollY") > VIEWPORT["height"] and abs(top) < 2  # the link jumps there


def test_the_sanity_checks_are_one_line_each_with_details_on_a_click(page: Any) -> None:
    assert _section_height(page, "Sanity checks") < 450  # the bullets of every model took 747 px
    folded = page.locator("details.folded")
    assert folded.count() == len(CHECKS) + 2  # the two strong-attack checks of the fake run, once each
    first = folded.first
    assert first.locator("summary").inner_text() == "deterministic in eval mode: passed (2 of 2)"
    detail = first.locator("li", has_text="defended: passed")
    assert not detail.is_visible()
    first.locator("summary").click()
    assert detail.is_visible() and first.evaluate("d => d.open")
    assert page.locator("script").count() == 0


def test_every_plot_is_legible_at_the_size_the_page_shows_it(page: Any, report: tuple[Path, dict[str, Drawn]]) -> None:
    from advmnist.reporting import PLOT_CAPTIONS
    from advmnist.reporting.curves import ROBUST_CAPTION, ROBUST_PLOT

    figures = report[1]
    by_caption = {caption: name for name, caption in {**PLOT_CAPTIONS, ROBUST_PLOT: ROBUST_CAPTION}.items()}
    images = page.locator("figure img").evaluate_all(
        "imgs => imgs.map(i => [i.alt, i.naturalWidth, i.getBoundingClientRect().width - 2])"  # less the border
    )
    assert len(images) == len(figures) == 8
    too_small = {}
    for alt, natural, shown in images:
        name = by_caption[alt]
        fig = figures[name]
        assert natural == round(fig.natural_width_px)
        smallest_px = fig.smallest_pt * fig.dpi / 72 * shown / natural
        if smallest_px < MIN_TEXT_PX:
            too_small[name] = round(smallest_px, 1)
    assert not too_small, f"text smaller than {MIN_TEXT_PX} CSS px: {too_small}"
