"""Convolutional G and D after DCGAN (Radford et al. 2016), for any square side
that halves down to 4 or 7: 8, 28, 32, 64, ..."""

from torch import nn

from gan_cli.errors import UserError
from gan_cli.models.conditioning import Discriminator, Generator


def _halvings(side: int) -> int:
    """How many stride-2 layers take `side` down to a 4x4 or 7x7 base."""
    k, base = 0, side
    while base > 7 and base % 2 == 0:
        base //= 2
        k += 1
    if base not in (4, 7) or k == 0:
        raise UserError(
            f"model=dcgan needs a square side that halves to 4 or 7 (8, 28, 32, 64...), got {side}"
        )
    return k


D_NORMS = {  # d_norm -> the normalisation after D's hidden convs
    "batch": nn.BatchNorm2d,
    "layer": lambda c: nn.GroupNorm(1, c),  # per sample over (C, H, W), as WGAN-GP asks
    "none": lambda c: nn.Identity(),
}


def build_dcgan(
    data_shape,
    num_classes: int,
    latent_dim: int,
    g_channels: int = 64,
    d_channels: int = 64,
    batch_norm: bool = True,
    d_norm=None,
    name: str = "dcgan",
    pack: int = 1,
    spectral_norm: bool = False,
):
    if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
        raise UserError(f"model=dcgan needs square images [C, H, W], got shape {list(data_shape)}")
    channels, side = data_shape[0], data_shape[1]
    k = _halvings(side)
    base = side >> k
    norm2d = nn.BatchNorm2d if batch_norm else (lambda c: nn.Identity())
    # d_norm (checked by gan_cli.config.checks): batch | layer | none; true/false as
    # batch/none; null follows batch_norm.
    follow = batch_norm if d_norm is None else d_norm
    d_key = ("batch" if follow else "none") if isinstance(follow, bool) else d_norm

    width = g_channels * 2 ** (k - 1)
    layers = [
        nn.Linear(latent_dim + num_classes, width * base * base),  # [B, w*s0*s0]
        nn.Unflatten(1, (width, base, base)),  # [B, w, s0, s0]
        norm2d(width),
        nn.ReLU(True),
    ]
    for i in range(k):  # side doubles each time
        last = i == k - 1
        out = channels if last else width // 2
        layers.append(nn.ConvTranspose2d(width, out, 4, 2, 1, bias=last))  # [B, out, 2s, 2s]
        layers += [nn.Tanh()] if last else [norm2d(out), nn.ReLU(True)]
        width = out
    generator = Generator(nn.Sequential(*layers), latent_dim, data_shape, num_classes)

    layers, width = [], pack * (channels + num_classes)  # [B/m, m(C+K), S, S]
    for i in range(k):  # side halves each time
        out = d_channels * 2**i
        layers.append(nn.Conv2d(width, out, 4, 2, 1, bias=i == 0))  # [B, out, S/2, S/2]
        if i > 0:  # no norm on D's input layer
            layers.append(D_NORMS[d_key](out))
        layers.append(nn.LeakyReLU(0.2, True))
        width = out
    layers += [nn.Flatten(), nn.Linear(width * base * base, 1)]  # [B, 1] raw score
    discriminator = Discriminator(
        nn.Sequential(*layers), num_classes, image_input=True, pack=pack, spectral_norm=spectral_norm
    )
    return generator, discriminator
