"""Running a net for pictures and metrics rather than training: eval mode
(batch norm uses its running statistics and updates nothing, spectral norm
runs no power iteration), and the net's mode restored afterwards, whatever
happens. A picture or a metric therefore leaves every buffer of G and D as
it found it, so how often a run draws them changes nothing it trains."""

import contextlib

import torch


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
