"""Running a net for pictures and metrics rather than training: eval mode
(batch norm uses its running statistics and updates nothing, spectral norm
runs no power iteration), and the net's mode restored afterwards, whatever
happens. A picture or a metric therefore leaves every buffer of G and D as
it found it, so how often a run draws them changes nothing it trains."""

import contextlib
import math

import torch

from gan_cli.errors import UserError


@contextlib.contextmanager
def eval_mode(net: torch.nn.Module):
    """`net` in eval mode, gradients still allowed: for pictures that need
    gradients through D (a toy picture's arrows) without training it."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


@contextlib.contextmanager
def evaluating(net: torch.nn.Module):
    """`net` in eval mode and no graph built."""
    with eval_mode(net), torch.no_grad():
        yield net


def generate(G: torch.nn.Module, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """G's samples for noise z (and classes y), as float32 on G's device."""
    with evaluating(G):
        return G(z, y).float()


class Truncated(torch.nn.Module):
    """G fed ψ·z instead of z: the truncation trick (BigGAN, StyleGAN) in its
    simplest form. ψ < 1 keeps samples near the prior's centre, where G is
    most sure: sharper and less varied (precision up, recall down); ψ > 1
    the reverse. Trades fidelity for variety with no retraining."""

    def __init__(self, G: torch.nn.Module, psi: float):
        super().__init__()
        self.G, self.psi = G, psi
        self.num_classes = getattr(G, "num_classes", 0)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.G(self.psi * z, y)


def truncated(G: torch.nn.Module, psi: float | None, distribution: str, option: str = "--truncation"):
    """G itself for psi None or 1, else Truncated(G, psi); refused in one
    line unless psi > 0 and the prior is the standard normal (scaling a
    uniform or a mixture's centres is not truncating it)."""
    if psi is None or psi == 1:
        return G
    if not (math.isfinite(psi) and psi > 0):
        raise UserError(f"{option} must be a number > 0 (1 = G's own samples), got {psi}")
    if distribution != "normal":
        raise UserError(
            f"{option} scales a normal prior's z; this run's latent.distribution is {distribution}"
        )
    return Truncated(G, psi)
