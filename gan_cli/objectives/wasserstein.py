"""WGAN with weight clipping: Algorithm 1 of Arjovsky, Chintala & Bottou (2017)."""

from gan_cli.objectives import losses
from gan_cli.objectives.base import Objective


class WGAN(Objective):
    estimate_name = "wasserstein_estimate"

    def __init__(
        self,
        name: str = "wgan",
        critic_steps: int = 5,
        clip_value: float = 0.01,
        reference_schedule: bool = False,
        conditional: bool = False,
        **shared,
    ):
        super().__init__(name, critic_steps, conditional, **shared)
        self.clip_value = float(clip_value)
        self.reference_schedule = bool(reference_schedule)

    def critic_steps_at(self, step: int) -> int:
        # The authors' code trains the critic near optimality at the start and
        # now and then: 100 updates for the first 25 generator updates and every 500th.
        if self.reference_schedule and (step < 25 or step % 500 == 0):
            return 100
        return self.critic_steps

    def d_loss(self, real_out, fake_out):
        return losses.wasserstein_critic_loss(real_out, fake_out)

    def g_loss(self, fake_out):
        return losses.wasserstein_generator_loss(fake_out)

    def estimate(self, d_loss):
        return -d_loss  # E[d(real)] - E[d(fake)]

    def after_discriminator_step(self, D) -> None:
        losses.clip_parameters_(D, self.clip_value)
