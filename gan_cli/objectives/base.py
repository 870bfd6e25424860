"""What every objective offers the training loop.

The loop only calls `critic_steps_at`, `discriminator_loss`,
`after_discriminator_step` and `generator_loss`; it never asks which objective
it runs. A subclass usually just picks pure loss functions from losses.py.
"""

import sys

import torch

from gan_cli.data import Batch
from gan_cli.errors import UserError
from gan_cli.latent import Latent


class Objective:
    uses_discriminator = True
    trains = True                      # False: solved in closed form, no steps
    estimate_name: str | None = None   # the scalar this objective estimates
    critic_batch_norm = True           # False: D must not use batch norm (e.g. wgan_gp)

    def __init__(self, name: str, critic_steps: int = 1, conditional: bool = False):
        if not isinstance(critic_steps, int) or isinstance(critic_steps, bool) or critic_steps < 1:
            raise UserError(f"objective.critic_steps must be a whole number >= 1, got {critic_steps!r}")
        self.name = name
        self.critic_steps = critic_steps
        self.conditional = bool(conditional)

    # --- hooks a subclass fills in ------------------------------------------
    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def estimate(self, d_loss: torch.Tensor) -> torch.Tensor | None:
        return None

    # --- what the runner and the loop call ---------------------------------
    def configure_model(self, model_cfg) -> None:
        """Called with cfg.model before the nets are built. An objective that
        forbids batch norm in D switches a model's `d_norm` from batch to
        layer norm; the checkpoint's config then rebuilds the same D."""
        if not self.critic_batch_norm and model_cfg.get("d_norm") in (True, "batch"):
            model_cfg.d_norm = "layer"
            print(f"note: objective={self.name} needs a critic without batch norm; "
                  f"using model.d_norm=layer", file=sys.stderr)

    def surface(self, scores: torch.Tensor):
        """How pictures show D's raw output: (values, colour-bar label, fixed
        (low, high) or None to scale each picture to its own range)."""
        return scores, "critic value d(x)", None

    def setup(self, data, latent: Latent, generator: torch.nn.Module) -> None:
        """Called once before training (mse uses it for fixed latents)."""

    def critic_steps_at(self, step: int) -> int:
        return self.critic_steps

    def labels(self, batch: Batch) -> torch.Tensor | None:
        return batch.y if self.conditional else None

    def discriminator_loss(self, G, D, batch: Batch, latent: Latent):
        y = self.labels(batch)
        with torch.no_grad():                       # D's step needs no graph through G
            fake = G(latent.sample(len(batch.x)), y)
        loss = self.d_loss(*D.score_pair(batch.x, fake, y))
        estimate = self.estimate(loss)
        stats = {} if estimate is None else {self.estimate_name: estimate.detach()}
        return loss, stats

    def after_discriminator_step(self, D) -> None:
        pass

    def generator_loss(self, G, D, batch: Batch, latent: Latent):
        y = self.labels(batch)
        fake = G(latent.sample(len(batch.x)), y)
        return self.g_loss(D(fake, y)), {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
