"""Relativistic pairing GAN (RpGAN; Jolicoeur-Martineau 2019), the loss of
R3GAN (Huang et al. 2024): each real example is paired with one of G's
samples, D minimises E[softplus(d(fake) - d(real))] and G the same with the
roles swapped. With R1 and R2 (objective.r1, objective.r2) it is R3GAN's
regularised loss."""

from gan_cli.objectives import losses
from gan_cli.objectives.base import Objective


class RelativisticGAN(Objective):
    estimate_name = "rp_estimate"
    generator_sees_real = True

    def __init__(self, name: str = "rpgan", critic_steps: int = 1, conditional: bool = False, **shared):
        super().__init__(name, critic_steps, conditional, **shared)

    def d_loss(self, real_out, fake_out):
        return losses.relativistic_discriminator_loss(real_out, fake_out)

    def g_loss(self, fake_out, real_out=None):
        return losses.relativistic_generator_loss(real_out, fake_out)

    def estimate(self, d_loss):
        return losses.relativistic_estimate(d_loss)
