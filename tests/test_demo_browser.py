"""The demo in a real browser: Debian's Chromium, driven by Playwright, against `advmnist demo`.

Chromium comes from apt (installed here when missing and we are root); Playwright never downloads
a browser. Where Chromium truly cannot be installed these tests skip and say why, unless
ADVMNIST_REQUIRE_BROWSER is set (CI sets it: there they must run).
"""

from __future__ import annotations

import io
import os
import re
import shutil
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

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu"]
TIMEOUT_MS = 120_000


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, check=False, capture_output=True)
        path = shutil.which("chromium")
    if path is None:
        reason = "Chromium is not installed and apt could not install it (needs root and Debian's repositories)"
        if os.environ.get("ADVMNIST_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev extra")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("demo")
    save_model(create_model("linear"), folder / "lin")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "ADVMNIST_CACHE"}
    env["GRADIO_ANALYTICS_ENABLED"] = "False"
    if _USER_CACHE is not None:  # the real MNIST for 'random test image' (`make test` fetches it first)
        env["ADVMNIST_CACHE"] = _USER_CACHE
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


def _digit_png(path: Path) -> Path:
    paper = np.full((140, 100), 255, np.uint8)  # a dark '1' on white paper
    paper[20:120, 45:58] = 10
    buf = io.BytesIO()
    Image.fromarray(paper).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


def _attack(page: Any, source: str) -> str:
    page.locator("#source").get_by_text(source, exact=True).click()
    page.locator("#go").click()
    summary = page.locator("#summary")
    summary.get_by_text("fooled").or_(summary.get_by_text("Error")).first.wait_for(timeout=TIMEOUT_MS)
    return summary.inner_text()


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


def test_draw_a_stroke_and_attack(browser: Any, demo_url: str, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(demo_url, timeout=TIMEOUT_MS)
    canvas = page.locator("#sketch canvas").first
    canvas.wait_for(timeout=TIMEOUT_MS)
    page.locator("#sketch").get_by_role("button", name="Brush").click()  # Gradio 6 starts with no tool
    box = canvas.bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + w * 0.5, y + h * 0.2)
    page.mouse.down()
    for t in np.linspace(0.25, 0.75, 20):  # a vertical stroke in the middle of the canvas: a '1'
        page.mouse.move(x + w * 0.5, y + h * t, steps=2)
    page.mouse.up()
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
