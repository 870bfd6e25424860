"""Linear G and D with no activations: the smallest model the theory talks about.

g(z) = W2 (W1 z + b1) + b2 is linear in z, so mse's least-squares problem has a
closed-form solution (see objectives/mse.py)."""

from torch import nn

from gan_cli.models.conditioning import Discriminator, Generator, flat_size


def build_linear(data_shape, num_classes: int, latent_dim: int, g_hidden: int = 64,
                 d_hidden=(64, 64), name: str = "linear"):
    out = flat_size(data_shape)
    generator = Generator(nn.Sequential(
        nn.Linear(latent_dim + num_classes, g_hidden),   # [B, h]   W1 z + b1
        nn.Linear(g_hidden, out),                        # [B, C*H*W]  W2 (.) + b2
    ), latent_dim, data_shape, num_classes)
    d1, d2 = list(d_hidden)
    discriminator = Discriminator(nn.Sequential(
        nn.Linear(out + num_classes, d1),                # [B, d1]  w1 x + b1
        nn.Linear(d1, d2),                               # [B, d2]  w2 (.) + b2
        nn.Linear(d2, 1),                                # [B, 1]   w3 (.) + b3
    ), num_classes)
    return generator, discriminator
