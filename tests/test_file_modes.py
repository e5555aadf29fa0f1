"""Files the tool writes honour the umask (0666 less it), as files written by `open()` do.

mkstemp alone makes every file 0600, which blocks sharing a run folder with a group or through a
web server. Each case runs the real CLI in a child process under a given umask.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from advmnist.io import append_jsonl, atomic_write_text
from advmnist.lock import FolderLock

try:
    from fake_run import make_fake_run
except ImportError:  # tests/ imported as a package
    from tests.fake_run import make_fake_run


CHILD = """
import sys
from advmnist.cli import main
from advmnist.models import create_model, save_model
model, out, data, checksums, report_dir = sys.argv[1:]
save_model(create_model("linear"), model)
args = ["--model", model + ".safetensors", "--attack", "fgsm", "--eps", "0.1", "--out", out, "-q"]
assert main(["eval", *args, "--data-dir", data, "--checksums", checksums]) == 0
assert main(["report", report_dir, "--html", "-q"]) == 0
"""


def _modes(files: list[Path]) -> dict[str, str]:
    return {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files}


def test_a_run_its_model_and_its_report_honour_the_umask(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    report_dir = make_fake_run(tmp_path / "run")
    before = {p for p in report_dir.rglob("*") if p.is_file()}
    out = tmp_path / "e"
    args = [str(tmp_path / "lin"), str(out), str(synthetic[0]), str(synthetic[1]), str(report_dir)]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.umask(0o022),  # noqa: PLW1509 (the child, before it starts a thread)
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    model_files = sorted(tmp_path.glob("lin.*"))
    run_files = [p for p in out.rglob("*") if p.is_file()]
    report_files = [p for p in report_dir.rglob("*") if p.is_file() and p not in before]
    assert len(model_files) == 2  # weights + model card
    assert {".lock", "config.json", "manifest.json"} <= {p.name for p in run_files}
    assert any(p.suffix == ".jsonl" for p in run_files)  # appended rows, not an atomic write
    assert {"report.html", "report.md", "final_robustness_comparison.png"} <= {p.name for p in report_files}
    written = model_files + run_files + report_files
    assert _modes(written) == {p.name: "0o644" for p in written}


@pytest.mark.parametrize(("umask", "mode"), [(0o077, "0o600"), (0o027, "0o640"), (0o002, "0o664")])
def test_every_writer_follows_the_umask_set_in_process(tmp_path: Path, umask: int, mode: str) -> None:
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        append_jsonl(tmp_path / "b.jsonl", [{"a": 1}])
        FolderLock(tmp_path).acquire().release()
    finally:
        os.umask(old)
    files = [tmp_path / "a.txt", tmp_path / "b.jsonl", tmp_path / ".lock"]
    assert _modes(files) == {p.name: mode for p in files}


def test_reading_the_umask_leaves_it_as_it_was() -> None:
    from advmnist.io import current_umask, file_mode

    old = os.umask(0o027)
    try:
        assert (current_umask(), file_mode()) == (0o027, 0o640)
        assert current_umask() == 0o027
    finally:
        os.umask(old)
