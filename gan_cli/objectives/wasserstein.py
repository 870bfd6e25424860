"""WGAN with weight clipping: Algorithm 1 of Arjovsky, Chintala & Bottou (2017)."""

from gan_cli.errors import UserError
from gan_cli.objectives import losses
from gan_cli.objectives.base import Objective


class WGAN(Objective):
    estimate_name = "wasserstein_estimate"

    def __init__(self, name: str = "wgan", critic_steps: int = 5, clip_value: float = 0.01,
                 reference_schedule: bool = False, conditional: bool = False):
        super().__init__(name, critic_steps, conditional)
        if not isinstance(clip_value, (int, float)) or clip_value <= 0:
            raise UserError(f"objective.clip_value must be a number > 0, got {clip_value!r}")
        self.clip_value = float(clip_value)
        self.reference_schedule = bool(reference_schedule)

    def critic_steps_at(self, step: int) -> int:
        # The authors' code trains the critic near optimality at the start and
        # now and then: 100 updates for the first 25 generator updates and every 500th.
        if self.reference_schedule and (step < 25 or step % 500 == 0):
            return 100
        return self.critic_steps

    d_loss = staticmethod(losses.wasserstein_critic_loss)
    g_loss = staticmethod(losses.wasserstein_generator_loss)

    @staticmethod
    def estimate(critic_loss):
        return -critic_loss                       # E[d(real)] - E[d(fake)]

    def after_discriminator_step(self, D) -> None:
        losses.clip_parameters_(D, self.clip_value)
