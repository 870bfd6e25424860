"""The ResNet G and D of SNGAN (Miyato et al. 2018), for 32x32 and 64x64 images.

Pre-activation residual blocks: G's blocks double the side by nearest-neighbour
up-sampling, D's halve it by average pooling; D sums its last features over
space and scores them with one linear layer. At 32x32 every block has the same
width (the CIFAR-10 nets: G 256, D 128); at 64x64 G's widths halve block by
block from g_channels and D's double up to d_channels (the 64x64 nets of SNGAN
and mimicry: 1024 each). A conditional D uses the projection of Miyato &
Koyama (2018): score = w . phi(x) + embed(y) . phi(x); a conditional G gets
the one-hot class joined to z, as every other G here.
"""

import torch
from torch import nn
from torch.nn.functional import avg_pool2d, interpolate

from gan_cli.errors import UserError
from gan_cli.models.conditioning import Discriminator, Generator

SIDES = (32, 64)
BASE = 4  # G starts, and D ends, at 4x4


class GBlock(nn.Module):
    """BN-ReLU-up-conv3-BN-ReLU-conv3, plus an up-sampled 1x1-conv shortcut."""

    def __init__(self, width_in: int, width_out: int):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(width_in), nn.BatchNorm2d(width_out)
        self.conv1 = nn.Conv2d(width_in, width_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(width_out, width_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(width_in, width_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in, s, s] -> [B, out, 2s, 2s]
        h = interpolate(torch.relu(self.bn1(x)), scale_factor=2, mode="nearest")
        h = self.conv2(torch.relu(self.bn2(self.conv1(h))))
        return h + self.shortcut(interpolate(x, scale_factor=2, mode="nearest"))


class DBlock(nn.Module):
    """ReLU-conv3-ReLU-conv3 (then avg-pool when `down`), plus a 1x1-conv
    shortcut (pooled too). The first block (`first`) takes the image itself:
    no ReLU before its first conv, and its shortcut pools before the conv."""

    def __init__(self, width_in: int, width_out: int, down: bool, first: bool = False):
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = nn.Conv2d(width_in, width_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(width_out, width_out, 3, 1, 1)
        changes = down or width_in != width_out
        self.shortcut = nn.Conv2d(width_in, width_out, 1) if changes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in, s, s] -> [B, out, s/2 or s, ...]
        h = self.conv1(x if self.first else torch.relu(x))
        h = self.conv2(torch.relu(h))
        if self.down:
            h = avg_pool2d(h, 2)
        skip = x
        if self.first:
            skip = self.shortcut(avg_pool2d(x, 2))
        elif self.shortcut is not None:
            skip = self.shortcut(x)
            skip = avg_pool2d(skip, 2) if self.down else skip
        return h + skip


class ProjectionDiscriminator(Discriminator):
    """D whose net maps images to features phi(x) [B, F]; the score is
    head(phi) + (embed(y) * phi).sum(1) for a conditional D, head(phi) else."""

    def __init__(self, features: nn.Module, width: int, num_classes: int, pack: int, spectral_norm: bool):
        super().__init__(features, 0, image_input=True, pack=pack, spectral_norm=spectral_norm)
        self.num_classes = num_classes  # the wrapper must not join label planes: y is projected
        self.head = nn.Linear(width, 1)  # [B, F] -> [B, 1]
        self.embed = nn.Embedding(num_classes, width) if num_classes else None  # y -> [B, F]
        for module in (self.head, self.embed):
            if module is not None:
                _initialise(module)
        if spectral_norm:
            from torch.nn.utils.parametrizations import spectral_norm as normalise

            self.head = normalise(self.head)
            self.embed = normalise(self.embed) if self.embed is not None else None

    def _score(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.pack > 1:  # m examples stacked as channels: [B/m, m*C, H, W]
            x = x.reshape(len(x) // self.pack, self.pack * x.shape[1], *x.shape[2:])
        phi = self.net(x)
        score = self.head(phi).view(-1)
        if self.embed is not None:
            score = score + (self.embed(y) * phi).sum(1)
        return score


def build_resnet(
    data_shape,
    num_classes: int,
    latent_dim: int,
    g_channels: int = 256,
    d_channels: int = 128,
    name: str = "resnet",
    pack: int = 1,
    spectral_norm: bool = False,
):
    if len(data_shape) != 3 or data_shape[1] != data_shape[2] or data_shape[1] not in SIDES:
        raise UserError(
            f"model=resnet needs square 32x32 or 64x64 images [C, 32|64, 32|64], got shape "
            f"{list(data_shape)} (dataset.size=32 or 64 resizes an image folder)"
        )
    if num_classes and pack > 1:
        raise UserError(
            "model=resnet scores a conditional D by projecting each example's class; a pack "
            "of several examples has no one class: use objective.pack=1 or an unconditional objective"
        )
    channels, side = data_shape[0], data_shape[1]
    blocks = (side // BASE).bit_length() - 1  # 3 at 32x32, 4 at 64x64
    halving = side == 64

    g_widths = [g_channels // 2**i if halving else g_channels for i in range(blocks + 1)]
    layers = [
        nn.Linear(latent_dim + num_classes, g_widths[0] * BASE * BASE),  # [B, w0*4*4]
        nn.Unflatten(1, (g_widths[0], BASE, BASE)),  # [B, w0, 4, 4]
    ]
    layers += [GBlock(a, b) for a, b in zip(g_widths, g_widths[1:], strict=False)]  # [B, wk, side, side]
    layers += [
        nn.BatchNorm2d(g_widths[-1]),
        nn.ReLU(),
        nn.Conv2d(g_widths[-1], channels, 3, 1, 1),  # [B, C, side, side]
        nn.Tanh(),
    ]
    generator = Generator(nn.Sequential(*layers), latent_dim, data_shape, num_classes)
    generator.apply(_initialise)

    # D: at 32x32 four blocks of width d, the first two halving the side (32 -> 8,
    # SNGAN's CIFAR D); at 64x64 five, each halving it (64 -> 2) with widths
    # d/16, d/8, d/4, d/2, d (SNGAN's and mimicry's 64x64 D).
    if halving:
        d_widths, downs = [d_channels // 2 ** (blocks - i) for i in range(blocks + 1)], [True] * (blocks + 1)
    else:
        d_widths, downs = [d_channels] * (blocks + 1), [True, True] + [False] * (blocks - 1)
    widths_in = [pack * channels, *d_widths[:-1]]
    features = [
        DBlock(a, b, down, first=i == 0)
        for i, (a, b, down) in enumerate(zip(widths_in, d_widths, downs, strict=True))
    ]
    features = nn.Sequential(*features, nn.ReLU(), SumOverSpace())  # [B, F]
    features.apply(_initialise)
    discriminator = ProjectionDiscriminator(features, d_widths[-1], num_classes, pack, spectral_norm)
    return generator, discriminator


def _initialise(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases as SNGAN's code: gain sqrt(2) for
    the residual branch's 3x3 convs (a ReLU follows), 1 for 1x1 shortcuts,
    linear layers and the class embedding. Applied before spectral norm, which
    starts its power iteration from these weights."""
    if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
        gain = 2**0.5 if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3) else 1.0
        with torch.no_grad():
            nn.init.xavier_uniform_(module.weight, gain)
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()


class SumOverSpace(nn.Module):
    """[B, F, H, W] -> [B, F]: SNGAN's global sum pooling."""

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.sum(dim=(2, 3))
