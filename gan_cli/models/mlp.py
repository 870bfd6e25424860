"""Fully connected G and D (the shape of the well-known PyTorch WGAN/GAN MLPs)."""

from torch import nn

from gan_cli.models.conditioning import Discriminator, Generator, flat_size


def widths_list(value) -> list[int]:
    """model.g_hidden / d_hidden (checked by gan_cli.config.checks) as a list: one
    width may be given as a number."""
    return [value] if isinstance(value, int) else list(value)


def build_mlp(
    data_shape,
    num_classes: int,
    latent_dim: int,
    g_hidden=(128, 256, 512, 1024),
    d_hidden=(512, 256),
    batch_norm: bool = True,
    name: str = "mlp",
    pack: int = 1,
    spectral_norm: bool = False,
):
    g_hidden, d_hidden = widths_list(g_hidden), widths_list(d_hidden)
    out = flat_size(data_shape)

    layers, width = [], latent_dim + num_classes  # [B, latent + K]
    for i, h in enumerate(g_hidden):
        layers.append(nn.Linear(width, h))  # [B, h]
        if batch_norm and i > 0:  # not on the first block, as in DCGAN
            layers.append(nn.BatchNorm1d(h))
        layers.append(nn.LeakyReLU(0.2))
        width = h
    layers += [nn.Linear(width, out), nn.Tanh()]  # [B, C*H*W] in [-1, 1]
    generator = Generator(nn.Sequential(*layers), latent_dim, data_shape, num_classes)

    layers, width = [], pack * (out + num_classes)  # [B/m, m(C*H*W + K)]
    for h in d_hidden:
        layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]  # [B, h]
        width = h
    layers.append(nn.Linear(width, 1))  # [B, 1] raw score
    discriminator = Discriminator(nn.Sequential(*layers), num_classes, pack=pack, spectral_norm=spectral_norm)
    return generator, discriminator
