"""AutoAttack (standard) against the official code on the same model, images and budget.

Both run the standard list (APGD-CE, APGD-T, FAB-T, Square; 100 iterations, 9 targets, 5000
queries) on the same points; each robust accuracy is decided by one fp32 forward pass of the same
model. The runs alternate (official, ours, official, ours, ...) over disjoint chunks of the images so
that machine noise hits both alike; the ratio of the summed seconds is what counts.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass

import torch
from torch import nn

from advmnist.attacks import AutoAttack, Threat


@dataclass(frozen=True)
class AutoAttackRace:
    n: int
    eps: float
    clean: float
    ours_robust: float
    official_robust: float
    ours_seconds: float
    official_seconds: float
    chunks: int
    ours_broken_by: dict[str, int]

    @property
    def speedup(self) -> float:
        return self.official_seconds / self.ours_seconds

    @property
    def gap_pp(self) -> float:
        """Our robust accuracy minus the official one, in percentage points (<= 0: at least as strong)."""
        return 100 * (self.ours_robust - self.official_robust)


def _robust(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return (model(x).argmax(1) == y) & (model(x_adv).argmax(1) == y)


def official_autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    """The official code (`pyautoattack`), standard version, as its README runs it."""
    from pyautoattack import AutoAttack as Official  # dev-only reference

    attack = Official(model, norm="Linf", eps=eps, version="standard", seed=seed, device=str(x.device))
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
        return attack.run_standard_evaluation(x, y, batch_size=len(x))[0]


def race_autoattack(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, chunks: int = 4, seed: int = 0
) -> AutoAttackRace:
    """Alternate official and ours over `chunks` disjoint parts of (x, y); sum times and robust points."""
    model.eval()
    ours_attack = AutoAttack()
    robust = {"ours": 0, "official": 0}
    seconds = {"ours": 0.0, "official": 0.0}
    broken_by: dict[str, int] = {}
    for xc, yc in zip(x.chunk(chunks), y.chunk(chunks), strict=True):
        for who in ("official", "ours"):
            start = time.perf_counter()
            if who == "official":
                x_adv = official_autoattack(model, xc, yc, eps, seed)
            else:
                result = ours_attack(model, xc, yc, Threat("linf", eps), seed=seed)
                x_adv = result.x_adv
                for name in result.broken_by or ():
                    if name is not None:
                        broken_by[name] = broken_by.get(name, 0) + 1
            seconds[who] += time.perf_counter() - start
            robust[who] += int(_robust(model, xc, yc, x_adv).sum())
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    n = len(y)
    return AutoAttackRace(
        n=n,
        eps=eps,
        clean=clean,
        ours_robust=robust["ours"] / n,
        official_robust=robust["official"] / n,
        ours_seconds=seconds["ours"],
        official_seconds=seconds["official"],
        chunks=chunks,
        ours_broken_by=broken_by,
    )


def render_race(race: AutoAttackRace, command: str, machine: str) -> str:
    """The markdown section: both robust accuracies, both times, and whether the targets hold."""
    fast = race.speedup >= 3.0
    strong = race.gap_pp <= 0.3
    return "\n".join(
        [
            "# AutoAttack (standard) against the official code",
            "",
            f"Written by `{command}` on {machine}. Same model, same {race.n} images, Linf eps {race.eps:g};",
            f"official and ours alternate over {race.chunks} chunks of the images. Clean accuracy {race.clean:.2%}.",
            "",
            "| | robust accuracy | seconds |",
            "|---|---:|---:|",
            f"| official (`pyautoattack` 0.2.0) | {race.official_robust:.2%} | {race.official_seconds:.1f} |",
            f"| advmnist `autoattack` | {race.ours_robust:.2%} | {race.ours_seconds:.1f} |",
            "",
            f"- speed: **{race.speedup:.2f}x** the official code (target >= 3x: {'met' if fast else 'not met'})",
            f"- strength: ours minus official **{race.gap_pp:+.2f} pp** (target <= +0.3 pp: "
            f"{'met' if strong else 'not met'})",
            f"- which attack broke the points first (ours): {race.ours_broken_by or 'none'}",
            "",
        ]
    )
