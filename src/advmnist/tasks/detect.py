"""`advmnist detect`: feature squeezing on a saved model, against plain and adaptive attacks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from advmnist.errors import UsageError, user_input
from advmnist.evaluation import parse_eps_list
from advmnist.evaluation.evaluate import attack_settings
from advmnist.io import write_json
from advmnist.options import group, option
from advmnist.rundir import RunSpec, open_run
from advmnist.tasks.specs import DataOptions, ModelSource, Output, Runtime, check_model, classes_of, test_points


@dataclass(frozen=True)
class DetectSpec:
    """Feature squeezing (Xu et al. 2018) on `model`: calibrated on the last `calibration` training
    images to flag a fraction `fpr` of them, evaluated on every `every`-th test image (the first `n`),
    attacked at Linf `eps` by `attack` (which ignore the detector) and by the adaptive attack.

    Defaults: `attack="fgsm,pgd"`, `eps="0.1"`, every test image (`n=None`, `every=1`),
    `calibration=1000`, `fpr=0.05`, attack `seed=0`, the dataset of `data` (`DataOptions`), and
    `runtime` (device, progress: never a result) on the CPU.
    """

    model: ModelSource
    output: Output = group()
    attack: str = option("fgsm,pgd", "attacks that ignore the detector (the adaptive one always runs)")
    eps: str = option("0.1", "one Linf eps, fractions allowed")
    n: int | None = option(None, "first N test images (default all)")
    every: int = option(1, "take every K-th test image")
    calibration: int = option(1000, "calibrate on the last N training images")
    fpr: float = option(0.05, "clean false-positive rate to calibrate for")
    seed: int = option(0, "seed of the attacks' random starts")
    data: DataOptions = group(DataOptions)
    runtime: Runtime = field(default_factory=Runtime)

    def __post_init__(self) -> None:
        from advmnist.attacks import parse_attacks

        if isinstance(self.model, str):
            object.__setattr__(self, "model", ModelSource(self.model))
        if isinstance(self.output, str):
            object.__setattr__(self, "output", Output(self.output))
        if self.model.path is None:
            raise UsageError("detect takes an advmnist checkpoint (--model)")
        if self.output.resume:
            raise UsageError("detect does not resume (it takes minutes): use --overwrite to run it again")
        with user_input():
            if len(parse_eps_list(self.eps, max_eps=1.0)) != 1:
                raise ValueError(f"detect takes one eps, got {self.eps!r}")
            unfit = [a.name for a in parse_attacks(self.attack) if "linf" not in a.norms]
        if unfit:
            raise UsageError(f"detect runs Linf attacks, and {', '.join(unfit)} has no Linf version")
        if not 0 < self.fpr < 1:
            raise UsageError(f"--fpr must be in (0, 1), got {self.fpr}")
        if self.every < 1 or self.calibration < 1:
            raise UsageError(f"--every and --calibration must be >= 1, got {self.every}, {self.calibration}")


def detect_checkpoint(spec: DetectSpec) -> dict[str, Any]:
    """Run `spec`; write `detect_results.json`, `roc.png` and `report.md` into its run folder."""
    from advmnist.attacks import parse_attacks
    from advmnist.defenses import evaluate_detector
    from advmnist.reporting.detection import build_detection_report
    from advmnist.reporting.roc import plot_roc

    device = spec.runtime.device
    (label, eps), attacks = parse_eps_list(spec.eps)[0], parse_attacks(spec.attack)
    model, card = spec.model.load(device)
    train, test = spec.data.load("train"), spec.data.load("test")
    if spec.calibration >= len(train):
        raise UsageError(f"--calibration must be below {len(train)} (the training images), got {spec.calibration}")
    index = test_points(len(test), spec.every, spec.n)
    check_model(model, test.x[index[:256]].to(device), classes_of(test.y), spec.model.name)
    data_sha256 = {**train.sha256, **test.sha256}
    config = {
        "task": "detect",
        "model": spec.model.name,
        "model_sha256": card["sha256"],
        "attacks": {a.name: attack_settings(a) for a in attacks},
        "eps": label,
        "n": len(index),
        **{k: getattr(spec, k) for k in ("every", "calibration", "fpr", "seed")},
        "data_sha256": data_sha256,
    }
    run_spec = RunSpec(
        spec.output.path, config, overwrite=spec.output.overwrite, seed=spec.seed, device=device,
        command=spec.runtime.command, data_sha256=data_sha256, resumable=False,
    )  # fmt: skip
    with open_run(run_spec) as run:
        calibration = (train.x[-spec.calibration :].to(device), train.y[-spec.calibration :].to(device))
        results = evaluate_detector(
            model,
            test.x[index].to(device),
            test.y[index].to(device),
            eps,
            attacks,
            fpr=spec.fpr,
            seed=spec.seed,
            calibration=calibration,
        )
        summary = {
            "schema_version": 1,
            "model": spec.model.name,
            "arch": card["arch"],
            "eps_label": label,
            "every": spec.every,
            "calibration_images": f"the last {spec.calibration} training images",
            **results,
            "plot": "roc.png",
        }
        write_json(run.path / "detect_results.json", summary)
        plot_roc(summary, run.path / "roc.png")
        build_detection_report(run.path)
    return summary
