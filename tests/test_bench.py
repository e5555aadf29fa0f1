from __future__ import annotations

from pathlib import Path

from advmnist.bench import run_benchmarks
from advmnist.data import DatasetSpec


def test_bench_writes_a_table_of_ratios(tmp_path: Path, synthetic, spec: DatasetSpec) -> None:  # noqa: ANN001
    out = run_benchmarks(tmp_path / "b.md", batches=1, data_dir=str(synthetic[0]), spec=spec)
    text = out.read_text()
    for workload in ("train standard", "train fgsm-mix", "clean eval", "FGSM eval at 3 eps"):
        row = next(line for line in text.splitlines() if line.startswith(f"| {workload}"))
        ratio = float(row.split("**")[1].rstrip("x"))
        assert ratio > 0
    assert "torch" in text and "advmnist bench --batches 1" in text
