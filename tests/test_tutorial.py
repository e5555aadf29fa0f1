"""docs/tutorial.ipynb: committed without outputs, and it runs (small subset, real MNIST, nbclient)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT, require

NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"


def test_the_notebook_is_committed_without_outputs() -> None:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert len(code) >= 6
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code), "strip the outputs before committing"


@pytest.mark.slow
def test_the_tutorial_runs_top_to_bottom(real_mnist: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    nbformat = require("nbformat", "the tutorial test executes the notebook")
    nbclient = require("nbclient", "the tutorial test executes the notebook")
    require("ipykernel", "the kernel that runs the notebook")
    monkeypatch.setenv("ADVMNIST_TUTORIAL_SMALL", "1")  # the kernel inherits the environment
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    for expected in ("trained in", "after PGD-40", "AutoAttack at eps 0.1", "fgsm-rs in", "PGD-40 at Linf 0.3"):
        assert expected in text, expected
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the adversarial examples and the robustness plot
    nbformat.write(notebook, tmp_path / "executed.ipynb")  # for a look when it fails
