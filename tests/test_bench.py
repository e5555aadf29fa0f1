from __future__ import annotations

from pathlib import Path

from advmnist.bench import default_output, run_benchmarks
from advmnist.data import DatasetSpec
from conftest import ROOT, run_cli


def test_bench_writes_a_table_of_ratios(tmp_path: Path, synthetic, spec: DatasetSpec) -> None:  # noqa: ANN001
    # The table's structure, not its speed: timings belong to the benchmark itself (docs/benchmarks*.md).
    out = run_benchmarks(tmp_path / "b.md", batches=1, data_dir=str(synthetic[0]), spec=spec)
    text = out.read_text()
    for workload in ("train standard", "train fgsm-mix", "clean eval", "FGSM eval at 3 eps"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {workload}"))
        ours, bare, ratio = (float(c.strip().strip("*x").replace(",", "")) for c in row.split("|")[2:5])
        if "vs" not in workload:  # a plain line: the ratio is ours / bare as printed (rounded to whole units)
            assert abs(ratio - ours / bare) <= 0.01 + ratio * (1 / ours + 1 / bare), row
    assert "torch" in text and "advmnist bench --batches 1" in text


def test_bench_writes_where_it_is_told_and_defaults_to_docs_only_in_this_repository(tmp_path: Path) -> None:
    assert default_output("benchmarks.md", ROOT) == ROOT / "docs" / "benchmarks.md"
    assert default_output("benchmarks.md", tmp_path) == tmp_path / "benchmarks.md"
    (tmp_path / "docs").mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "someone-else"\n')
    assert default_output("benchmarks.md", tmp_path) == tmp_path / "benchmarks.md"  # another project's docs/
    proc = run_cli("bench", "--batches", "0", "--out", str(tmp_path / "x.md"))
    assert proc.returncode == 2 and "--batches must be >= 1" in proc.stderr and not (tmp_path / "x.md").exists()


def test_autoattack_race_against_the_official_code(tmp_path: Path, synthetic) -> None:  # noqa: ANN001
    from advmnist.models import create_model, save_model
    from conftest import require, run_cli

    require("pyautoattack", "make test installs it (--no-deps)")
    save_model(create_model("linear"), tmp_path / "lin")
    out = tmp_path / "aa.md"
    data = ["--data-dir", str(synthetic[0]), "--checksums", str(synthetic[1])]
    args = ["--autoattack", str(tmp_path / "lin.safetensors"), "--autoattack-n", "8", "--autoattack-eps", "0.05"]
    proc = run_cli("bench", *args, "--out", str(out), *data, "-q")
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "official (`pyautoattack` 0.2.0)" in text and "the official code (target >= 3x" in text
    rows = [line for line in text.splitlines() if line.startswith("| official") or line.startswith("| advmnist")]
    official, fp32, bf16 = (float(r.split("|")[2].strip().rstrip("%")) for r in rows)
    assert fp32 <= official + 100 / 8 and bf16 <= official + 100 / 8  # never weaker by more than one point of 8
