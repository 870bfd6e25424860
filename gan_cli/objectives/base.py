"""What every objective offers the training loop.

An objective is its losses, its critic schedule, the constraint it puts on D
after D's step, and the names of the estimates it logs. The loop only calls
`critic_steps_at`, `discriminator_loss`, `after_discriminator_step` and
`generator_loss`; it never asks which objective it runs.

A subclass fills in the same hooks every time, each a method that calls pure
functions of D's outputs (losses.py, fdiv.py):
    d_loss(real_out, fake_out)  the loss D minimises
    g_loss(fake_out)            the loss G minimises
    estimate(d_loss)            the value named `estimate_name`, read off D's loss
    penalty(D, real, fake, y, latent)  a regulariser added to D's loss (optional)
Its values were checked by gan_cli.config before it is built.
"""

import torch

from gan_cli.data import Batch
from gan_cli.latent import Latent


class Objective:
    uses_discriminator = True
    estimate_name: str | None = None   # the divergence or distance D's loss estimates
    # What D's raw output means, for pictures of it: "logit" (of P(real)) or "score".
    d_output = "score"
    # False: D must not use batch norm (config.validate refuses such a model).
    critic_batch_norm = True
    # True: G is solved in closed form by `solve`, not trained step by step.
    closed_form = False
    # Allowed values of this objective's string settings, read by config.validate.
    choices: dict[str, tuple] = {}

    def __init__(self, name: str, critic_steps: int = 1, conditional: bool = False):
        self.name = name
        self.critic_steps = critic_steps
        self.conditional = bool(conditional)

    # --- the hooks a subclass fills in ----------------------------------------
    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def estimate(self, d_loss: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def penalty(self, D, real: torch.Tensor, fake: torch.Tensor, y, latent: Latent):
        """(term added to D's loss, {name: value} to log), or None."""
        return None

    # --- schedule and constraint ------------------------------------------------
    def critic_steps_at(self, step: int) -> int:
        return self.critic_steps

    def after_discriminator_step(self, D) -> None:
        pass

    # --- what the loop calls ----------------------------------------------------
    def labels(self, batch: Batch) -> torch.Tensor | None:
        return batch.y if self.conditional else None

    def discriminator_loss(self, G, D, batch: Batch, latent: Latent):
        y = self.labels(batch)
        with torch.no_grad():                       # D's step needs no graph through G
            fake = G(latent.sample(len(batch.x)), y)
        loss = self.d_loss(*D.score_pair(batch.x, fake, y))
        stats = {} if self.estimate_name is None else {self.estimate_name: self.estimate(loss).detach()}
        extra = self.penalty(D, batch.x, fake, y, latent)
        if extra is not None:
            term, logged = extra
            loss = loss + term
            stats.update({name: value.detach() for name, value in logged.items()})
        return loss, stats

    def generator_loss(self, G, D, batch: Batch, latent: Latent):
        y = self.labels(batch)
        fake = G(latent.sample(len(batch.x)), y)
        return self.g_loss(D(fake, y)), {}

    # --- what a run needs besides the losses -----------------------------------
    def setup(self, data, latent: Latent) -> None:
        """Once before training: draw what the losses need (mse: one z per example)."""

    def solve(self, G, data) -> dict[str, float]:
        """closed_form objectives: set G to the solution, return its loss."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
