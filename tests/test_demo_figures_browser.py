"""The demo's result figure in a real browser, at a desktop (1280x900) and a phone (390x844) size.

Reuses the Chromium and demo-server fixtures of test_demo_browser (one server for this module), and
measures the figure's text on the same figure drawn here (test_demo_figures).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from test_demo_browser import TIMEOUT_MS, demo_url  # noqa: F401  (a fixture)
from test_demo_figures import LEGIBLE_PX, _soft_one, captured, draw_figure, smallest_text_px  # noqa: F401

MEASURE = (
    "img => { const r = img.getBoundingClientRect();"
    " return {left: r.left, right: r.right, shown: r.width, natural: img.naturalWidth,"
    " page: document.documentElement.clientWidth}; }"
)


@pytest.mark.parametrize(("width", "height"), [(1280, 900), (390, 844)])
def test_the_result_figure_fits_the_screen_and_its_text_stays_legible(
    browser: Any,  # noqa: F811
    demo_url: str,  # noqa: F811
    captured: list[Figure],  # noqa: F811
    tmp_path: Path,
    width: int,
    height: int,
) -> None:
    fig, png = draw_figure(1, captured)  # the figure the demo draws for one model, drawn here to measure its text
    smallest = smallest_text_px(fig)
    upload = tmp_path / "sixteen-bit.png"  # a 16-bit grayscale digit: the demo says how it read it
    Image.fromarray((_soft_one() * 65535).round().astype(np.uint16)).save(upload)
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(demo_url, timeout=TIMEOUT_MS)
    page.locator("#upload input[type=file]").set_input_files(str(upload))
    radio = page.locator("#source").get_by_text("upload", exact=True)
    if radio.count():  # the input radio, where the page still has one
        radio.click()
    page.locator("#go").click()
    page.locator("#summary").get_by_text("fooled").first.wait_for(timeout=TIMEOUT_MS)
    assert "16-bit" in page.locator("body").inner_text()  # the note on how the upload was read
    image = page.locator("#result img").first
    image.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    box = image.evaluate(MEASURE)
    assert box["natural"] == Image.open(io.BytesIO(png)).size[0]  # the same figure as measured here
    assert 0 <= box["left"] and box["right"] <= box["page"] <= width  # the whole figure on screen, no sideways scroll
    shown = smallest * box["shown"] / box["natural"]
    assert shown >= LEGIBLE_PX, f"the smallest text is shown {shown:.1f} px high at {width} px wide"
    page.close()
