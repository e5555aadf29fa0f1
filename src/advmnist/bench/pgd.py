"""PGD-40 contenders for `advmnist bench`: ours fp32 / bf16, the bare limit and the peer libraries.

`race` runs every contender on the same batch in turn, the order rotated from batch to batch, so that
the load of a shared machine falls on all of them alike; ratios are taken per batch, back to back.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from advmnist.attacks import PGD, Threat

Attacker = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, y) -> x_adv
Times = dict[str, list[float]]  # contender -> one number per batch
PGD_EPS, PGD_STEPS = 0.05, 40


def bare_pgd_limit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = PGD_STEPS) -> None:
    """The limit for PGD on one batch: `steps` input-gradient forward+backward passes, nothing else."""
    x = x.contiguous(memory_format=torch.channels_last)
    for _ in range(steps):
        xa = x.detach().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(xa), y), xa)


def pgd_peers(model: nn.Module, eps: float = PGD_EPS, steps: int = PGD_STEPS) -> dict[str, Attacker]:
    """The reference PGD implementations that import, each `(x, y) -> x_adv`, set up as its docs show.

    Same eps, steps, step size (2.5 * eps / steps), one uniform random start, fp32, the model as given
    (NCHW, weights requiring grad); none of them stops early. They are dev extras: missing ones are skipped.
    """
    step_size = 2.5 * eps / steps
    peers: dict[str, Attacker] = {}
    with contextlib.suppress(ImportError):
        import torchattacks  # type: ignore[import-untyped]

        reference = torchattacks.PGD(model, eps=eps, alpha=step_size, steps=steps, random_start=True)
        peers[f"torchattacks {torchattacks.__version__}"] = reference
    with contextlib.suppress(ImportError), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Foolbox 3.3.4 imports scipy.ndimage.filters
        import foolbox  # type: ignore[import-untyped]

        fmodel = foolbox.PyTorchModel(model, bounds=(0, 1))
        linf_pgd = foolbox.attacks.LinfPGD(abs_stepsize=step_size, steps=steps, random_start=True)
        peers[f"Foolbox {foolbox.__version__}"] = lambda x, y: linf_pgd(fmodel, x, y, epsilons=eps)[1]
    with contextlib.suppress(ImportError):
        import art  # type: ignore[import-untyped]
        from art.attacks.evasion import ProjectedGradientDescentPyTorch  # type: ignore[import-untyped]
        from art.estimators.classification import PyTorchClassifier  # type: ignore[import-untyped]

        classifier = PyTorchClassifier(
            model, nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10, clip_values=(0.0, 1.0)
        )
        art_pgd = ProjectedGradientDescentPyTorch(
            classifier, eps=eps, eps_step=step_size, max_iter=steps, num_random_init=1, batch_size=256, verbose=False
        )
        peers[f"ART {art.__version__}"] = lambda x, y: torch.from_numpy(art_pgd.generate(x.numpy(), y.numpy()))
    return peers


def pgd_contenders(model: nn.Module) -> dict[str, Attacker]:
    """Ours fp32 and bf16, the bare limit (returns x) and the peers: every one `(x, y) -> x_adv`."""
    threat = Threat("linf", PGD_EPS)
    fastest = copy.deepcopy(model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    fastest.eval().requires_grad_(False)

    def limit(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        bare_pgd_limit(fastest, x, y)
        return x

    return {
        "ours fp32": lambda x, y: PGD(steps=PGD_STEPS)(model, x, y, threat).x_adv,
        "ours bf16": lambda x, y: PGD(steps=PGD_STEPS, bf16=True)(model, x, y, threat).x_adv,
        "limit": limit,
        **pgd_peers(model),
    }


def race(contenders: dict[str, Attacker], x: torch.Tensor, y: torch.Tensor, model: nn.Module) -> tuple[Times, Times]:
    """Each contender on each batch of 256 in turn (order rotated per batch): seconds and robust points."""
    seconds: Times = {name: [] for name in contenders}
    robust: Times = {name: [] for name in contenders}
    for attack in contenders.values():  # warm-up: oneDNN builds its kernels on first use
        attack(x[:64], y[:64])
    names = list(contenders)
    for b, i in enumerate(torch.arange(len(y)).split(256)):
        for name in names[b % len(names) :] + names[: b % len(names)]:
            start = time.perf_counter()
            x_adv = contenders[name](x[i], y[i])
            seconds[name].append(time.perf_counter() - start)
            model.zero_grad(set_to_none=True)  # Foolbox and ART call loss.backward()
            with torch.no_grad():
                robust[name].append(float((model(x_adv).argmax(1) == y[i]).sum()))
    return seconds, robust


def paired_speedup(seconds: Times, ours: str, other: str) -> float:
    """Median over batches of the time ratio measured back to back: `ours` is that many times faster."""
    return statistics.median(b / a for a, b in zip(seconds[ours], seconds[other], strict=True))
