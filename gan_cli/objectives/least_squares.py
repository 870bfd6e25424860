"""Least squares GAN (Mao et al. 2017) with the a-b-c coding: D regresses real
samples to b and fakes to a; G wants D to say c for its samples."""

from gan_cli.objectives import losses
from gan_cli.objectives.base import Objective


class LeastSquaresGAN(Objective):
    estimate_name = "chi2_estimate"

    def __init__(
        self,
        name: str = "lsgan",
        critic_steps: int = 1,
        a: float = -1.0,
        b: float = 1.0,
        c: float = 0.0,
        conditional: bool = False,
        **shared,
    ):
        super().__init__(name, critic_steps, conditional, **shared)
        self.a, self.b, self.c = float(a), float(b), float(c)

    def d_loss(self, real_out, fake_out):
        return losses.least_squares_discriminator_loss(real_out, fake_out, self.a, self.b)

    def g_loss(self, fake_out):
        return losses.least_squares_generator_loss(fake_out, self.c)

    def estimate(self, d_loss):
        return losses.chi2_estimate(d_loss, self.a, self.b)
