"""Adversarial weight perturbation (AWP, Wu et al. 2020): train at the worst nearby weights too.

After the objective has crafted its adversarial examples and taken its loss, each weight matrix
and convolution kernel W moves one step up that loss's gradient G, scaled to a fixed fraction of
its own size: W + gamma * |W| / |G| * G (Frobenius norms; biases stay). The loss is taken again
on the same examples at the perturbed weights, its gradient is what the optimizer steps with, and
the weights are put back exactly before the step. It flattens the loss landscape in weight space,
which narrows the gap between training and test robustness (robust overfitting); gamma 5e-3 is
the paper's value for TRADES, 1e-2 for PGD training. Cost: one extra backward and one extra
forward + backward per step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from advmnist.training.objectives import LossOutput

Tensor = torch.Tensor


class WeightPerturbation:
    """Perturbs `model`'s weight tensors (2-d and up) by `gamma` of their norm, up the given loss."""

    def __init__(self, model: nn.Module, gamma: float) -> None:
        if not gamma > 0:
            raise ValueError(f"the weight perturbation gamma must be > 0, got {gamma!r}")
        self.model, self.gamma = model, gamma
        self.weights = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]

    @contextlib.contextmanager
    def applied(self, loss: Tensor) -> Iterator[nn.Module]:
        """Inside: the model at W + gamma |W| G / |G| for each weight, G = d loss / dW. Restored exactly after."""
        grads = torch.autograd.grad(loss, self.weights)
        saved = [p.detach().clone() for p in self.weights]
        try:
            with torch.no_grad():
                for p, g in zip(self.weights, grads, strict=True):
                    p.add_(g, alpha=self.gamma * float(p.norm()) / (float(g.norm()) + 1e-20))
            yield self.model
        finally:
            with torch.no_grad():
                for p, original in zip(self.weights, saved, strict=True):
                    p.copy_(original)

    def loss(self, out: LossOutput, autocast: contextlib.AbstractContextManager[object]) -> LossOutput:
        """`out`'s loss taken again at the perturbed weights, its gradient accumulated into `.grad`.

        The gradients come from the perturbed weights, the weights themselves are the original ones
        when this returns: the optimizer steps from W with the gradient found at W + v.
        """
        if out.again is None:
            raise ValueError("this objective cannot recompute its loss; weight perturbation needs `again`")
        with self.applied(out.loss) as model:
            with autocast:
                perturbed = out.again(model)
            perturbed.loss.backward()
        return perturbed
