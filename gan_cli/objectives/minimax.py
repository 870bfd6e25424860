"""The original GAN and, with conditional=true, cGAN (Mirza & Osindero 2014)."""

from gan_cli.errors import UserError
from gan_cli.objectives import losses
from gan_cli.objectives.base import Objective

GENERATOR_LOSSES = {
    "non_saturating": losses.non_saturating_generator_loss,
    "saturating": losses.saturating_generator_loss,
}


class MinimaxGAN(Objective):
    estimate_name = "js_estimate"

    def __init__(self, name: str = "gan", critic_steps: int = 1,
                 generator_loss: str = "non_saturating", conditional: bool = False):
        super().__init__(name, critic_steps, conditional)
        if generator_loss not in GENERATOR_LOSSES:
            raise UserError(f"objective.generator_loss must be one of "
                            f"{', '.join(GENERATOR_LOSSES)}, got {generator_loss!r}")
        self.g_loss = GENERATOR_LOSSES[generator_loss]

    d_loss = staticmethod(losses.minimax_discriminator_loss)
    estimate = staticmethod(losses.js_estimate)

    def surface(self, scores):
        return scores.sigmoid(), "D(x) = P(real)", (0.0, 1.0)
