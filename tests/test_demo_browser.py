"""The demo in a real browser: Debian's Chromium, driven by Playwright, against `advmnist demo`.

Chromium comes from apt (installed here when missing and we are root); Playwright never downloads
a browser. Where Chromium truly cannot be installed these tests skip and say why, unless
ADVMNIST_REQUIRE_BROWSER is set (CI sets it: there they must run).
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from advmnist.models import create_model, save_model
from conftest import _USER_CACHE

TIMEOUT_MS = 60_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _user_mnist() -> Path:
    """Where the user's real MNIST lies (the cache `advmnist data` fills)."""
    base = (
        Path(_USER_CACHE)
        if _USER_CACHE
        else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "advmnist"
    )
    return base / "mnist"


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("demo")
    save_model(create_model("linear"), folder / "lin")
    # The demo's own cache is a fresh folder, where an untrained linear model stands in for the quick
    # baseline (ticked by default; training it here would cost ~20 s): the user's cache is not touched.
    save_model(create_model("linear"), folder / "cache" / "demo" / "quick-baseline")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("ADVMNIST_CACHE", "ADVMNIST_DATA")}
    env["GRADIO_ANALYTICS_ENABLED"] = "False"
    env["ADVMNIST_CACHE"] = str(folder / "cache")
    if _user_mnist().is_dir():  # the real MNIST for 'random test image' (`make test` fetches it first)
        env["ADVMNIST_DATA"] = str(_user_mnist())
    cmd = [sys.executable, "-m", "advmnist", "demo", "--model", str(folder / "lin.safetensors"), "--port", str(port)]
    log = (folder / "demo.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  (localhost)
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the demo did not start: {(folder / 'demo.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _digit_png(path: Path, horizontal: bool = False) -> Path:
    paper = np.full((140, 100), 255, np.uint8)  # a dark '1' (or '-') on white paper
    if horizontal:
        paper[64:77, 15:85] = 10
    else:
        paper[20:120, 45:58] = 10
    buf = io.BytesIO()
    Image.fromarray(paper).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


def _attack(page: Any, source: str | None = None) -> str:
    """Click 'attack' (after choosing `source` by hand, if given); the summary and the status beside the button."""
    if source is not None:
        page.locator("#source").get_by_text(source, exact=True).click()
    page.locator("#go").click()
    summary, status = page.locator("#summary"), page.locator("#status")
    summary.get_by_text("fooled").or_(status.get_by_text("Error")).first.wait_for(timeout=TIMEOUT_MS)
    return summary.inner_text() + "\n" + (status.inner_text() if status.count() else "")


def _row_of(text: str, model: str, eps: float) -> tuple[int, int, bool]:
    """The summary table's row of `model`: (prediction before, after, fooled); its norm within eps."""
    rows = [line.split("\t") for line in text.splitlines() if line.split("\t")[0].strip() == model]
    assert len(rows) == 1, text
    cells = [c.strip() for c in rows[0]]
    before, after = (re.fullmatch(r"(\d) \(\d+%\)", c) for c in cells[1:3])
    assert before and after and cells[3] in ("yes", "no") and re.fullmatch(r"[\d.]+ s", cells[5]), cells
    assert 0 <= float(cells[4]) <= eps + 1e-3, cells
    return int(before[1]), int(after[1]), cells[3] == "yes"


def test_upload_a_digit_attack_and_see_the_result(browser: Any, demo_url: str, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(demo_url, timeout=TIMEOUT_MS)
    page.locator("#upload input[type=file]").set_input_files(str(_digit_png(tmp_path / "one.png")))
    text = _attack(page, "upload")
    assert "Error" not in text and "PGD, Linf eps 0.3" in text
    _row_of(text, "lin", 0.3)
    for box in ("#seen", "#result"):
        image = page.locator(f"{box} img").first
        image.wait_for(timeout=TIMEOUT_MS)
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    page.screenshot(path=str(tmp_path / "demo-upload.png"), full_page=True)
    assert (tmp_path / "demo-upload.png").stat().st_size > 10_000
    page.close()


def _stroke(page: Any, horizontal: bool = False) -> None:
    """Take the brush and draw a bar through the middle of the canvas: a '1', or a '-'."""
    canvas = page.locator("#sketch canvas").first
    canvas.wait_for(timeout=TIMEOUT_MS)
    page.locator("#sketch").get_by_role("button", name="Brush").click()  # Gradio 6 starts with no tool
    box = canvas.bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    cx, cy = x + w / 2, y + h / 2  # the drawing area is a square in the middle of the canvas element
    at = (lambda t: (cx + h * (t - 0.5), cy)) if horizontal else (lambda t: (cx, y + h * t))
    page.mouse.move(*at(0.2))
    page.mouse.down()
    for t in np.linspace(0.25, 0.75, 20):
        page.mouse.move(*at(t), steps=2)
    page.mouse.up()


def test_draw_a_stroke_and_attack(browser: Any, demo_url: str, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(demo_url, timeout=TIMEOUT_MS)
    _stroke(page)
    text = _attack(page, "draw")
    assert "Error" not in text
    _row_of(text, "lin", 0.3)
    page.screenshot(path=str(tmp_path / "demo-draw.png"), full_page=True)
    page.close()


def test_pick_a_random_test_image_and_attack(browser: Any, demo_url: str, real_mnist: None) -> None:
    page = browser.new_page()
    page.goto(demo_url, timeout=TIMEOUT_MS)
    page.locator("#pick").click()
    page.locator("#picked").get_by_text("label").wait_for(timeout=TIMEOUT_MS)
    expect = pytest.importorskip("playwright.sync_api").expect
    expect(page.locator("#source").get_by_label("pick")).to_be_checked(timeout=TIMEOUT_MS)  # the input follows
    text = _attack(page, "pick")
    assert "Error" not in text
    _row_of(text, "lin", 0.3)
    page.close()


def test_a_bad_upload_shows_a_message_not_a_stack_trace(browser: Any, demo_url: str, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(demo_url, timeout=TIMEOUT_MS)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not an image at all")
    page.locator("#upload input[type=file]").set_input_files(str(bad))
    text = _attack(page, "upload")
    assert "Error: this is not an image" in text and "Traceback" not in page.content()
    page.close()


def test_the_html_report_renders_with_every_image(browser: Any, tmp_path: Path) -> None:
    from advmnist.reporting import build_report
    from fake_run import make_fake_run

    run_dir = make_fake_run(tmp_path / "run", robust=True)
    build_report(run_dir, as_html=True)
    page = browser.new_page()
    blocked: list[str] = []

    def only_local(route: Any) -> None:  # a self-contained page asks for nothing over the network
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto((run_dir / "report.html").as_uri(), timeout=TIMEOUT_MS)
    images = page.locator("img")
    assert images.count() == 8  # the seven plots of the seed study and the strong-attack curves
    loaded = images.evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
    assert all(loaded) and not blocked  # every image decodes, nothing is fetched
    assert page.locator("h2", has_text="Strong attacks").count() == 1
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    page.close()


# What the model saw: the size (width, height) of the bright pixels in the 'what the model sees' image.
_SEEN_SHAPE = """img => {
    const c = document.createElement("canvas");
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext("2d"); g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let x0 = 1e9, x1 = -1, y0 = 1e9, y1 = -1;
    for (let i = 0; i < c.width * c.height; i++) {
        if (d[4 * i] > 128) {
            const x = i % c.width, y = Math.floor(i / c.width);
            x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
        }
    }
    return [x1 - x0 + 1, y1 - y0 + 1];
}"""


def _seen_shape(page: Any) -> tuple[int, int]:
    image = page.locator("#seen img").first
    image.wait_for(timeout=TIMEOUT_MS)
    width, height = image.evaluate(_SEEN_SHAPE)
    return int(width), int(height)


def _choose(page: Any, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.locator(dropdown).get_by_role("option", name=option, exact=True).click()


def _expect() -> Any:
    return pytest.importorskip("playwright.sync_api").expect


def test_the_input_touched_last_is_the_one_attacked(browser: Any, demo_url: str, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(demo_url, timeout=TIMEOUT_MS)
    page.locator("#source").get_by_text("pick", exact=True).click()  # so that drawing visibly moves the radio
    _stroke(page)  # a '1' drawn, then a '-' uploaded: the upload is attacked, with no click on the radio
    _expect()(page.locator("#source").get_by_label("draw")).to_be_checked(timeout=TIMEOUT_MS)
    page.locator("#upload input[type=file]").set_input_files(str(_digit_png(tmp_path / "dash.png", horizontal=True)))
    _expect()(page.locator("#source").get_by_label("upload")).to_be_checked(timeout=TIMEOUT_MS)
    text = _attack(page)
    assert "Error" not in text
    width, height = _seen_shape(page)
    assert width > 3 * height, (width, height)  # the '-', not the '1'
    page.close()


def test_a_drawing_after_a_picked_image_is_attacked_and_the_caption_goes(
    browser: Any, demo_url: str, real_mnist: None
) -> None:
    page = browser.new_page()
    page.goto(demo_url, timeout=TIMEOUT_MS)
    page.locator("#pick").click()
    caption = page.locator("#picked").get_by_text("label")
    caption.wait_for(timeout=TIMEOUT_MS)
    label = re.search(r"label (\d)", caption.inner_text())
    assert label is not None
    _expect()(page.locator("#label input")).to_have_value(label[1], timeout=TIMEOUT_MS)  # the dataset's label
    _stroke(page, horizontal=True)
    _expect()(page.locator("#source").get_by_label("draw")).to_be_checked(timeout=TIMEOUT_MS)
    _expect()(page.locator("#picked")).not_to_contain_text("test image", timeout=TIMEOUT_MS)  # stale caption gone
    _expect()(page.locator("#label input")).to_have_value("auto (clean prediction)", timeout=TIMEOUT_MS)
    text = _attack(page)
    assert "Error" not in text and "no true label given" in text
    width, height = _seen_shape(page)
    assert width > 3 * height, (width, height)  # the drawn '-', not the picked digit
    page.close()


def test_a_true_label_and_a_target_class(browser: Any, demo_url: str, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(demo_url, timeout=TIMEOUT_MS)
    page.locator("#upload input[type=file]").set_input_files(str(_digit_png(tmp_path / "one.png")))
    _choose(page, "#attack", "APGD-CE")  # untargeted: the target is off, with a note
    _expect()(page.locator("#target input")).to_be_disabled(timeout=TIMEOUT_MS)
    assert "untargeted" in page.locator("#target").inner_text()
    _choose(page, "#attack", "PGD")
    _expect()(page.locator("#target input")).to_be_enabled(timeout=TIMEOUT_MS)
    _choose(page, "#label", "1")
    _choose(page, "#target", "7")
    text = _attack(page)
    assert "Error" not in text and "targeted at 7: fooled = the model now predicts 7" in text
    _, after, fooled = _row_of(text, "lin", 0.3)
    assert fooled == (after == 7)  # success of a targeted attack: the target reached
    page.close()


def test_an_error_shows_beside_the_button_in_view(browser: Any, demo_url: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(demo_url, timeout=TIMEOUT_MS)
    text = _attack(page)  # the canvas is empty
    assert "Error: the canvas is empty" in text
    box = page.locator("#status").get_by_text("Error").bounding_box()
    assert box is not None and 0 <= box["y"] and box["y"] + box["height"] <= 900, box  # no need to scroll
    assert 0 <= box["x"] and box["x"] + box["width"] <= 1280, box
    page.close()


def test_each_attack_and_norm_brings_its_own_defaults(browser: Any, demo_url: str) -> None:
    page = browser.new_page()
    page.goto(demo_url, timeout=TIMEOUT_MS)
    ticked = page.locator("#models").get_by_role("checkbox")
    ticked.first.wait_for(timeout=TIMEOUT_MS)
    assert ticked.count() == 2 and all(ticked.nth(i).is_checked() for i in range(2))  # lin and the baseline
    _choose(page, "#attack", "Square")  # its own query budget, not the steps slider
    _expect()(page.locator("#queries input[type=number]")).to_have_value("1000", timeout=TIMEOUT_MS)
    _expect()(page.locator("#steps")).to_be_hidden(timeout=TIMEOUT_MS)
    _choose(page, "#attack", "CW-L2")  # L2 only: the norm follows, and eps jumps to the L2 standard
    _expect()(page.locator("#steps input[type=number]")).to_have_value("100", timeout=TIMEOUT_MS)
    _expect()(page.locator("#norm").get_by_label("L2")).to_be_checked(timeout=TIMEOUT_MS)
    _expect()(page.locator("#eps input[type=number]")).to_have_value("2", timeout=TIMEOUT_MS)
    assert page.locator("#eps input[type=range]").get_attribute("max") == "5"
    assert "MNIST standard: 2" in page.locator("#eps").inner_text()
    page.locator("#norm").get_by_text("Linf", exact=True).click()
    _expect()(page.locator("#eps input[type=number]")).to_have_value("0.3", timeout=TIMEOUT_MS)
    assert page.locator("#eps input[type=range]").get_attribute("max") == "0.5"
    page.close()


def _picked_index(page: Any, seed: str | None = None) -> int:
    """Click 'random test image' (after typing `seed` in the seed field); the index in the new caption."""
    if seed is not None:
        page.locator("#seed").get_by_role("textbox").fill(seed)
    caption = page.locator("#picked")
    before = caption.inner_text()
    page.locator("#pick").click()
    _expect()(caption).to_have_text(re.compile(r"test image \d+, label \d"), timeout=TIMEOUT_MS)
    _expect()(caption).not_to_have_text(before, timeout=TIMEOUT_MS)  # odds that it is the same: 1 in 10,000
    found = re.search(r"test image (\d+)", caption.inner_text())
    assert found is not None
    return int(found[1])


def test_random_test_images_are_new_each_click_unless_seeded(browser: Any, demo_url: str, real_mnist: None) -> None:
    page = browser.new_page()
    page.goto(demo_url, timeout=TIMEOUT_MS)
    first, second = _picked_index(page), _picked_index(page)  # no seed: a new image each click
    seeded = _picked_index(page, "5")
    _picked_index(page, "")  # the seed cleared: random again
    assert first != second and _picked_index(page, "5") == seeded
    page.close()


_BROKEN_WORDS = r"""table => {
    const broken = [];
    for (const cell of table.querySelectorAll("th, td")) {
        const text = cell.textContent; let at = 0;
        for (const word of text.split(/\s+/).filter(Boolean)) {
            const start = text.indexOf(word, at); at = start + word.length;
            const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
            let node, offset = 0;
            while ((node = walker.nextNode())) {  // the word inside one text node (the cells are simple)
                if (start >= offset && start + word.length <= offset + node.length) {
                    const range = document.createRange();
                    range.setStart(node, start - offset); range.setEnd(node, start - offset + word.length);
                    const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
                    if (tops.size > 1) broken.push(word);
                }
                offset += node.length;
            }
        }
    }
    return broken;
}"""


def test_the_summary_table_keeps_words_whole_on_a_phone(browser: Any, demo_url: str, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(demo_url, timeout=TIMEOUT_MS)
    page.locator("#upload input[type=file]").set_input_files(str(_digit_png(tmp_path / "one.png")))
    text = _attack(page, "upload")
    assert "Error" not in text
    table = page.locator("#summary table")
    assert table.locator("td").count() >= 6  # a row of six columns at least
    assert table.evaluate(_BROKEN_WORDS) == []
    page.close()
