"""An exponential moving average of G: its weights and its batch-norm buffers.

Averaging the generator's iterates (Yazici et al. 2019; Karras et al. 2018)
damps the orbiting of a GAN's generator around the modes it should sit on, so
the average is usually the better sampler. It is trained by nothing: after each
of G's optimizer steps it moves a fraction (1 - decay) towards G's weights.
"""

import copy

import torch
from torch import nn


def shows_average(config, has_average: bool) -> bool:
    """The one rule for which G pictures and metrics show: the moving average
    where the run keeps one and eval.use_ema is on, else the trained G.
    `config`: a run's composed config, or a checkpoint's saved one."""
    return has_average and bool(config["eval"]["use_ema"])


class GeneratorEMA:
    """average <- decay * average + (1 - decay) * G after every G update.

    Up to `start` updates the average simply equals G (a warm-up: averaging
    from the random initial weights would drag the average back towards them
    for ~1 / (1 - decay) steps). Integer buffers (batch norm's step counter)
    are copied, not averaged."""

    def __init__(self, G: nn.Module, decay: float, start: int = 0):
        self.decay = float(decay)
        self.start = int(start)
        self.average = copy.deepcopy(G).eval().requires_grad_(False)
        self._pairs(G)

    def _pairs(self, G: nn.Module) -> None:
        live = [*G.parameters(), *G.buffers()]
        mine = [*self.average.parameters(), *self.average.buffers()]
        floats = [i for i, t in enumerate(live) if t.is_floating_point()]
        self.live = [live[i] for i in floats]
        self.mine = [mine[i] for i in floats]
        self.live_other = [t for i, t in enumerate(live) if i not in floats]
        self.mine_other = [t for i, t in enumerate(mine) if i not in floats]

    def warming(self, step: int) -> bool:
        """Whether update number `step` still copies G (the warm-up)."""
        return step <= self.start

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Called after G's optimizer step number `step` (counting from 1)."""
        if self.warming(step):
            torch._foreach_copy_(self.mine, self.live)
        else:
            # One fused pass over all tensors: mine += (1 - decay) * (live - mine).
            torch._foreach_lerp_(self.mine, self.live, 1.0 - self.decay)
        if self.mine_other:
            torch._foreach_copy_(self.mine_other, self.live_other)

    @torch.no_grad()
    def reset(self) -> None:
        """The average set to G itself (a resume from a state without one)."""
        torch._foreach_copy_(self.mine, self.live)
        if self.mine_other:
            torch._foreach_copy_(self.mine_other, self.live_other)

    def state_dict(self) -> dict:
        return self.average.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict(state)
