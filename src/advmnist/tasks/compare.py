"""`advmnist compare`: several models evaluated alike, into one folder with tables, a plot and a report."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from advmnist.errors import UsageError
from advmnist.evaluation import parse_eps_list
from advmnist.io import read_json, write_json
from advmnist.models import load_model
from advmnist.options import group, option
from advmnist.rundir import RunSpec, open_run
from advmnist.tasks.evaluate import EvalSpec, attack_plan, evaluate_checkpoint
from advmnist.tasks.specs import DataOptions, ModelSource, Output, Runtime, missing_files

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompareSpec:
    """`models` ((name, checkpoint) pairs) evaluated alike: `attack` on every `every`-th test image and
    `strong_attack` (AutoAttack; "" to skip) on every `strong_every`-th, at each eps, into
    `<out>/<name>/`; a killed comparison continues with `resume`. `advmnist report OUT` rebuilds the
    report from the files.

    Defaults: `title="Comparison"`, Linf `eps="0.1,0.2,0.3"`, `attack="fgsm,pgd[steps=50]"` on every
    10th image (1,000), AutoAttack on every 50th (200), a bf16 search with fp32 verdicts
    (`fp32=True`: search in fp32 too), attack `seed=0`, the dataset of `data` (`DataOptions`), and
    `runtime` (device, progress: never a result) on the CPU.
    """

    models: tuple[tuple[str, str], ...]
    output: Output = group()
    title: str = option("Comparison", "report title")
    eps: str = option("0.1,0.2,0.3", "Linf budgets, comma list")
    attack: str = option("fgsm,pgd[steps=50]", "attacks on the larger subset")
    every: int = option(10, "their test images: every K-th (10: 1,000)")
    strong_attack: str = option("autoattack", "attack on the smaller subset ('' to skip)")
    strong_every: int = option(50, "its test images: every K-th (50: 200)")
    fp32: bool = option(False, "search in fp32 too (default: bf16 search, fp32 verdicts)")
    seed: int = option(0, "seed of the attacks' random starts", cli=False)
    data: DataOptions = group(DataOptions)
    runtime: Runtime = field(default_factory=Runtime)

    def __post_init__(self) -> None:
        if isinstance(self.output, str):
            object.__setattr__(self, "output", Output(self.output))
        names = [name for name, _ in self.models]
        if not self.models or len(set(names)) != len(names):
            raise UsageError(f"give each model once, with a distinct name: got {', '.join(names) or 'none'}")
        bad = [n for n in names if not n or not all(c.isalnum() or c in "-_." for c in n) or n.startswith(".")]
        if bad:
            raise UsageError(f"model names may hold letters, digits, '-', '_' and '.': {', '.join(bad)}")
        if self.every < 1 or self.strong_every < 1:
            raise UsageError(f"--every and --strong-every must be >= 1, got {self.every}, {self.strong_every}")
        attack_plan(self.attack, self.eps, "linf", 256, self.seed, False)  # checks the attacks and budgets
        if self.strong_attack:
            attack_plan(self.strong_attack, self.eps, "linf", 256, self.seed, False)

    def evaluations(self, name: str) -> list[tuple[str, str, int]]:
        """(sub-folder, attack, every) of each evaluation of model `name`."""
        found = [(f"{name}/attacks", self.attack, self.every)]
        if self.strong_attack:
            found.append((f"{name}/strong", self.strong_attack, self.strong_every))
        return found


def _training_facts(path: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Recipe, eps, epochs and training seconds from the card, else from the run's training_results.json."""
    recipe = card.get("recipe") or {}
    seconds = (card.get("training") or {}).get("seconds")
    results = path.parent / "training_results.json"
    if seconds is None and results.is_file():
        seconds = read_json(results).get("training_seconds")
    return {
        "recipe": recipe.get("recipe", "unknown"),
        "train_eps": recipe.get("train_eps") if recipe.get("recipe") != "standard" else None,
        "epochs": recipe.get("epochs"),
        "train_seconds": seconds,
    }


@torch.no_grad()
def inference_us_per_image(model: torch.nn.Module, x: torch.Tensor, *, repeats: int = 5) -> float:
    """Microseconds per image of an fp32 forward in batches of 256, the best of `repeats` passes."""
    model.eval()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in x.split(256):
            model(batch)
        best = min(best, time.perf_counter() - start)
    return 1e6 * best / len(x)


def compare_models(spec: CompareSpec) -> list[Path]:
    """Run `spec`; write comparison.json, report.md/.txt and a plot. Returns the report files."""
    from advmnist.reporting.comparison import COMPARISON, SCHEMA, build_comparison_report

    missing_files([p for _, p in spec.models], "model(s)")
    loaded = {name: load_model(path) for name, path in spec.models}  # every checkpoint checked before any work
    test = spec.data.load("test")
    config = {
        "task": "compare",
        "models": {name: {"path": path, "sha256": loaded[name][1]["sha256"]} for name, path in spec.models},
        "eps": spec.eps,
        "attack": spec.attack,
        "every": spec.every,
        "strong_attack": spec.strong_attack,
        "strong_every": spec.strong_every,
        "bf16": not spec.fp32,
        "seed": spec.seed,
    }
    run_spec = RunSpec(
        spec.output.path,
        config,
        overwrite=spec.output.overwrite,
        resume=spec.output.resume,
        seed=spec.seed,
        device=spec.runtime.device,
        command=spec.runtime.command,
        data_sha256=test.sha256,
    )
    with open_run(run_spec) as run:
        rows = [
            _evaluate_one(spec, run.path, run.resuming, name, path, loaded[name], test.x[:1024])
            for name, path in spec.models
        ]
        labels = [label for label, _ in parse_eps_list(spec.eps)]
        comparison = {
            "schema_version": SCHEMA,
            "title": spec.title,
            "eps": labels,
            "models": rows,
            "command": spec.runtime.command,
        }
        write_json(run.path / COMPARISON, comparison)
    return build_comparison_report(spec.output.path)


def _evaluate_one(
    spec: CompareSpec,
    folder: Path,
    resuming: bool,
    name: str,
    path: str,
    loaded: tuple[torch.nn.Module, dict[str, Any]],
    timing_images: torch.Tensor,
) -> dict[str, Any]:
    from advmnist.reporting.tables import ordinal_every

    device = spec.runtime.device
    for sub, attack, every in spec.evaluations(name):
        log.info("%s: %s on %s", name, attack, ordinal_every(every))
        output = Output(str(folder / sub), overwrite=not resuming, resume=resuming)
        evaluate_checkpoint(
            EvalSpec(
                ModelSource(path),
                output,
                attack=attack,
                eps=spec.eps,
                every=every,
                bf16=not spec.fp32,
                seed=spec.seed,
                data=spec.data,
                runtime=replace(spec.runtime),
            )
        )
    model, card = loaded
    return {
        "name": name,
        "model": path,
        "sha256": card["sha256"],
        "arch": card["arch"],
        "params": card["params"],
        **_training_facts(Path(path), card),
        "inference_us_per_image": inference_us_per_image(model.to(device), timing_images.to(device)),
        "evaluations": [f"{sub}/eval_results.json" for sub, _, _ in spec.evaluations(name)],
    }
