"""The training step loop. It never asks which objective, model or data set it
runs: the objective supplies the losses, the sampler the batches, and the
session (gan_cli.run.runner) decides after each step whether to go on."""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from gan_cli.latent import Latent
from gan_cli.objectives import Objective
from gan_cli.training.meter import Meter


@dataclass
class Parts:
    generator: torch.nn.Module
    discriminator: torch.nn.Module | None  # None for mse
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
    objective: Objective
    sampler: object  # .next() -> Batch
    latent: Latent
    autocast: Callable = contextlib.nullcontext  # context for forward passes (bf16)
    # Called with the step's index before each generator step (the learning-rate schedule).
    before_step: Callable[[int], None] = lambda step: None
    # Called with G's update count after each of G's optimizer steps (G's moving average).
    after_generator_step: Callable[[int], None] = lambda step: None
    # What, besides its critic steps, makes generator step `step` compute
    # differently from another (host-side state): CUDA graphs capture apart per phase.
    phase: Callable[[int], object] = lambda step: None


@contextlib.contextmanager
def frozen(module: torch.nn.Module | None):
    """No weight gradients for `module` while G's graph is built through it."""
    if module is None:
        yield
        return
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def run_steps(
    parts: Parts, start_step: int, end_step: int, meter: Meter, after_step: Callable[[int], bool]
) -> int:
    """Generator steps start_step+1 .. end_step; after each, after_step(step)
    says whether to go on. Returns the last step taken."""
    G, D, objective = parts.generator, parts.discriminator, parts.objective
    sampler, latent = parts.sampler, parts.latent
    step = start_step
    while step < end_step:
        parts.before_step(step)
        # 1. Discriminator (critic): critic_steps updates, each on a fresh real
        #    batch and fresh z; the objective may constrain D afterwards (clipping).
        for _ in range(objective.critic_steps_at(step)):
            with parts.autocast():
                loss_d, stats = objective.discriminator_loss(G, D, sampler.next(), latent)
            parts.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            parts.opt_d.step()
            objective.after_discriminator_step(D)
            meter.add({"loss/d": loss_d, **stats})

        # 2. Generator: one update through the frozen D.
        with frozen(D), parts.autocast():
            loss_g, stats = objective.generator_loss(G, D, sampler.next(), latent)
        parts.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        parts.opt_g.step()
        parts.after_generator_step(step + 1)
        meter.add({"loss/g": loss_g, **stats})

        step += 1
        if not after_step(step):
            break
    return step
