"""What every sampler shares (refine.py's, which read D, and jacobian.py's,
which reads G): the cost it reports, a conditional G drawn class by class,
and the loop that keeps the proposals passing a test."""

from dataclasses import dataclass, field

import torch

MAX_PROPOSALS = 100  # per kept sample, where a sampler caps its proposals


@dataclass
class Cost:
    """What a sampler cost: kept samples, proposals of G, D evaluations (none for jacobian), seconds."""

    kept: int = 0
    proposed: int = 0
    d_evaluations: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def as_metrics(self, prefix: str) -> dict[str, float]:
        kept = max(self.kept, 1)
        return {
            f"{prefix}/acceptance": self.kept / max(self.proposed, 1),
            f"{prefix}/d_evals_per_sample": self.d_evaluations / kept,
            f"{prefix}/seconds_per_1000": 1000 * self.seconds / kept,
        }


def by_class(n: int, y: torch.Tensor | None, draw) -> torch.Tensor:
    """n samples, draw(count, label) giving each class's own (a conditional
    G: every class kept by its own draws, in y's places); draw(n, None) for
    an unconditional G."""
    if y is None:
        return draw(n, None)
    out = None
    for label in y.unique().tolist():
        places = (y == label).nonzero().view(-1)
        kept = draw(len(places), label)
        out = kept.new_empty(n, *kept.shape[1:]) if out is None else out
        out[places] = kept
    return out


def keep_accepted(n: int, propose, size, cost: Cost):
    """(the kept parts, how many were kept, how many were drawn): up to n of
    G's proposals that pass a test, in order. propose(count) -> (x, accept)
    for `size(still_needed)` fresh proposals at a time; cost.proposed counts
    the proposals used (up to the last one kept: the acceptance rate counts
    no more). It stops after MAX_PROPOSALS per sample (a test that passes
    almost nothing would otherwise run without end), and the caller decides
    what fills the rest."""
    kept, have, drawn = [], 0, 0
    while have < n and drawn < MAX_PROPOSALS * n:
        count = size(n - have)
        x, accept = propose(count)
        drawn += count
        places = accept.nonzero().view(-1)[: n - have]
        cost.proposed += count if len(places) < n - have else int(places[-1]) + 1
        kept.append(x[places])
        have += len(places)
    return kept, have, drawn
