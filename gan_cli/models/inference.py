"""Running a net for pictures and metrics rather than training: eval mode
(batch norm uses its running statistics and updates nothing), no graph, and
the net's mode restored afterwards, whatever happens."""

import contextlib

import torch


@contextlib.contextmanager
def evaluating(net: torch.nn.Module):
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            yield net
    finally:
        net.train(was_training)


def generate(G: torch.nn.Module, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """G's samples for noise z (and classes y), as float32 on G's device."""
    with evaluating(G):
        return G(z, y).float()
