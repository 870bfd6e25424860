"""Passes whose graph is differentiated twice (R1, R2, WGAN-GP's gradient
penalty) or kept for several backward passes (the rows of G's Jacobian) run
eagerly: a net compiled by train.compile supports neither (torch.compile's
autograd has no double backward and frees its buffers after one backward
pass), so there it falls back to its plain code, and its other passes stay
compiled. In a process that never compiled anything this is a no-op that
does not import torch._dynamo (seconds of start-up)."""

import contextlib
import sys

import torch


def eager(needed: bool = True):
    """A context in which compiled nets run their plain code; a no-op unless `needed`."""
    if not needed or "torch._dynamo" not in sys.modules:  # nothing can have been compiled
        return contextlib.nullcontext()
    return torch.compiler.set_stance("force_eager")
