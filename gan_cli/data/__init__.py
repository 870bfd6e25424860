"""Data sets: each loader returns an object with its `kind` (which the
evaluation room reads), `shape`, `num_classes`, real reference samples, and
`sampler(batch_size, device, seed)`; the training loop sees only the sampler.
Nothing here draws, scores, or sets process-wide state."""

from gan_cli.data.celeba import load_celeba
from gan_cli.data.images import (
    ImageSet,
    load_image_folder,
    load_mnist_subset,
    load_sklearn_digits,
    load_torchvision,
)
from gan_cli.data.sampler import Batch, TensorSampler
from gan_cli.data.toys import ToySet, load_toy

__all__ = [
    "Batch",
    "ImageSet",
    "TensorSampler",
    "ToySet",
    "load_celeba",
    "load_image_folder",
    "load_mnist_subset",
    "load_sklearn_digits",
    "load_torchvision",
    "load_toy",
]
