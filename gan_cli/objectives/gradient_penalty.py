"""WGAN-GP (Gulrajani et al. 2017): the Wasserstein critic kept 1-Lipschitz by
a two-sided gradient penalty lambda E[(||grad d(x_hat)||_2 - 1)^2] on random
interpolates x_hat of real and fake samples, instead of weight clipping."""

from gan_cli.eager import eager
from gan_cli.objectives import losses
from gan_cli.objectives.wasserstein import WGAN


class WGANGP(WGAN):
    critic_batch_norm = False  # the penalty is per sample; batch norm couples the samples

    def __init__(
        self,
        name: str = "wgan_gp",
        critic_steps: int = 5,
        gp_weight: float = 10.0,
        conditional: bool = False,
        **shared,
    ):
        super().__init__(name, critic_steps, conditional=conditional, **shared)
        self.gp_weight = float(gp_weight)

    def after_discriminator_step(self, D) -> None:
        pass  # no clipping: the penalty replaces it

    def penalty(self, D, real, fake, y, latent):
        # One coefficient per sample, drawn from the latent stream's generator
        # so a resumed run draws the same ones. Labels stay with their x.
        eps = latent.uniform(len(real))
        points = losses.interpolate(real, fake, eps)
        with eager():  # differentiated twice
            penalty = losses.gradient_penalty(lambda h: D(h, y), points, self.pack)
        return self.gp_weight * penalty, {"gradient_penalty": penalty}
