"""Training-time augmentation: random translations, the one augmentation that suits MNIST digits.

A centred 28x28 digit moved by up to `max_shift` pixels (zero background fills the gap) is still
the same digit; adversarial training overfits less with it (Rebuffi et al. 2021 pair augmentation
with weight averaging). The shifts come from the caller's generator, so a resumed run repeats them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    """Shift each image of `x` (B, C, H, W) by its own random (dy, dx) in [-max_shift, max_shift]^2."""
    if max_shift == 0:
        return x
    b, c, h, w = x.shape
    s = max_shift
    dy, dx = (torch.randint(0, 2 * s + 1, (2, b), generator=generator)).to(x.device)
    padded = F.pad(x, (s, s, s, s))  # (B, C, H + 2s, W + 2s), zeros around
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols].contiguous(memory_format=torch.contiguous_format)
