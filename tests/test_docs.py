"""`make docs`: the pdoc API reference builds without a warning and has a section for every attack."""

from __future__ import annotations

import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import advmnist
from advmnist.attacks import ATTACKS, list_attacks
from conftest import require

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "api_docs.py"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference, built once for the module as `make docs` builds it (warnings are errors)."""
    require("pdoc", "the API reference is built with pdoc")
    out = tmp_path_factory.mktemp("docs") / "api"
    done = subprocess.run(
        [sys.executable, "-W", "error", str(SCRIPT), str(out)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # not one warning, from pdoc or from an import
    return out


def section(page: Path, anchor: str) -> str:
    """The rendered text of the `<section id=anchor>` on a pdoc page (up to the next section),
    without its "View Source" listings (the source holds the docstrings too)."""
    text = page.read_text()
    start = text.find(f'<section id="{anchor}"')
    assert start >= 0, f"no section {anchor} in {page}"
    end = text.find("<section id=", start + 1)
    shown = re.sub(
        r'<div class="pdoc-code codehilite">.*?</pre></div>', "", text[start : end if end > 0 else None], flags=re.S
    )
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", shown)).split())


def test_every_public_name_has_a_section_on_the_front_page(reference: Path) -> None:
    assert (reference / "index.html").is_file()
    for name in advmnist.__all__:
        assert section(reference / "advmnist.html", name)


def test_every_registered_attack_has_its_page_and_its_section(reference: Path) -> None:
    for name in list_attacks():
        cls = ATTACKS[name]
        page = reference / (cls.__module__.replace(".", "/") + ".html")  # e.g. advmnist/attacks/gradient.html
        text = section(page, cls.__qualname__)
        assert f"'{name}'" in text, f"{cls.__qualname__}'s section does not show its registry name {name!r}"
        first_line = (cls.__doc__ or "").strip().splitlines()[0].replace("`", "")  # rendered: code, no backticks
        assert first_line and first_line in text, f"{cls.__qualname__}'s docstring is not on its page"
        assert section(reference / "advmnist" / "attacks.html", cls.__qualname__)


def test_a_warning_fails_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any warning while pdoc renders (here, one it gives for an unresolvable name) fails the build,
    and nothing is written."""
    require("pdoc", "the API reference is built with pdoc")
    import warnings

    import pdoc

    spec = importlib.util.spec_from_file_location("api_docs", SCRIPT)
    assert spec and spec.loader
    api_docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(api_docs)

    def warn_and_render(*modules: str, output_directory: Path) -> None:
        warnings.warn("Cannot determine where advmnist.x is taken from", UserWarning, stacklevel=1)
        (output_directory / "index.html").write_text("<html></html>")

    monkeypatch.setattr(pdoc, "pdoc", warn_and_render)
    problems = api_docs.build(tmp_path / "api")
    assert len(problems) == 1 and "Cannot determine where advmnist.x" in problems[0]
    assert not (tmp_path / "api").exists()
    monkeypatch.setattr(pdoc, "pdoc", lambda *m, output_directory: (output_directory / "index.html").write_text("ok"))
    assert api_docs.build(tmp_path / "api") == []  # without the warning the same build writes its pages
    assert (tmp_path / "api" / "index.html").read_text() == "ok"
