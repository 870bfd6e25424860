"""Hinge loss GAN (Lim & Ye 2017; as in SN-GAN, Miyato et al. 2018, and SAGAN):
D minimises E[max(0, 1 - d(x))] + E[max(0, 1 + d(G(z)))], G minimises -E[d(G(z))]."""

from gan_cli.objectives import losses
from gan_cli.objectives.base import Objective


class HingeGAN(Objective):
    estimate_name = "tv_estimate"

    def __init__(self, name: str = "hinge", critic_steps: int = 1, conditional: bool = False, **shared):
        super().__init__(name, critic_steps, conditional, **shared)

    def d_loss(self, real_out, fake_out):
        return losses.hinge_discriminator_loss(real_out, fake_out)

    def g_loss(self, fake_out):
        return losses.hinge_generator_loss(fake_out)

    def estimate(self, d_loss):
        return losses.total_variation_estimate(d_loss)
