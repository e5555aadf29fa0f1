"""Mini-batches straight from in-memory tensors (no DataLoader: MNIST fits in RAM many times)."""

from __future__ import annotations

from collections.abc import Iterator

import torch


def iterate_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield `(index, x, y)` batches; shuffled when a generator is given, else in order."""
    n = len(y)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        index = order[start : start + batch_size]
        yield index, x[index], y[index]
