"""Training objectives: `objective(model, x, y, eps) -> LossOutput`, separate from the loop that runs them.

`eps` is this step's training budget (the loop ramps it up); objectives that craft adversarial
examples do so in eval mode with frozen weights (the attack contract), then compute the loss in the
model's training mode. Random starts draw their seed from torch's global RNG, whose state every
training checkpoint saves, so a resumed run crafts the same examples. Each `LossOutput` can recompute
its loss on the same examples with the model's current weights (`again`): adversarial weight
perturbation (`training/awp.py`) takes the loss a second time at perturbed weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advmnist.attacks import FGSM, PGD, GradientAttack, Threat, eval_mode
from advmnist.attacks.norms import gaussian_noise, linf_random_init
from advmnist.precision import use_bf16

Tensor = torch.Tensor


@dataclass(frozen=True)
class LossOutput:
    loss: Tensor  # scalar to minimize
    logits: Tensor  # (B', 10) logits of the examples the loss saw
    y: Tensor  # (B',) their labels
    again: Callable[[nn.Module], LossOutput] | None = None  # the same loss on the same examples, current weights


Objective = Callable[[nn.Module, Tensor, Tensor, float], LossOutput]


def _seed() -> int:
    return int(torch.randint(0, 2**31 - 1, ()))


def _craft(attack: GradientAttack, model: nn.Module, x: Tensor, y: Tensor, eps: float) -> Tensor:
    """Adversarial examples from `attack` at `eps`, outside any autocast (the attack picks its precision)."""
    if eps <= 0:
        return x
    with torch.autocast(device_type=x.device.type, enabled=False):
        return attack.generate(model, x, y, Threat("linf", eps), seed=_seed())


def _cross_entropy(x: Tensor, y: Tensor) -> Callable[[nn.Module], LossOutput]:
    """Cross-entropy on these examples, as a function of the model (recomputable: `again`)."""

    def loss(model: nn.Module) -> LossOutput:
        logits = model(x)
        return LossOutput(F.cross_entropy(logits, y), logits, y, again=loss)

    return loss


def standard_ce() -> Objective:
    """Plain cross-entropy on clean examples."""

    def objective(model: nn.Module, x: Tensor, y: Tensor, eps: float) -> LossOutput:
        return _cross_entropy(x, y)(model)

    return objective


def fgsm_mix(*, bf16: bool = False) -> Objective:
    """The seed's defense: half of each batch stays clean, the other half becomes FGSM(eps).

    The FGSM examples are crafted on the current weights in eval mode (no dropout noise in the
    gradient) and the loss is the mean cross-entropy over the whole mixed batch.
    """
    attack = FGSM(bf16=bf16)

    def objective(model: nn.Module, x: Tensor, y: Tensor, eps: float) -> LossOutput:
        half = len(x) // 2
        with torch.autocast(device_type=x.device.type, enabled=False):
            x_adv = attack.generate(model, x[half:], y[half:], Threat("linf", eps), seed=0)
        x_mix = torch.cat([x[:half], x_adv])  # (B, 1, 28, 28): clean first, adversarial second
        return _cross_entropy(x_mix, y)(model)

    return objective


def adversarial(attack: GradientAttack) -> Objective:
    """Cross-entropy on `attack`'s examples only (Madry et al. 2018's min-max objective)."""

    def objective(model: nn.Module, x: Tensor, y: Tensor, eps: float) -> LossOutput:
        return _cross_entropy(_craft(attack, model, x, y, eps), y)(model)

    return objective


def fgsm_rs(*, alpha: float = 1.25, bf16: bool = False) -> Objective:
    """FGSM with a random start (Wong et al. 2020): uniform start in the ball, one step of alpha * eps."""
    return adversarial(FGSM(random_start=True, rel_step_size=alpha, early_stop=False, bf16=bf16))


def _training_pgd(steps: int, rel_step_size: float | None, restarts: int = 1, bf16: bool = False) -> PGD:
    """The PGD of adversarial training: steps of `rel_step_size` eps (default 2.5 / steps), no early stop."""
    step = rel_step_size if rel_step_size is not None else 2.5 / steps
    return PGD(steps=steps, rel_step_size=step, restarts=restarts, early_stop=False, bf16=bf16)


def pgd_at(*, steps: int = 7, rel_step_size: float | None = None, restarts: int = 1, bf16: bool = False) -> Objective:
    """PGD adversarial training (Madry et al. 2018): every step walks, no early stop at the boundary."""
    return adversarial(_training_pgd(steps, rel_step_size, restarts, bf16))


TRADES_STARTS = ("normal", "uniform")


def trades(
    *,
    beta: float = 6.0,
    steps: int = 7,
    rel_step_size: float | None = None,
    start: str = "normal",
    bf16: bool = False,
) -> Objective:
    """TRADES (Zhang et al. 2019): CE on clean points + beta * KL(f(x) || f(x')), x' maximizing the KL.

    The inner maximization starts at x + 0.001 * N(0, 1) (`start="normal"`, the paper's) or at a
    uniform random point of the Linf ball (`"uniform"`, as PGD training does), then takes `steps`
    signed-gradient steps of `rel_step_size * eps` on the KL divergence, projected onto the ball.
    """
    if start not in TRADES_STARTS:
        raise ValueError(f"unknown TRADES start {start!r}; choose from {', '.join(TRADES_STARTS)}")
    step = rel_step_size if rel_step_size is not None else 2.5 / steps

    def objective(model: nn.Module, x: Tensor, y: Tensor, eps: float) -> LossOutput:
        x_adv = _trades_example(model, x, eps, steps, step * eps, start, bf16) if eps > 0 else x
        pair = torch.cat([x, x_adv])  # (2B, 1, 28, 28): clean first

        def loss(net: nn.Module) -> LossOutput:
            clean, adv = net(pair).float().chunk(2)  # (B, 10) each
            kl = F.kl_div(F.log_softmax(adv, 1), F.log_softmax(clean, 1), reduction="batchmean", log_target=True)
            return LossOutput(F.cross_entropy(clean, y) + beta * kl, clean, y, again=loss)

        return loss(model)

    return objective


def _trades_example(model: nn.Module, x: Tensor, eps: float, steps: int, step: float, start: str, bf16: bool) -> Tensor:
    with torch.autocast(device_type=x.device.type, enabled=False), eval_mode(model):
        cast = torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=use_bf16(bf16, x.device))
        with torch.no_grad(), cast:
            target = F.log_softmax(model(x).float(), 1)  # (B, 10), the clean prediction
        threat = Threat("linf", eps)
        # global RNG (generator None): every training checkpoint saves its state
        start_at = linf_random_init(x, eps, None) if start == "uniform" else gaussian_noise(x, 0.001, None)
        x_adv = (x + start_at).clamp(*threat.bounds)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            with torch.enable_grad(), cast:
                log_p = F.log_softmax(model(x_adv).float(), 1)
                kl = F.kl_div(log_p, target, reduction="sum", log_target=True)
                (grad,) = torch.autograd.grad(kl, x_adv)
            x_adv = threat.project(x, x_adv.detach() + step * threat.ops.normalize_grad(grad))
        return x_adv.detach()


def mart(*, beta: float = 6.0, steps: int = 7, rel_step_size: float | None = None, bf16: bool = False) -> Objective:
    """MART (Wang et al. 2020): boosted CE on PGD examples + beta * KL(f(x) || f(x')) * (1 - f(x)_y).

    The examples are PGD training's (cross-entropy, uniform start, every step walked). The boosted CE
    also pushes down the strongest wrong class, and the KL term weighs most the points the model
    misclassifies or barely gets right on clean inputs: the points that decide robust accuracy.
    """
    attack = _training_pgd(steps, rel_step_size, bf16=bf16)

    def objective(model: nn.Module, x: Tensor, y: Tensor, eps: float) -> LossOutput:
        pair = torch.cat([x, _craft(attack, model, x, y, eps)])  # (2B, 1, 28, 28): clean first

        def loss(net: nn.Module) -> LossOutput:
            clean, adv = net(pair).float().chunk(2)  # (B, 10) each
            log_adv, log_clean = F.log_softmax(adv, 1), F.log_softmax(clean, 1)
            is_y = F.one_hot(y, adv.shape[1]).bool()
            rival = adv.masked_fill(is_y, -torch.inf).argmax(1, keepdim=True)  # (B, 1) the strongest wrong class
            # log(1 - p_rival) = logsumexp over the other classes - logsumexp over all: stable near p_rival = 1
            log_not_rival = adv.scatter(1, rival, -torch.inf).logsumexp(1) - adv.logsumexp(1)
            boosted = F.cross_entropy(adv, y) - log_not_rival.mean()
            kl = (log_clean.exp() * (log_clean - log_adv)).sum(1)  # (B,) KL(f(x) || f(x'))
            weight = 1 - log_clean.exp().gather(1, y[:, None]).squeeze(1)  # (B,) 1 - clean prob of y
            return LossOutput(boosted + beta * (kl * weight).mean(), adv, y, again=loss)

        return loss(model)

    return objective


def ensemble(statics: Sequence[nn.Module], *, bf16: bool = False) -> Objective:
    """Ensemble adversarial training (Tramèr et al. 2018): half clean, half FGSM-RS examples.

    Each batch's examples come from a source drawn at random among the model being trained and
    the static pre-trained models, so the model also meets perturbations it did not make itself
    (the transfer attacks that single-step training alone leaves it open to).
    """
    attack = FGSM(random_start=True, rel_step_size=1.25, early_stop=False, bf16=bf16)
    statics = list(statics)

    def objective(model: nn.Module, x: Tensor, y: Tensor, eps: float) -> LossOutput:
        source = int(torch.randint(0, len(statics) + 1, ()))
        half = len(x) // 2
        x_adv = _craft(attack, model if source == 0 else statics[source - 1], x[half:], y[half:], eps)
        return _cross_entropy(torch.cat([x[:half], x_adv]), y)(model)

    return objective
