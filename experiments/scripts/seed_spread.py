"""Mean and spread of the seed study's numbers over several runs (one per seed).

    python experiments/scripts/seed_spread.py runs/seed-study runs/seed-study-s0 runs/seed-study-s1

Prints a markdown table: each run's accuracy, then the mean and the sample standard deviation.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def rows(run: Path) -> dict[str, float]:
    out = {}
    for model, train_file, attack_file in (
        ("baseline", "baseline_results.json", "fgsm_attack_results.json"),
        ("defended", "defended_training_results.json", "defended_fgsm_results.json"),
    ):
        attack = json.loads((run / attack_file).read_text())
        out[f"{model} clean"] = attack["clean_accuracy"]["value"]
        for r in attack["results"]:
            out[f"{model} FGSM {r['eps_label']}"] = r["robust_accuracy"]["value"]
        out[f"{model} training s"] = json.loads((run / train_file).read_text())["training_seconds"]
    return out


def main(runs: list[str]) -> None:
    per_run = [rows(Path(r)) for r in runs]
    seeds = [json.loads((Path(r) / "config.json").read_text())["seed"] for r in runs]
    print("| measure | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | std |")
    print("|---|" + "---:|" * (len(runs) + 2))
    for key in per_run[0]:
        values = [r[key] for r in per_run]
        scale, fmt = (1, "{:.1f}") if key.endswith(" s") else (100, "{:.2f}")
        cells = [fmt.format(v * scale) for v in values]
        mean, std = statistics.mean(values) * scale, statistics.stdev(values) * scale
        print(f"| {key} | " + " | ".join(cells) + f" | {fmt.format(mean)} | {fmt.format(std)} |")


if __name__ == "__main__":
    main(sys.argv[1:])
