"""WGAN-GP (Gulrajani et al. 2017): the Wasserstein critic kept 1-Lipschitz by
a two-sided gradient penalty lambda E[(||grad d(x_hat)||_2 - 1)^2] on random
interpolates x_hat of real and fake samples, instead of weight clipping."""

import torch

from gan_cli.errors import UserError
from gan_cli.objectives import losses
from gan_cli.objectives.base import Objective


class WGANGP(Objective):
    estimate_name = "wasserstein_estimate"
    critic_batch_norm = False   # the penalty is per sample; batch norm couples the samples

    def __init__(self, name: str = "wgan_gp", critic_steps: int = 5, gp_weight: float = 10.0,
                 conditional: bool = False):
        super().__init__(name, critic_steps, conditional)
        if isinstance(gp_weight, bool) or not isinstance(gp_weight, (int, float)) or gp_weight < 0:
            raise UserError(f"objective.gp_weight must be a number >= 0, got {gp_weight!r}")
        self.gp_weight = float(gp_weight)

    g_loss = staticmethod(losses.wasserstein_generator_loss)

    def discriminator_loss(self, G, D, batch, latent):
        x, y = batch.x, self.labels(batch)
        with torch.no_grad():
            fake = G(latent.sample(len(x)), y)
        critic_loss = losses.wasserstein_critic_loss(D(x, y), D(fake, y))
        # One coefficient per sample, drawn from the latent stream's generator
        # so a resumed run draws the same ones. Labels stay with their x.
        eps = torch.rand(len(x), generator=latent.generator, device=latent.device)
        penalty = losses.gradient_penalty(lambda h: D(h, y), losses.interpolate(x, fake, eps))
        loss = critic_loss + self.gp_weight * penalty
        return loss, {"wasserstein_estimate": -critic_loss.detach(),
                      "gradient_penalty": penalty.detach()}
