"""Stacked MNIST: three digits of one data set as the three colour channels of
a 28x28 image, so the label is a three-digit number and there are 1,000 modes
(Metz et al. 2017; the mode-collapse benchmark of VEEGAN and PacGAN). Each
batch draws three digits afresh per image from a seeded generator. At size 32
each digit is padded by 2 background pixels on every side, as papers feed
28x28 digits to 32x32 nets; the digits themselves are unchanged."""

from dataclasses import dataclass

import torch
from torch.nn.functional import pad

from gan_cli.data.images import load_mnist_subset, load_torchvision, torchvision_ready
from gan_cli.data.sampler import DrawSampler, to_unit_range

DIGITS = 3  # channels, and digits in the label


@dataclass
class StackedDigits:
    """Three-digit images built from `digits` (uint8 [N, 1, H, W]) and their
    `labels` (0..9), drawn fresh every batch; `border` background pixels
    around each digit on every side (2 at size 32, 0 at 28)."""

    name: str
    digits: torch.Tensor
    labels: torch.Tensor
    source: str  # the data set the digits come from
    eval_samples: int = 26_000  # generated images behind each evaluation
    border: int = 0
    kind = "stacked"  # picks the evaluation room's metrics and pictures

    @property
    def shape(self) -> tuple[int, ...]:
        return (DIGITS, *(side + 2 * self.border for side in self.digits.shape[2:]))

    @property
    def num_classes(self) -> int:
        return 10**DIGITS

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n stacked images as uint8 [n, 3, H + 2 border, W + 2 border] and
        their numbers [n] (100 x first + 10 x second + third channel's digit)."""
        picks = torch.randint(len(self.digits), (n, DIGITS), generator=generator, device=generator.device)
        images = self._on(generator.device, "digits")[picks].squeeze(2)  # [n, 3, H, W]
        labels = self._on(generator.device, "labels")[picks]  # [n, 3]
        # scalars, not a tensor made from a list: no host copy, so a CUDA graph can capture it
        numbers = labels[:, 0] * 100 + labels[:, 1] * 10 + labels[:, 2]
        if self.border:  # MNIST's background is 0
            images = pad(images, (self.border,) * 4)
        return images, numbers

    def _on(self, device: torch.device, what: str) -> torch.Tensor:
        """The digits or labels on `device`, copied there once."""
        cache = self.__dict__.setdefault("_by_device", {})
        if (what, device) not in cache:
            cache[what, device] = getattr(self, what).to(device)
        return cache[what, device]

    def sampler(self, batch_size: int, device: torch.device, seed: int) -> DrawSampler:
        return DrawSampler(self.draw, batch_size, device, seed, scale=to_unit_range)


SOURCES = ("mnist_subset", "mnist")
SIZES = (28, 32)  # the digits' own side, or padded to 32 for 32x32 nets (model=resnet)


def load_stacked(
    source: str = "mnist_subset",
    root: str = "data",
    download: bool = True,
    name: str = "stacked_mnist",
    eval_samples: int = 26_000,
    size: int = 28,
) -> StackedDigits:
    """Stacked digits from `source`: the bundled 5,000 (mnist_subset, offline)
    or torchvision's MNIST training set (in `root`, downloaded if allowed),
    size x size: 28, or 32 with each digit padded by 2 background pixels.
    28 is also what runs saved before `size` existed drew (`added`)."""

    digits = (
        load_mnist_subset()
        if source == "mnist_subset"
        else load_torchvision("mnist", root=root, download=download, split="train")
    )
    border = (size - digits.images.shape[-1]) // 2
    return StackedDigits(name, digits.images, digits.labels, digits.name, eval_samples, border)


def stacked_ready(source: str = "mnist_subset", root: str = "data", download: bool = True, **_) -> None:
    """Before a run starts: torchvision's MNIST on disk (or fetched now) when
    it is the source; the bundled digits need nothing."""

    if source == "mnist":
        torchvision_ready("mnist", root, download)


# Read by gan_cli.config.checks.validate: the sources and sizes, and that batches
# are drawn fresh (no fixed examples to pair); by gan_cli.config.checks.check_data;
# and by gan_cli.config.checks.added_dataset_keys: the keys added since runs were
# first saved, with the value those runs had.
load_stacked.choices = {"source": SOURCES, "size": SIZES}
load_stacked.added = {"size": 28}
load_stacked.streaming = True
load_stacked.ready = stacked_ready
