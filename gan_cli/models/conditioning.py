"""G(z | y) and D(x | y): the class enters by concatenation, here and only here.

G gets the one-hot y joined to z. D gets it joined to the flattened image (for
fully connected nets) or as K constant planes beside the image's channels (for
conv nets). With num_classes = 0 both ignore y.

Two things about D happen here too, for every model: packing (PacGAN, D
judges `pack` consecutive examples of a batch joined into one input, each
with its label) and spectral normalisation of its linear and conv layers.
Builders only pass `pack` and `spectral_norm` on to `Discriminator` (and make
D's first layer `pack` times wider).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def join_onehot(v: torch.Tensor, y: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    """[B, F] and labels [B] -> [B, F + K]."""
    if not num_classes:
        return v
    return torch.cat([v, F.one_hot(y, num_classes).to(v.dtype)], dim=1)


def join_onehot_planes(x: torch.Tensor, y: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    """[B, C, H, W] and labels [B] -> [B, C + K, H, W], plane k all ones where y = k."""
    if not num_classes:
        return x
    planes = F.one_hot(y, num_classes).to(x.dtype)[:, :, None, None]
    return torch.cat([x, planes.expand(-1, -1, *x.shape[2:])], dim=1)


class Generator(nn.Module):
    """Wraps a net mapping [B, latent_dim + K] to [B, prod(out_shape)] or [B, *out_shape]."""

    def __init__(self, net: nn.Module, latent_dim: int, out_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.net = net
        self.latent_dim = latent_dim
        self.out_shape = tuple(out_shape)
        self.num_classes = num_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(join_onehot(z, y, self.num_classes)).view(-1, *self.out_shape)


class Discriminator(nn.Module):
    """Wraps a net giving one raw score per input; returns shape [B / pack].

    With pack = m, examples m*i .. m*i + m - 1 of a batch (each joined to its
    one-hot label first) become input i: concatenated features [B/m, m*(F + K)]
    for fully connected nets, stacked channels [B/m, m*(C + K), H, W] for conv
    nets. The net's first layer was built m times wider for it."""

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        image_input: bool = False,
        pack: int = 1,
        spectral_norm: bool = False,
    ):
        super().__init__()
        self.net = spectral_normalise(net) if spectral_norm else net
        self.num_classes = num_classes
        self.image_input = image_input  # conv nets keep [B, C, H, W]; others flatten
        self.pack = pack
        # Without batch norm, scoring real and fake batches in one pass is the
        # same function and one larger matrix product; with it, the batches
        # must stay apart so each is normalised by its own statistics.
        self.joint_batches = not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
        # train.augment: a callable applied to every image D judges while it
        # trains (models/augment.py); pictures, in eval mode, see plain images.
        self.augment = None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self._score(self._augmented(x), y)

    def score_pair(self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None = None):
        """(D(real), D(fake)), in one pass where that computes the same thing
        (each batch augmented on its own, so the draws do not depend on it).
        Packs never mix real and fake: each batch is a whole number of packs."""
        if not self.joint_batches:
            return self(real, y), self(fake, y)
        both = torch.cat([self._augmented(real), self._augmented(fake)])
        scores = self._score(both, None if y is None else torch.cat([y, y]))
        return scores[: len(real) // self.pack], scores[len(real) // self.pack :]

    def _augmented(self, x: torch.Tensor) -> torch.Tensor:
        return self.augment(x) if self.augment is not None and self.training else x

    def _score(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.image_input:
            h = join_onehot_planes(x, y, self.num_classes)
        else:
            h = join_onehot(x.flatten(1), y, self.num_classes)
        if self.pack > 1:
            h = h.reshape(len(h) // self.pack, self.pack * h.shape[1], *h.shape[2:])
        return self.net(h).view(-1)

    def score_each(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """One score per example [B], for pictures of D: a packed D scores each
        example joined with copies of itself."""
        if self.pack == 1:
            return self(x, y)
        return self(
            x.repeat_interleave(self.pack, 0), None if y is None else y.repeat_interleave(self.pack, 0)
        )


LAYERS_WITH_WEIGHTS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def spectral_normalise(D: nn.Module) -> nn.Module:
    """In place: every linear and conv layer of D gets its weight divided by
    its largest singular value (Miyato et al. 2018; one power iteration per
    training forward pass, u and v kept as buffers, so a checkpoint holds them)."""
    from torch.nn.utils.parametrizations import spectral_norm

    for module in list(D.modules()):
        if isinstance(module, LAYERS_WITH_WEIGHTS):
            spectral_norm(module)
    return D


def flat_size(shape: tuple[int, ...]) -> int:
    return math.prod(shape)
