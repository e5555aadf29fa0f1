"""The demo's result figure in a real browser, at a desktop (1280x900) and a phone (390x844) size.

Reuses the Chromium and demo-server fixtures of test_demo_browser (one server for this module).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from test_demo_browser import TIMEOUT_MS, _attack, _digit_png, browser, demo_url  # noqa: F401  (fixtures)

SIZES = [(1280, 900), (390, 844)]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_result_figure_fits_the_viewport_and_stays_legible(
    browser: Any,  # noqa: F811
    demo_url: str,  # noqa: F811
    tmp_path: Path,
    width: int,
    height: int,
) -> None:
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(demo_url, timeout=TIMEOUT_MS)
    page.locator("#upload input[type=file]").set_input_files(str(_digit_png(tmp_path / "one.png")))
    text = _attack(page, "upload")
    assert "Error" not in text
    image = page.locator("#result img").first
    image.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    box = image.evaluate(
        "img => { const r = img.getBoundingClientRect();"
        " return {left: r.left, right: r.right, width: r.width, height: r.height,"
        " natural: img.naturalWidth, naturalHeight: img.naturalHeight,"
        " page: document.documentElement.clientWidth}; }"
    )
    print(width, box)
    page.screenshot(path=f"/tmp/df/shot{width}.png", full_page=True)
    page.close()
