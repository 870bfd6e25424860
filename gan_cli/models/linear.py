"""Linear G and D with no activations: the smallest model the theory talks about.

g(z) = W2 (W1 z + b1) + b2 is linear in z, so mse's least-squares problem has a
closed-form solution (see objectives/mse.py)."""

from itertools import pairwise

from torch import nn

from gan_cli.errors import UserError
from gan_cli.models.conditioning import Discriminator, Generator, flat_size
from gan_cli.models.mlp import widths_list


def build_linear(
    data_shape,
    num_classes: int,
    latent_dim: int,
    g_hidden: int = 64,
    d_hidden=(64, 64),
    name: str = "linear",
    pack: int = 1,
    spectral_norm: bool = False,
):
    if isinstance(g_hidden, bool) or not isinstance(g_hidden, int) or g_hidden < 1:
        raise UserError(
            f"model.g_hidden for model=linear is one width (g has one hidden layer), got {g_hidden!r}"
        )
    out = flat_size(data_shape)
    generator = Generator(
        nn.Sequential(
            nn.Linear(latent_dim + num_classes, g_hidden),  # [B, h]   W1 z + b1
            nn.Linear(g_hidden, out),  # [B, C*H*W]  W2 (.) + b2
        ),
        latent_dim,
        data_shape,
        num_classes,
    )
    widths = [pack * (out + num_classes), *widths_list(d_hidden), 1]
    # Default [64, 64]: d(x) = w3 [w2 (w1 x + b1) + b2] + b3, [B, d] -> [B, 1].
    discriminator = Discriminator(
        nn.Sequential(*(nn.Linear(a, b) for a, b in pairwise(widths))),
        num_classes,
        pack=pack,
        spectral_norm=spectral_norm,
    )
    return generator, discriminator
