"""docs/tutorial.ipynb: committed without outputs, in step with its rendered copy, and true when run.

The slow test runs the notebook exactly as users get it (no smaller test version), from a copy in
an empty folder (so nothing may depend on the working directory), and checks every claim its
prose makes against the numbers of that run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import ROOT, require

NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"
RENDERED = ROOT / "docs" / "tutorial.md"


def _renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_tutorial", ROOT / "scripts" / "render_tutorial.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cells() -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    return cells


def test_the_notebook_is_committed_without_outputs() -> None:
    code = [c for c in _cells() if c["cell_type"] == "code"]
    assert len(code) >= 6
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code), "strip the outputs before committing"


def test_the_rendered_copy_is_in_step_with_the_notebook() -> None:
    markdown = RENDERED.read_text(encoding="utf-8")
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    renderer = _renderer()
    assert renderer.recorded_digest(markdown) == renderer.source_digest(notebook), (
        "docs/tutorial.ipynb changed since docs/tutorial.md was rendered: run `make tutorial` and commit both"
    )


def test_the_rendered_copy_shows_every_cell_its_output_and_its_figures() -> None:
    markdown = RENDERED.read_text(encoding="utf-8")
    for cell in _cells():
        source = "".join(cell["source"])
        assert (f"```python\n{source}\n```" if cell["cell_type"] == "code" else source) in markdown, source[:60]
    images = re.findall(r"!\[[^]]*\]\((tutorial_files/[^)]+\.png)\)", markdown)
    assert len(images) >= 2  # the adversarial examples and the robustness plot
    for image in images:
        assert (RENDERED.parent / image).stat().st_size < 100_000, image  # few and small
    assert "trained in" in markdown and "Traceback" not in markdown  # the outputs of a run that went through


def test_the_digest_follows_every_source_edit() -> None:
    renderer = _renderer()
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    before = renderer.source_digest(notebook)
    notebook["cells"][-1]["source"] = ["changed"]
    assert renderer.source_digest(notebook) != before


# What the notebook's run leaves behind, read by one extra cell the test appends (not in the notebook).
PROBE = """
import json as _json
_rows = lambda e, a: [r.robust_accuracy.value for r in e[a].results]
print("PROBE" + _json.dumps({
    "clean": clean, "n_eval": N_EVAL, "shown_fooled": [int(fgsm.success.sum()), int(pgd.success.sum())],
    "standard": {a: _rows(ev, a) for a in ("fgsm", "pgd")},
    "shipped": {a: _rows(ev_shipped, a) for a in ("fgsm", "pgd")},
    "shipped_clean": ev_shipped.clean_accuracy.value,
    "strong": strong["cascade"].results[0].robust_accuracy.value, "strong_n": strong.n,
    "broken_by": strong["cascade"].results[0].broken_by,
    "eps": EPS,
}))
"""


@pytest.mark.slow
def test_the_tutorial_runs_from_anywhere_and_its_prose_holds(
    real_mnist: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nbformat = require("nbformat", "the tutorial test executes the notebook")
    nbclient = require("nbclient", "the tutorial test executes the notebook")
    require("ipykernel", "the kernel that runs the notebook")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")  # the kernel inherits it
    # the kernel starts in tmp_path: it must import this checkout's advmnist, whatever PYTHONPATH said
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    copy = tmp_path / "tutorial.ipynb"  # a user's copy, far from the checkout
    shutil.copy(NOTEBOOK, copy)
    notebook = nbformat.read(copy, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE))
    nbclient.NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    nbformat.write(notebook, tmp_path / "executed.ipynb")  # for a look when it fails
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert len([o for o in outputs if "image/png" in o.get("data", {})]) >= 2  # the examples and the plot
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    run = json.loads(text.split("PROBE", 1)[1])
    prose = " ".join(" ".join("".join(c["source"]) for c in _cells() if c["cell_type"] == "markdown").split())
    _check_the_prose(prose, run)


def _check_the_prose(prose: str, run: dict[str, Any]) -> None:
    """Each number or comparison the text states, against this run."""
    standard, shipped = run["standard"], run["shipped"]
    assert "reaches about 98% clean accuracy on the 10,000 test images" in prose
    assert 0.97 <= run["clean"] <= 0.99, run["clean"]
    assert "At eps 0.2, PGD fools the standard model on nearly every image, FGSM on far fewer" in prose
    assert run["eps"][2] == 0.2 and standard["pgd"][2] <= 0.2, standard  # robust accuracy: the points not fooled
    assert standard["fgsm"][2] >= standard["pgd"][2] + 0.1, standard
    assert "98.77% clean, 92.57% under the official AutoAttack" in prose  # the card's numbers (test_checkpoints)
    assert "where the standard model is at 0%" in prose and standard["pgd"][-1] == 0.0, standard
    assert "PGD at eps 0.3 leaves it above 90%" in prose and shipped["pgd"][-1] > 0.9, shipped
    assert "each added attack can only lower PGD's number" in prose and set(run["broken_by"]) <= {"pgd", "apgd-ce"}
    assert "FGSM alone would overstate" in prose
    assert all(f >= p for f, p in zip(standard["fgsm"], standard["pgd"], strict=True)), standard
    assert any(f > p + 0.05 for f, p in zip(standard["fgsm"], standard["pgd"], strict=True)), standard
