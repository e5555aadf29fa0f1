"""The seed study's CNN, with the MNIST normalization as its first layer (attacks see pixels)."""

from __future__ import annotations

import torch
from torch import nn

from advmnist.models.registry import register_model

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
ACTIVATIONS = {"relu": torch.relu, "silu": nn.functional.silu}


class Normalize(nn.Module):
    """`(x - mean) / std` with buffers, so checkpoints carry it and attacks stay in `[0, 1]`."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([mean]).view(1, 1, 1, 1))
        self.register_buffer("std", torch.tensor([std]).view(1, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class SeedCNN(nn.Module):
    """Conv5x5(32)-pool-Conv5x5(64)-pool-FC1024-dropout-FC10: 3,274,634 parameters.

    Layer names follow the seed notebook (`conv1`, `conv2`, `fc1`, `fc2`) so its `.pth` imports.
    `width` multiplies the convolutions' channels (2: the wide variant, 6,640,394 parameters).
    `activation="silu"` swaps every ReLU for the smooth SiLU (x sigmoid(x)), the same parameters: a
    variant for studying gradient masking and smooth adversarial training, not the seed's model.
    """

    def __init__(
        self,
        dropout: float = 0.5,
        mean: float = MNIST_MEAN,
        std: float = MNIST_STD,
        width: int = 1,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {activation!r}")
        self.act = ACTIVATIONS[activation]
        self.smooth = activation != "relu"
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(1, 32 * width, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(32 * width, 64 * width, kernel_size=5, padding=2)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(64 * width * 7 * 7, 1024)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)  # (B, 1, 28, 28), pixel space in, normalized out
        x = self._conv_block(self.conv1(x))  # (B, 32 width, 14, 14)
        x = self._conv_block(self.conv2(x))  # (B, 64 width, 7, 7)
        x = self.act(self.fc1(x.flatten(1)))  # (B, 1024); flatten is in logical NCHW order
        return self.fc2(self.dropout(x))  # (B, 10) logits

    def _conv_block(self, x: torch.Tensor) -> torch.Tensor:
        # relu after the pool: max and relu commute, and relu then touches 4x fewer values;
        # SiLU dips below 0 and does not commute with max, so it goes first, as usual
        return self.pool(self.act(x)) if self.smooth else self.act(self.pool(x))


@register_model("seed-cnn")
def seed_cnn(dropout: float = 0.5, activation: str = "relu") -> SeedCNN:
    return SeedCNN(dropout=dropout, activation=activation)


@register_model("seed-cnn-wide")
def seed_cnn_wide(dropout: float = 0.5, activation: str = "relu") -> SeedCNN:
    return SeedCNN(dropout=dropout, width=2, activation=activation)
