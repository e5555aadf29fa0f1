"""`advmnist eval`: attack a saved model on test images, into a resumable run folder."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from advmnist.errors import UsageError, user_input
from advmnist.evaluation import Evaluation, Plan, parse_eps_list, run_plan
from advmnist.evaluation.evaluate import attack_settings
from advmnist.io import write_json
from advmnist.options import group, option
from advmnist.rundir import RunSpec, open_run
from advmnist.tasks.specs import (
    DataOptions,
    ModelSource,
    Output,
    Runtime,
    check_model,
    classes_of,
    test_points,
)

PER_SAMPLE = ("per_sample.jsonl", "per_sample.batches.jsonl")


@dataclass(frozen=True)
class EvalSpec:
    """One evaluation: which model, which attacks at which budgets on which test images, where to.

    The test images are every `every`-th, the first `n` of those; `resume` (in `output`)
    continues a killed evaluation of the same configuration and refuses any other.

    Defaults: `attack="fgsm"` at `eps="2/255,4/255,8/255"` under `norm="linf"`, every test image,
    `batch_size=256`, attack `seed=0`, an fp32 search (`bf16=True`: ~2.5x faster on a CPU, success
    still decided in fp32), the dataset of `data` (`DataOptions`), and `runtime` (device,
    progress: never a result) on the CPU.
    """

    model: ModelSource
    output: Output = group()
    attack: str = option("fgsm", "one or a comma list, e.g. fgsm,pgd[steps=50,restarts=10],autoattack")
    eps: str = option("2/255,4/255,8/255", "comma list, fractions allowed: 2/255,0.1")
    norm: str = option("linf", "linf or l2")
    n: int | None = option(None, "first N test images (default all)")
    every: int = option(1, "take every K-th test image (10: a fixed 1,000-image subset)")
    batch_size: int = option(256, "images per batch")
    seed: int = option(0, "seed of the attacks' random starts")
    bf16: bool = option(False, "search in bf16 (~2.5x faster on a CPU); success still decided in fp32")
    data: DataOptions = group(DataOptions)
    runtime: Runtime = field(default_factory=Runtime)
    plan: Plan = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.model, str):
            object.__setattr__(self, "model", ModelSource(self.model))
        if isinstance(self.output, str):
            object.__setattr__(self, "output", Output(self.output))
        object.__setattr__(
            self, "plan", attack_plan(self.attack, self.eps, self.norm, self.batch_size, self.seed, self.bf16)
        )
        if self.every < 1 or (self.n is not None and self.n < 1):
            raise UsageError(f"--every and --n must be >= 1, got {self.every}, {self.n}")


def attack_plan(attack: str, eps: str, norm: str, batch_size: int, seed: int, bf16: bool) -> Plan:
    """The attacks, norm and budgets of a command, checked as user input (one clear line when wrong)."""
    with user_input():
        budgets = parse_eps_list(eps, max_eps=1.0 if norm == "linf" else None)
        return Plan.build(
            attack,
            norm=norm,
            epsilons=[e for _, e in budgets],
            labels=[label for label, _ in budgets],
            batch_size=batch_size,
            seed=seed,
            bf16=bf16,
        )


def check_budget(plan: Plan, pixels: int) -> None:
    """An L2 eps beyond the diameter of the image box allows every image: surely a typo."""
    diameter = math.sqrt(pixels)
    largest = max((e for _, e in plan.budgets), default=0.0)
    if plan.norm == "l2" and largest > diameter:
        raise UsageError(
            f"L2 eps {largest:g} is larger than the diameter of the image box ({diameter:g} for {pixels} pixels): "
            "every image would be within reach"
        )


def evaluate_checkpoint(spec: EvalSpec) -> Evaluation:
    """Attack the model of `spec`; write `eval_results.json` + `per_sample.jsonl` into its run folder.

    Everything is checked first (options, model, data, one forward pass of the model); a failed
    start leaves nothing behind.
    """
    device = spec.runtime.device
    model, card = spec.model.load(device)
    test = spec.data.load("test")
    index = test_points(len(test), spec.every, spec.n)
    check_budget(spec.plan, test.x[0].numel())
    check_model(model, test.x[index[: spec.batch_size]].to(device), classes_of(test.y), spec.model.name)
    config = {
        "task": "eval",
        "model": spec.model.name,
        "model_sha256": card["sha256"],
        "attacks": {a.name: attack_settings(a) for a in spec.plan.attacks},
        "norm": spec.norm,
        "eps": [label for label, _ in parse_eps_list(spec.eps)],
        "n": len(index),
        "every": spec.every,
        "batch_size": spec.batch_size,
        "seed": spec.seed,
        "data_sha256": test.sha256,
    }
    run_spec = RunSpec(
        spec.output.path,
        config,
        overwrite=spec.output.overwrite,
        resume=spec.output.resume,
        seed=spec.seed,
        device=device,
        command=spec.runtime.command,
        data_sha256=test.sha256,
        owned=PER_SAMPLE,
    )
    with open_run(run_spec) as run:
        result = run_plan(
            model,
            test.x[index],
            test.y[index],
            spec.plan,
            indices=index.tolist(),
            out=run.path / PER_SAMPLE[0],
            resume=run.resuming,
            progress=spec.runtime.progress,
        )
        summary: dict[str, Any] = {
            "schema_version": 2,
            "model": spec.model.name,
            "arch": card["arch"],
            "every": spec.every,
            **result.to_json(),
            "per_sample": PER_SAMPLE[0],
        }
        write_json(run.path / "eval_results.json", summary)
    return result
