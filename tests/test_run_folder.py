"""One run, one context: the lock, OS errors, validation before anything is written, bugs vs mistakes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import advmnist.cli
from advmnist.errors import OutputError, RunDirError
from advmnist.lock import FolderLock
from advmnist.models import create_model, save_model
from advmnist.rundir import RunSpec, open_run
from conftest import ROOT, as_nobody, run_cli
from test_cli import assert_one_line_error


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    save_model(create_model("linear"), tmp_path / "lin")
    return tmp_path / "lin.safetensors"


def _data(synthetic) -> list[str]:  # noqa: ANN001
    return ["--data-dir", str(synthetic[0]), "--checksums", str(synthetic[1])]


def _eval(model_path: Path, out: Path, synthetic, *extra: str) -> list[str]:  # noqa: ANN001
    return [
        "eval",
        "--model",
        str(model_path),
        "--attack",
        "fgsm",
        "--eps",
        "0.1",
        "--out",
        str(out),
        *_data(synthetic),
        *extra,
    ]


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path, model_path: Path, synthetic) -> None:  # noqa: ANN001
    out = tmp_path / "e"
    out.mkdir()
    lock = FolderLock(out).acquire()  # this process holds the folder, as a running `advmnist eval` would
    try:
        proc = run_cli(*_eval(model_path, out, synthetic, "--resume"))
        assert_one_line_error(proc, f"in use by process {os.getpid()}")
    finally:
        lock.release()
    assert not (out / "config.json").exists()  # the refused command wrote nothing
    assert run_cli(*_eval(model_path, out, synthetic, "--resume")).returncode == 0  # free again


def test_two_resuming_evaluations_on_one_folder_never_mix_their_rows(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    save_model(create_model("seed-cnn"), tmp_path / "cnn")  # slow enough for the two to overlap
    out = tmp_path / "e"
    args = ["eval", "--model", str(tmp_path / "cnn.safetensors"), "--attack", "pgd[steps=20]", "--eps", "0.1,0.2"]
    args += ["--batch-size", "16", "--out", str(out), "--resume", "-q", *_data(synthetic)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "advmnist", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=600), p.stderr.read() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    if codes == [0, 2]:
        assert any("in use by process" in err for _, err in results)
    rows = [json.loads(line) for line in (out / "per_sample.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(200))  # each point once, in order
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr  # the batch log is consistent: a later resume is accepted


def test_an_output_under_a_file_is_one_line_and_creates_nothing(tmp_path: Path, model_path: Path, synthetic) -> None:  # noqa: ANN001
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    assert_one_line_error(run_cli(*_eval(model_path, blocker / "e", synthetic)), str(blocker / "e"))
    assert_one_line_error(run_cli(*_eval(model_path, blocker, synthetic)), "exists and is not a folder")
    assert_one_line_error(run_cli(*_eval(model_path, Path("/proc/advmnist-test/e"), synthetic)), "/proc/advmnist-test")
    assert blocker.read_text() == "not a folder"


def test_read_only_places_for_a_non_root_user_are_one_line(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    prefix = as_nobody()
    # pytest's tmp_path sits in a folder only root may enter: work in one that user nobody can read
    shared = Path(tempfile.mkdtemp(prefix="advmnist-ro-"))
    try:
        shared.chmod(0o755)
        data = shared / "data"
        shutil.copytree(synthetic[0], data)
        save_model(create_model("linear"), shared / "lin")
        (shared / "ro").mkdir(mode=0o555)
        (shared / "ro").chmod(0o555)
        secret = shared / "secret"
        secret.mkdir(mode=0o700)
        save_model(create_model("linear"), secret / "lin")
        for p in shared.rglob("*"):
            if secret not in (p, *p.parents):
                p.chmod(p.stat().st_mode | (0o555 if p.is_dir() else 0o444))
        nobody = [*prefix, sys.executable, "-m", "advmnist"]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HOME": str(shared)}
        args = ["--eps", "0.1", "--data-dir", str(data), "--checksums", str(data / "checksums.json")]

        def run(model: Path, out: Path) -> subprocess.CompletedProcess[str]:
            command = [*nobody, "eval", "--model", str(model), "--out", str(out), *args]
            return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

        assert_one_line_error(
            run(shared / "lin.safetensors", shared / "ro" / "e"), "cannot create the folder (Permission denied)"
        )
        assert_one_line_error(run(secret / "lin.safetensors", shared / "e"), "Permission denied")
        assert not (shared / "e").exists()
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


def test_a_full_disk_is_one_line_and_a_resume_after_it_ends_identical(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "96k"):
        pytest.skip("cannot mount a small tmpfs here (needs root): the full-disk case is not checked")
    try:
        save_model(create_model("linear"), disk / "lin")  # ~32 kB of the 96 kB
        model = disk / "lin.safetensors"
        args = ["--attack", "fgsm,pgd[steps=3]", "--eps", "0.05,0.1,0.2", "--batch-size", "8", "-q"]
        full = run_cli(*_eval(model, disk / "e", synthetic, *args))
        assert_one_line_error(full, "No space left on device")
        line = [x for x in full.stderr.splitlines() if x.strip()][0]
        assert str(disk / "e") in line
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # the cause is fixed
        resumed = run_cli(*_eval(model, disk / "e", synthetic, *args, "--resume"))
        assert resumed.returncode == 0, resumed.stderr
        whole = run_cli(*_eval(model, tmp_path / "whole", synthetic, *args))
        assert whole.returncode == 0
        assert (disk / "e" / "per_sample.jsonl").read_text() == (tmp_path / "whole" / "per_sample.jsonl").read_text()
        summary = [json.loads((d / "eval_results.json").read_text()) for d in (disk / "e", tmp_path / "whole")]
        assert [a["results"] for a in summary[0]["attacks"]] == [a["results"] for a in summary[1]["attacks"]]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--norm", "l3"], "unknown norm 'l3'"),
        (["--norm", "l2", "--eps", "1e308"], "larger than the diameter of the image box"),
        (["--n", "100000"], "--n must be in"),
        (["--attack", "pgd[steps=-1]"], "steps"),
    ],
)
def test_bad_options_fail_before_anything_is_written(
    tmp_path: Path, model_path: Path, synthetic, extra, message
) -> None:  # noqa: ANN001
    out = tmp_path / "e"
    assert_one_line_error(run_cli(*_eval(model_path, out, synthetic), *extra), message)
    assert not out.exists()
    assert run_cli(*_eval(model_path, out, synthetic)).returncode == 0  # the corrected retry is not refused


class WrongOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class NaNOutputs(WrongOutputs):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1)) * float("nan")


def wrong_outputs() -> nn.Module:
    return WrongOutputs()


def nan_outputs() -> nn.Module:
    return NaNOutputs()


@pytest.mark.parametrize(
    ("factory", "message"),
    [("wrong_outputs", "expected logits of shape (200, 10)"), ("nan_outputs", "NaN or infinite logits")],
)
def test_a_model_that_cannot_be_evaluated_is_refused_before_anything_is_written(
    tmp_path: Path,
    synthetic,
    factory: str,
    message: str,  # noqa: ANN001
) -> None:
    from safetensors.torch import save_file

    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in globals()[factory]().state_dict().items()}, weights)
    out = tmp_path / "e"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{Path(__file__).parent}"}
    spec = f"test_run_folder:{factory}"
    args = [
        "eval",
        "--model-factory",
        spec,
        "--weights",
        str(weights),
        "--eps",
        "0.1",
        "--out",
        str(out),
        *_data(synthetic),
    ]
    proc = run_cli(*args, env=env)
    assert_one_line_error(proc, message)
    assert "%" not in proc.stdout  # no accuracy printed as if it were valid
    assert not out.exists()


def test_the_api_refuses_nan_logits_in_any_batch() -> None:
    from advmnist.errors import ModelError
    from advmnist.evaluation import evaluate

    x, y = torch.rand(8, 1, 28, 28), torch.zeros(8, dtype=torch.long)
    with pytest.raises(ModelError, match="NaN or infinite logits"):
        evaluate(NaNOutputs(), x, y, epsilons=[0.1], checks=False)


def test_a_bug_keeps_its_traceback_and_says_so(monkeypatch, capsys) -> None:  # noqa: ANN001
    def broken(args) -> int:  # noqa: ANN001
        raise KeyError("an internal slip")

    monkeypatch.setattr(advmnist.cli.misc, "list_models", broken)
    assert advmnist.cli.main(["models"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'an internal slip'" in err and "this is a bug in advmnist" in err


def test_a_value_error_from_a_bug_is_not_passed_off_as_a_user_mistake(monkeypatch, capsys) -> None:  # noqa: ANN001
    def broken(args) -> int:  # noqa: ANN001
        raise ValueError("not the user's fault")

    monkeypatch.setattr(advmnist.cli.misc, "list_attacks", broken)
    assert advmnist.cli.main(["attacks"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_debug_shows_the_traceback_of_a_user_error(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert advmnist.cli.main(["plot", str(tmp_path / "none.json"), "--out", str(tmp_path / "p.png")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert advmnist.cli.main(["plot", str(tmp_path / "none.json"), "--out", str(tmp_path / "p.png"), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("advmnist plot: error:")


def test_the_run_context_marks_the_manifest_and_drops_owned_files_only_afresh(tmp_path: Path) -> None:
    out = tmp_path / "run"
    spec = RunSpec(out, {"task": "t", "n": 1}, seed=3, owned=("rows.jsonl",))
    with open_run(spec) as run:
        assert not run.resuming and json.loads((out / "manifest.json").read_text())["finished"] is None
        (out / "rows.jsonl").write_text("row\n")
        (out / "mine.txt").write_text("the user's")
        time.sleep(0.01)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["finished"] and manifest["seed"] == 3 and manifest["total_seconds"] > 0
    with open_run(RunSpec(out, {"task": "t", "n": 1}, resume=True, owned=("rows.jsonl",))) as run:
        assert run.resuming and (out / "rows.jsonl").exists()
    assert json.loads((out / "manifest.json").read_text())["resumed"] == 1
    with pytest.raises(RunDirError, match="another configuration"):
        with open_run(RunSpec(out, {"task": "t", "n": 2}, resume=True)):
            pass
    with open_run(RunSpec(out, {"task": "t", "n": 2}, overwrite=True, owned=("rows.jsonl",))):
        assert not (out / "rows.jsonl").exists() and (out / "mine.txt").exists()  # ours replaced, theirs kept


def test_a_failed_start_leaves_no_folder_behind(tmp_path: Path) -> None:
    out = tmp_path / "new"
    with pytest.raises(ValueError, match="JSON"):
        with open_run(RunSpec(out, {"task": "t", "x": float("nan")})):  # fails after the folder was made
            pass
    assert not out.exists()
    held = tmp_path / "held"
    held.mkdir()
    other = FolderLock(held).acquire()
    try:
        with pytest.raises(RunDirError, match="in use"):
            with open_run(RunSpec(held, {"task": "t"})):
                pass
    finally:
        other.release()
    assert held.is_dir() and not (held / "config.json").exists()  # a folder it did not make stays
    with pytest.raises(OutputError, match="cannot create the folder"):
        with open_run(RunSpec(held / ".lock" / "x", {"task": "t"})):
            pass
