"""Debian's Chromium for the browser tests (demo, figures, report; the `browser` fixture is in conftest).

Chromium comes from apt (installed here when missing and we are root); Playwright never downloads
a browser. Where Chromium truly cannot be installed the tests skip and say why, unless
ADVMNIST_REQUIRE_BROWSER is set (CI sets it: there they must run).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu"]


def chromium_path() -> str:
    """The Chromium executable, installed with apt if missing (root only); skip or fail without it."""
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
