"""Execute docs/tutorial.ipynb and render the run as docs/tutorial.md (`make tutorial`).

The notebook stays committed without outputs; the markdown is the copy people read before they
run it: every markdown cell, every code cell, the text each printed and its figures (saved beside
it as docs/tutorial_files/cell-<n>.png). Its first line records the sha256 of the notebook's cell
sources (`source_digest`), so a fast test notices a notebook edited without re-rendering.

    python scripts/render_tutorial.py [--notebook docs/tutorial.ipynb] [--out docs/tutorial.md]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HEADER = "<!-- rendered by `make tutorial` from tutorial.ipynb; cell sources sha256 {digest}; do not edit -->"
# a warning of a package the notebook does not use (tqdm without ipywidgets): not part of the tutorial
NOISE = re.compile(r"^\S*site-packages\S*: TqdmWarning: .*\n(?:  .*\n)?", re.MULTILINE)
DIGEST = re.compile(r"cell sources sha256 ([0-9a-f]{64})")


def source_digest(notebook: dict[str, Any]) -> str:
    """sha256 of the cells' types and sources: what the rendered copy must be in step with."""
    cells = [
        [c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"]]
        for c in notebook["cells"]
    ]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def recorded_digest(markdown: str) -> str | None:
    """The digest a rendered copy records in its first line (None if it has none)."""
    match = DIGEST.search(markdown.split("\n", 1)[0])
    return match.group(1) if match else None


def execute(path: Path, timeout: int = 900) -> tuple[Any, str]:
    """Run a copy of the notebook in a fresh temporary folder (as a user who copied it would).

    Returns the executed notebook and a line on the run: its wall time, the kernel's CPU time (on a
    busy machine the wall time says little) and the load average before it started.
    """
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # the kernel (started in the temporary folder) imports this checkout's advmnist
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        client = nbclient.NotebookClient(
            notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": folder}}
        )
        client.execute()  # ends by shutting the kernel down: its CPU time is then in RUSAGE_CHILDREN
        seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return notebook, f"{seconds:.0f} s wall, {cpu:.0f} s CPU time in the kernel, load average {load:.1f} at the start"


def _text(text: str) -> str:
    """Terminal text as it ends up on screen: a carriage return overwrites its line (progress bars)."""
    lines = [line.rsplit("\r", 1)[-1] for line in text.replace("\r\n", "\n").split("\n")]
    return "\n".join(lines).strip("\n")


def _outputs(outputs: list[Any], cell: int, files: Path) -> list[str]:
    parts, texts = [], []
    for output in outputs:
        if output["output_type"] == "stream":
            texts.append(NOISE.sub("", output["text"]))
            continue
        data = output.get("data", {})
        if "image/png" in data:
            image = files / f"cell-{cell}.png" if not (files / f"cell-{cell}.png").exists() else None
            image = image or files / f"cell-{cell}-{len(list(files.glob(f'cell-{cell}*')))}.png"
            image.write_bytes(base64.b64decode(data["image/png"]))
            parts.append(f"![output of cell {cell}]({files.name}/{image.name})")
        elif "text/plain" in data:
            texts.append(data["text/plain"] + "\n")
        elif output["output_type"] == "error":
            raise RuntimeError(f"cell {cell} failed: {output['ename']}: {output['evalue']}")
    text = _text("".join(texts))
    return ([f"```text\n{text}\n```"] if text else []) + parts


def render(notebook: Any, out: Path, run: str) -> None:
    """Write the markdown and its images (replacing the old images)."""
    files = out.parent / f"{out.stem}_files"
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir(parents=True)
    import torch

    blocks = [
        HEADER.format(digest=source_digest(notebook)),
        f"<!-- executed on {platform.machine()} with {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"Python {platform.python_version()}: {run} -->",
    ]
    code_cells = 0
    for cell in notebook["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "markdown":
            blocks.append(source)
        elif cell["cell_type"] == "code":
            code_cells += 1
            blocks.append(f"```python\n{source}\n```")
            blocks += _outputs(cell["outputs"], code_cells, files)
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--notebook", type=Path, default=ROOT / "docs" / "tutorial.ipynb")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "tutorial.md")
    args = parser.parse_args(argv)
    notebook, run = execute(args.notebook)
    render(notebook, args.out, run)
    print(f"executed {args.notebook} ({run}); wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
