"""scripts/gpu_autoattack.py: one line per test image, a stopped run finished with --start, the parts merged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from advmnist.data import load_mnist
from advmnist.models import create_model, save_model
from conftest import require

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_autoattack.py"


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_run_in_two_parts_merges_into_the_whole_run(real_mnist: None, tmp_path: Path) -> None:
    require("pyautoattack", "the official AutoAttack code is one of the contestants")
    torch.manual_seed(0)
    model = create_model("linear")
    train = load_mnist("train", n=2000)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(30):  # a few steps: most clean points right, none robust at eps 0.3
        optimizer.zero_grad()
        F.cross_entropy(model(train.x), train.y).backward()
        optimizer.step()
    save_model(model, tmp_path / "linear")
    spec = f"lin={tmp_path / 'linear.safetensors'}"
    common = ["--chunk", "3", "--contestants", "official,ours fp32"]

    whole = _script("--out", str(tmp_path / "whole"), "--n", "6", *common, spec)
    first = _script("--out", str(tmp_path / "a"), "--n", "3", *common, spec)
    rest = _script("--out", str(tmp_path / "b"), "--n", "6", "--start", "3", *common, spec)
    merged = _script("merge", "--out", str(tmp_path / "merged"), "lin", str(tmp_path / "a"), str(tmp_path / "b"))
    for done in (whole, first, rest, merged):
        assert done.returncode == 0, done.stderr

    def lines(folder: str) -> list[dict]:
        return [json.loads(line) for line in (tmp_path / folder / "lin.jsonl").read_text().splitlines()]

    assert [line["index"] for line in lines("a")] == [0, 1, 2]
    assert [line["index"] for line in lines("merged")] == list(range(6))
    assert lines("merged") == lines("whole")  # same seed, same chunks: the parts are the whole run
    for line in lines("whole"):  # every clean point falls to the first attack, for both contestants
        assert line["official"] == line["ours fp32"] == ("apgd-ce" if line["clean"] else "clean")
    summary = json.loads((tmp_path / "merged" / "summary.json").read_text())["models"]["lin"]
    assert summary["done"] == 6 and summary["official"]["robust"]["correct"] == 0
    assert summary["official"]["robust_every_10th"]["n"] == 1  # test image 0

    overlap = _script("merge", "--out", str(tmp_path / "bad"), "lin", str(tmp_path / "a"), str(tmp_path / "whole"))
    assert overlap.returncode != 0 and "overlap" in overlap.stderr
    assert not (tmp_path / "bad").exists()
