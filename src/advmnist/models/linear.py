"""A linear classifier: a closed-form oracle for attack tests and the smallest possible baseline."""

from __future__ import annotations

import torch
from torch import nn

from advmnist.models.registry import register_model


class LinearClassifier(nn.Module):
    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))  # (B, 784) -> (B, n_classes)


@register_model("linear")
def linear(n_classes: int = 10) -> LinearClassifier:
    return LinearClassifier(n_classes)
