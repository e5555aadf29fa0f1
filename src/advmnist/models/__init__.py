"""Models: a registry of architectures taking `[0, 1]` images, and safetensors checkpoints."""

from advmnist.models import linear, seed_cnn, small_cnn  # noqa: F401  (registers the architectures)
from advmnist.models.checkpoint import count_parameters, load_model, read_card, save_model
from advmnist.models.import_pth import PthImport, import_pth, import_pth_with_mapping
from advmnist.models.pretrained import load_pretrained, pretrained_path
from advmnist.models.registry import create_model, list_models, register_model
from advmnist.models.seed_cnn import MNIST_MEAN, MNIST_STD, Normalize, SeedCNN
from advmnist.models.small_cnn import SmallCNN

__all__ = [
    "MNIST_MEAN",
    "MNIST_STD",
    "Normalize",
    "PthImport",
    "SeedCNN",
    "SmallCNN",
    "count_parameters",
    "create_model",
    "import_pth",
    "import_pth_with_mapping",
    "list_models",
    "load_model",
    "load_pretrained",
    "pretrained_path",
    "read_card",
    "register_model",
    "save_model",
]
