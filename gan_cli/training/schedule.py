"""Learning rates over a run: constant, or falling linearly to zero over the
last fraction of its generator steps (train.lr_decay)."""

import torch


class LinearDecay:
    """Called before generator step `step` (0-based) of `steps`: sets every
    param group's lr to its base rate times factor(step). The rates are a
    function of the step alone, so a resumed run sets the same ones."""

    def __init__(self, optimizers: list[torch.optim.Optimizer | None], steps: int, fraction: float):
        self.optimizers = [opt for opt in optimizers if opt is not None]
        self.base = [[group["lr"] for group in opt.param_groups] for opt in self.optimizers]
        self.steps, self.start = steps, steps * (1 - fraction)

    def factor(self, step: int) -> float:
        if step < self.start:
            return 1.0
        return max(0.0, (self.steps - step) / (self.steps - self.start))

    def __call__(self, step: int) -> None:
        factor = self.factor(step)
        for opt, rates in zip(self.optimizers, self.base, strict=True):
            for group, rate in zip(opt.param_groups, rates, strict=True):
                group["lr"] = rate * factor

    def scale(self, factor: float) -> None:
        """Scale the base rates (a rollback lowers them)."""
        self.base = [[rate * factor for rate in rates] for rates in self.base]
