"""f-GAN (Nowozin et al. 2016): variational divergence minimisation for any
f-divergence in fdiv.DIVERGENCES. D maximises the lower bound
E_P[g_f(v(x))] - E_Q[f*(g_f(v(x)))] on D_f(P_data || P_G), logged as
`fdiv_estimate`."""

from gan_cli.objectives import fdiv
from gan_cli.objectives.base import Objective

GENERATOR_LOSSES = {
    "alternative": fdiv.fgan_generator_loss_alternative,  # the paper's experiments
    "saddle": fdiv.fgan_generator_loss_saddle,
}


class FGAN(Objective):
    estimate_name = "fdiv_estimate"
    choices = {"divergence": tuple(fdiv.DIVERGENCES), "generator_loss": tuple(GENERATOR_LOSSES)}

    def __init__(
        self,
        name: str = "fgan",
        divergence: str = "kl",
        critic_steps: int = 1,
        generator_loss: str = "alternative",
        conditional: bool = False,
        **shared,
    ):
        super().__init__(name, critic_steps, conditional, **shared)
        self.divergence = fdiv.divergence(divergence)
        self.generator_loss_name = generator_loss

    def d_loss(self, real_out, fake_out):
        return fdiv.fgan_discriminator_loss(real_out, fake_out, self.divergence)

    def g_loss(self, fake_out):
        return GENERATOR_LOSSES[self.generator_loss_name](fake_out, self.divergence)

    def estimate(self, d_loss):
        return -d_loss  # the bound D maximises
