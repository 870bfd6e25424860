"""The original GAN and, with conditional=true, cGAN (Mirza & Osindero 2014)."""

from gan_cli.objectives import losses
from gan_cli.objectives.base import Objective

GENERATOR_LOSSES = {
    "non_saturating": losses.non_saturating_generator_loss,
    "saturating": losses.saturating_generator_loss,
}


class MinimaxGAN(Objective):
    estimate_name = "js_estimate"
    d_output = "logit"
    choices = {"generator_loss": tuple(GENERATOR_LOSSES)}

    def __init__(
        self,
        name: str = "gan",
        critic_steps: int = 1,
        generator_loss: str = "non_saturating",
        conditional: bool = False,
        **shared,
    ):
        super().__init__(name, critic_steps, conditional, **shared)
        self.generator_loss_name = generator_loss

    def d_loss(self, real_out, fake_out):
        return losses.minimax_discriminator_loss(real_out, fake_out)

    def g_loss(self, fake_out):
        return GENERATOR_LOSSES[self.generator_loss_name](fake_out)

    def estimate(self, d_loss):
        return losses.js_estimate(d_loss)
