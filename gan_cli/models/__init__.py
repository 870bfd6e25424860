"""Generators and discriminators. Each builder takes the data's shape, the
number of classes (0 = unconditional) and the latent size, and returns (G, D);
`pack` and `spectral_norm` go on to the Discriminator wrapper."""

from gan_cli.models.conditioning import Discriminator, Generator, spectral_normalise
from gan_cli.models.dcgan import build_dcgan
from gan_cli.models.linear import build_linear
from gan_cli.models.mlp import build_mlp
from gan_cli.models.resnet import build_resnet
from gan_cli.models.toy_mlp import build_toy_mlp

__all__ = [
    "Discriminator",
    "Generator",
    "build_dcgan",
    "build_linear",
    "build_mlp",
    "build_resnet",
    "build_toy_mlp",
    "spectral_normalise",
]
