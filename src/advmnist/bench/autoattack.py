"""AutoAttack (standard) against the official code on the same model, images and budget.

Both run the standard list (APGD-CE, APGD-T, FAB-T, Square; 100 iterations, 9 targets, 5000
queries) on the same points; each robust accuracy is decided by one fp32 forward pass of the same
model. The contestants take turns on each chunk of the images so that machine noise hits them
alike; the ratio of the summed seconds is what counts.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass

import torch
from torch import nn

from advmnist.attacks import AutoAttack, Threat

CONTESTANTS = ("official", "ours fp32", "ours bf16")


@dataclass(frozen=True)
class AutoAttackRace:
    n: int
    eps: float
    clean: float
    robust: dict[str, float]  # contestant -> robust accuracy
    seconds: dict[str, float]  # contestant -> summed seconds
    chunks: int
    broken_by: dict[str, dict[str, int]]  # our contestants -> attack -> points it broke first

    def speedup(self, who: str) -> float:
        return self.seconds["official"] / self.seconds[who]

    def gap_pp(self, who: str) -> float:
        """Robust accuracy of `who` minus the official one, in percentage points (<= 0: at least as strong)."""
        return 100 * (self.robust[who] - self.robust["official"])


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
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, chunk_size: int = 100, seed: int = 0
) -> AutoAttackRace:
    """Official, ours in fp32 and ours with the bf16 search, in turn on each chunk of (x, y).

    Each chunk is one batch for every contestant (the official code gets `batch_size=len(chunk)`).
    """
    model.eval()
    robust = dict.fromkeys(CONTESTANTS, 0)
    seconds = dict.fromkeys(CONTESTANTS, 0.0)
    broken_by: dict[str, dict[str, int]] = {who: {} for who in CONTESTANTS[1:]}
    chunks = max(1, -(-len(y) // chunk_size))
    for xc, yc in zip(x.split(chunk_size), y.split(chunk_size), strict=True):
        for who in CONTESTANTS:
            start = time.perf_counter()
            if who == "official":
                x_adv = official_autoattack(model, xc, yc, eps, seed)
            else:
                result = AutoAttack(bf16=who == "ours bf16")(model, xc, yc, Threat("linf", eps), seed=seed)
                x_adv = result.x_adv
                for name in result.broken_by or ():
                    if name is not None:
                        broken_by[who][name] = broken_by[who].get(name, 0) + 1
            seconds[who] += time.perf_counter() - start
            robust[who] += int(_robust(model, xc, yc, x_adv).sum())
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    n = len(y)
    return AutoAttackRace(
        n=n,
        eps=eps,
        clean=clean,
        robust={who: count / n for who, count in robust.items()},
        seconds=seconds,
        chunks=chunks,
        broken_by=broken_by,
    )


def render_race(race: AutoAttackRace, command: str, machine: str) -> str:
    """The markdown section: every robust accuracy and time, and whether the targets hold."""
    rows = [
        f"| {'official (`pyautoattack` 0.2.0)' if who == 'official' else f'advmnist `autoattack`, {who[5:]}'} "
        f"| {race.robust[who]:.2%} | {race.seconds[who]:.1f} | "
        f"{'1.00x' if who == 'official' else f'**{race.speedup(who):.2f}x**'} | "
        f"{'' if who == 'official' else f'{race.gap_pp(who):+.2f} pp'} |"
        for who in CONTESTANTS
    ]
    verdicts = []
    for who in CONTESTANTS[1:]:
        fast, strong = race.speedup(who) >= 3.0, race.gap_pp(who) <= 0.3
        verdicts.append(
            f"- {who}: {race.speedup(who):.2f}x the official code (target >= 3x: {'met' if fast else 'not met'}), "
            f"robust accuracy {race.gap_pp(who):+.2f} pp (target <= +0.3 pp: {'met' if strong else 'not met'}); "
            f"first breakers {race.broken_by[who] or 'none'}"
        )
    return "\n".join(
        [
            "# AutoAttack (standard) against the official code",
            "",
            f"Written by `{command}` on {machine}. Same model, same {race.n} images, Linf eps {race.eps:g}, in",
            f"{race.chunks} chunk(s); on each chunk the official code, then ours in fp32, then ours with the bf16",
            "search (success decided in fp32) run in turn, one batch per chunk each. Robust accuracy is decided by",
            f"one fp32 forward pass of the same model for all three. Clean accuracy {race.clean:.2%}.",
            "",
            "| | robust accuracy | seconds | speed vs official | robust accuracy vs official |",
            "|---|---:|---:|---:|---:|",
            *rows,
            "",
            *verdicts,
            "",
        ]
    )
