"""WGAN with weight clipping: Algorithm 1 of Arjovsky, Chintala & Bottou (2017)."""

import torch

from gan_cli.objectives import losses
from gan_cli.objectives.base import Objective


@torch.no_grad()
def clip_weights_(module: torch.nn.Module, clip_value: float, multi_tensor: bool | None = None) -> None:
    """Every parameter of `module` clamped to [-c, c] in place.

    multi_tensor (None: off the CPU): two multi-tensor ops over all the
    parameters (max with -c, then min with c) instead of one clamp per tensor:
    on a GPU two kernel launches in place of one per tensor, where a step of
    these small nets is bound by launches. On the CPU a multi-tensor op is a
    loop over the tensors anyway, and its two passes over memory cost more than
    the one of clamp_ (measured). Both give the same bits: max(x, -c) then
    min(., c) is clamp's own definition, NaN included, and exact."""
    params = list(module.parameters())
    if not params:
        return
    if multi_tensor is None:
        multi_tensor = params[0].device.type != "cpu"
    if multi_tensor and hasattr(torch, "_foreach_clamp_min_") and hasattr(torch, "_foreach_clamp_max_"):
        torch._foreach_clamp_min_(params, -clip_value)
        torch._foreach_clamp_max_(params, clip_value)
    else:
        losses.clip_parameters_(module, clip_value)  # one clamp per tensor


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
        clip_weights_(D, self.clip_value)
