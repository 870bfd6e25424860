"""Jacobian truncation (Tanielian et al. 2020, "Learning disconnected
manifolds: a no GAN's land"): drop the samples where G stretches its
latent space most.

A continuous G maps the connected prior onto a connected set, so on data
made of separate pieces it must put some samples on bridges between them;
it crosses each gap fast, so there the norm of its Jacobian ∂G(z)/∂z is
large. Dropping the `drop` % of samples with the largest norm (the cut is
that percentile of the norms of REFERENCE samples of G itself) removes the
bridges and reweights nothing else. It reads G only: no discriminator, no
real data, so it works for every objective, mse included.

The norm is the Frobenius norm, by reverse mode: exact (one backward pass
per output number) for samples of at most EXACT_OUTPUTS numbers, such as
the 2D toys; for images, Hutchinson's estimate from PROBES random output
directions v, the mean of ‖vᵀJ‖², whose expectation is ‖J‖_F². A G whose
stretch is the same everywhere (a linear one) has one norm for every
sample, and none is dropped.
"""

import math
import time

import torch

from gan_cli.eager import eager
from gan_cli.errors import UserError
from gan_cli.evaluation.draws import Cost, by_class, keep_accepted
from gan_cli.models.inference import eval_mode, generate

REFERENCE = 2_000  # samples of G behind the cut, shared by a conditional G's classes,
PER_CLASS = 500  # but at least this many of each: a percentile of fewer is too rough
CHUNK = 500  # samples per pass: memory stays flat
EXACT_OUTPUTS = 16  # up to this many numbers per sample, the norm is exact
PROBES = 16  # above it, random directions for Hutchinson's estimate


def jacobian_norms(
    G: torch.nn.Module,
    z: torch.Tensor,
    y: torch.Tensor | None = None,
    probes: int = PROBES,
    generator: torch.Generator | None = None,
):
    """(G(z, y) float32, ‖∂G(z, y)/∂z‖_F per sample), G in eval mode; the
    estimate's directions (images) from `generator`."""
    samples, norms = [], []
    with eval_mode(G), torch.enable_grad(), eager():  # each graph serves several backward passes
        for start in range(0, len(z), CHUNK):
            part = z[start : start + CHUNK].detach().requires_grad_(True)
            x = G(part, None if y is None else y[start : start + CHUNK]).float()
            flat = x.flatten(1)
            exact = flat.shape[1] <= EXACT_OUTPUTS
            passes = flat.shape[1] if exact else probes
            squared = torch.zeros(len(part), device=z.device)
            for i in range(passes):
                if exact:
                    v = torch.zeros_like(flat)
                    v[:, i] = 1
                else:
                    v = torch.randn(flat.shape, generator=generator, device=flat.device)
                (row,) = torch.autograd.grad(flat, part, v, retain_graph=i < passes - 1)
                squared += row.pow(2).sum(1)
            samples.append(x.detach())
            norms.append((squared if exact else squared / passes).sqrt())
    return torch.cat(samples), torch.cat(norms)


class JacobianTruncation:
    """draw(n, y) -> n samples of G whose Jacobian norm is at most the cut,
    as refine.Refiner draws them (cost in `cost`). `labels(n)` gives the
    classes a conditional G is asked for (None: unconditional); each class
    has its own cut, so every class loses the same share."""

    method = "jacobian"

    def __init__(self, G, latent, labels, drop: float, generator: torch.Generator | None = None):
        if not 0 <= drop < 100:
            raise UserError(f"the Jacobian drop must be a percentage in [0, 100), got {drop}")
        self.G, self.latent, self.drop, self.generator = G, latent, drop, generator
        self.cost = Cost()
        self.cut = {}
        if drop == 0:  # nothing dropped: G's own samples, and no reference to draw
            return
        began = time.perf_counter()
        count = max(REFERENCE, PER_CLASS * getattr(G, "num_classes", 0))
        classes = labels(count)  # each class in turn
        _, norms = jacobian_norms(G, latent.sample(count), classes, generator=generator)
        q = 1 - drop / 100
        groups = [None] if classes is None else classes.unique().tolist()
        self.cut = {
            c: torch.quantile((norms if c is None else norms[classes == c]).double(), q).item()
            for c in groups
        }
        self.cost.seconds += time.perf_counter() - began

    def draw(self, n: int, y: torch.Tensor | None = None) -> torch.Tensor:
        began = time.perf_counter()
        out = by_class(n, y, self._kept)
        self.cost.seconds += time.perf_counter() - began
        self.cost.kept += n
        return out

    def _kept(self, n: int, label: int | None) -> torch.Tensor:
        cut = self.cut.get(label, math.inf)
        if cut == math.inf:  # drop 0: G's own samples, no Jacobian needed
            y = None if label is None else torch.full((n,), label, device=self.latent.device)
            self.cost.proposed += n
            return generate(self.G, self.latent.sample(n), y)

        def propose(count: int):
            asked = None if label is None else torch.full((count,), label, device=self.latent.device)
            x, norms = jacobian_norms(self.G, self.latent.sample(count), asked, generator=self.generator)
            return x, norms <= cut

        share = 1 - self.drop / 100
        kept, have, drawn = keep_accepted(n, propose, lambda left: max(64, int(left / share) + 16), self.cost)
        if have < n:
            raise UserError(
                f"jacobian: only {have} of G's {drawn} samples were within the cut: are they finite?"
            )
        return torch.cat(kept)
