"""Each preset of experiments/configs/ resolves to the settings its committed run recorded.

experiments/configs/NAME.toml made the run in experiments/results/NAME/ (its config.json holds the
resolved settings). A setting added to TrainConfig after a run was made is not in that run's
config.json and must be at its default. Was a test (tests/test_training.py) until issue 24 moved the
variant presets out of the product; run it after changing configs/robust-seed-cnn.toml, which most of
these name as their `base`:

    PYTHONPATH=src python experiments/scripts/check_presets.py
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from advmnist.config import train_config
from advmnist.training import RECIPES, TrainConfig

LAB = Path(__file__).resolve().parents[1]


def main() -> int:
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    defaults |= {f.name: f.default for cls in RECIPES.values() for f in dataclasses.fields(cls)}
    failed = 0
    for preset in sorted((LAB / "configs").glob("*.toml")):
        recorded = LAB / "results" / preset.stem / "config.json"
        if not recorded.exists():
            print(f"{preset.name}: no run record ({recorded.parent.name}/ holds no config.json)")
            continue
        run = json.loads(recorded.read_text())
        cfg, arch = train_config(preset)
        settings = {**cfg.to_dict(), "arch": arch}
        drift = [
            f"{key} = {value!r}, the run had {run.get(key, defaults.get(key))!r}"
            for key, value in settings.items()
            if value != run.get(key, defaults.get(key))
        ]
        print(f"{preset.name}: " + ("; ".join(drift) if drift else "as recorded"))
        failed += bool(drift)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
