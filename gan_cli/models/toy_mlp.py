"""A small fully connected G and D for 2D toy data (as in the mode-collapse
papers: a few ReLU layers of a few hundred units). Unlike model=mlp, G's
output is linear: toy data are not scaled to [-1, 1] (grid25 spans ±4)."""

from itertools import pairwise

from torch import nn

from gan_cli.models.conditioning import Discriminator, Generator, flat_size
from gan_cli.models.mlp import widths_list


def _stack(widths: list[int], activation) -> list[nn.Module]:
    layers = []
    for a, b in pairwise(widths):
        layers += [nn.Linear(a, b), activation()]
    return layers


def build_toy_mlp(
    data_shape,
    num_classes: int,
    latent_dim: int,
    g_hidden=(128, 128, 128),
    d_hidden=(128, 128, 128),
    name: str = "toy_mlp",
    pack: int = 1,
    spectral_norm: bool = False,
):
    g_hidden, d_hidden = widths_list(g_hidden), widths_list(d_hidden)
    out = flat_size(data_shape)
    g_widths = [latent_dim + num_classes, *g_hidden]  # [B, latent + K] -> [B, h]
    generator = Generator(
        nn.Sequential(*_stack(g_widths, nn.ReLU), nn.Linear(g_widths[-1], out)),  # [B, 2], unbounded
        latent_dim,
        data_shape,
        num_classes,
    )
    d_widths = [pack * (out + num_classes), *d_hidden]  # [B/m, m(2 + K)] -> [B/m, h]
    discriminator = Discriminator(
        nn.Sequential(
            *_stack(d_widths, lambda: nn.LeakyReLU(0.2)), nn.Linear(d_widths[-1], 1)
        ),  # [B/m, 1] raw score
        num_classes,
        pack=pack,
        spectral_norm=spectral_norm,
    )
    return generator, discriminator
