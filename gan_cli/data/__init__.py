"""Data sets: each loader returns an object with its `kind` (which the
evaluation room reads), `shape`, `num_classes`, real reference samples, and
`sampler(batch_size, device, seed)`; the training loop sees only the sampler.
Nothing here draws, scores, or sets process-wide state."""

from gan_cli.data.images import (
    ImageSet,
    load_image_folder,
    load_mnist_subset,
    load_sklearn_digits,
    load_torchvision,
)
from gan_cli.data.sampler import Batch, TensorSampler
from gan_cli.data.toys import ToySet, load_toy


def ready(node) -> None:
    """What a run checks before Hydra makes its folder: the data set's files
    are on disk (fetched now where the config allows it), else the loader's
    own one line. A loader whose files can be missing names a `ready`
    function taking its arguments; the others (bundled, drawn) need none."""
    from hydra.utils import get_object

    check = getattr(get_object(node["_target_"]), "ready", None)
    if check is not None:
        check(**{key: value for key, value in node.items() if key != "_target_"})


__all__ = [
    "Batch",
    "ImageSet",
    "TensorSampler",
    "ToySet",
    "load_image_folder",
    "load_mnist_subset",
    "load_sklearn_digits",
    "load_torchvision",
    "load_toy",
    "ready",
]
