"""Data: MNIST-class IDX files, fetched and verified, loaded as `[0, 1]` tensors."""

from advmnist.data.batches import iterate_batches
from advmnist.data.idx import parse_idx, read_idx
from advmnist.data.mnist import MNIST, DatasetSpec, FetchedFile, MNISTSplit, cache_dir, fetch_mnist, load_mnist

__all__ = [
    "MNIST",
    "DatasetSpec",
    "FetchedFile",
    "MNISTSplit",
    "cache_dir",
    "fetch_mnist",
    "iterate_batches",
    "load_mnist",
    "parse_idx",
    "read_idx",
]
