"""The ~0.3M-parameter SmallCNN of the MNIST robustness literature (Carlini & Wagner 2017, TRADES)."""

from __future__ import annotations

import torch
from torch import nn

from advmnist.models.registry import register_model
from advmnist.models.seed_cnn import Normalize


class SmallCNN(nn.Module):
    """Conv3x3(32)x2-pool-Conv3x3(64)x2-pool-FC200-dropout-FC200-FC10: 312,202 parameters."""

    def __init__(self, dropout: float = 0.5) -> None:
        super().__init__()
        self.normalize = Normalize()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3)
        self.conv2 = nn.Conv2d(32, 32, kernel_size=3)
        self.conv3 = nn.Conv2d(32, 64, kernel_size=3)
        self.conv4 = nn.Conv2d(64, 64, kernel_size=3)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(64 * 4 * 4, 200)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(200, 200)
        self.fc3 = nn.Linear(200, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(self.normalize(x)))  # (B, 32, 26, 26)
        x = torch.relu(self.pool(self.conv2(x)))  # (B, 32, 12, 12); max and relu commute
        x = torch.relu(self.conv3(x))  # (B, 64, 10, 10)
        x = torch.relu(self.pool(self.conv4(x)))  # (B, 64, 4, 4)
        x = self.dropout(torch.relu(self.fc1(x.flatten(1))))  # (B, 200)
        return self.fc3(torch.relu(self.fc2(x)))  # (B, 10) logits


@register_model("small-cnn")
def small_cnn(dropout: float = 0.5) -> SmallCNN:
    return SmallCNN(dropout=dropout)
