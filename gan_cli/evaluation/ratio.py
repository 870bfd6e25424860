"""D made into an estimate of log p_data(x) / p_G(x) before refined sampling.

A D trained as a GAN's critic has played against a moving G and, near the
game's equilibrium, scores G's current samples nearly flat: a scale and an
offset (refine.calibrate) cannot turn that into the density ratio. As
discriminator rejection sampling does (Azadi et al. 2019), a copy of D is
first trained on its own with the logistic loss, real points (label 1) from
the data set's sampler against fresh samples of the frozen G (label 0), for
which the optimal logit is exactly log p_data / p_G. By default only D's
last layer (its linear read-out of the features training gave it) is
trained: on the toys the whole net barely moves in as many steps (a smooth
critic learns the clusters' fine structure slowly) while the read-out does.
The run's D is never touched: the copy is trained in train mode (spectral
norm's power iteration runs as it did in training; batch norm keeps its
running statistics and dropout, if any, is off), without D's augmentation,
by Adam with its own real-point and noise generators, so no other random
stream moves.
"""

import copy
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gan_cli.models.conditioning import LAYERS_WITH_WEIGHTS
from gan_cli.models.inference import evaluating
from gan_cli.optimizers import without_dynamo_import

# Chosen by measurement on toy_best's grid25 and ring8 runs (docs/refined_sampling.md).
STEPS = 2000  # the default of eval.refine_steps and gan-sample --refine-steps
LR = 1e-2
BATCH = 256  # real points and as many generated ones per step
BETAS = (0.5, 0.999)
LAYERS = ("all", "last")  # which of the copy's weights are trained

NORMALISED = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.Dropout)


@dataclass
class Tuning:
    """How the copy of D is trained: `steps` (0: not at all), Adam's `lr`,
    `batch` real and as many generated points a step, `layers` all of D's
    weights or only its last layer's."""

    steps: int = STEPS
    lr: float = LR
    batch: int = BATCH
    layers: str = "last"


def fine_tuned(D, G, latent, real_batches, tuning: Tuning, device: torch.device | None = None):
    """(a trained copy of D, D evaluations it took, seconds): `tuning.steps`
    Adam steps of the logistic loss on real_batches.next() (a data set's
    sampler: .x, .y) against G(latent.sample(n), y), G frozen in eval mode.
    D itself is left exactly as it was."""
    began = time.perf_counter()
    tuned = copy.deepcopy(D)
    tuned.augment = None  # the ratio of plain points, as they will be scored
    for p in tuned.parameters():
        p.requires_grad_(False)
    trained = list(_trained_part(tuned, tuning.layers).parameters())
    for p in trained:
        p.requires_grad_(True)
    optimizer = without_dynamo_import(torch.optim.Adam)(trained, lr=tuning.lr, betas=BETAS)
    tuned.train()
    for module in tuned.modules():  # running statistics kept, dropout off
        if isinstance(module, NORMALISED):
            module.eval()
    evaluations = 0
    for _ in range(tuning.steps):
        batch = real_batches.next()
        real, y = batch.x.float(), batch.y
        with evaluating(G):
            fake = G(latent.sample(len(real)), y).float()
        loss = F.softplus(-tuned.score_each(real, y)).mean() + F.softplus(tuned.score_each(fake, y)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        evaluations += 2 * len(real)
    for p in tuned.parameters():
        p.requires_grad_(False)
    tuned.eval()
    return tuned, evaluations, time.perf_counter() - began


def _trained_part(D, layers: str) -> torch.nn.Module:
    """D's net, or its last layer with weights (the score's linear read-out)."""
    if layers == "all":
        return D.net
    last = [m for m in D.net.modules() if isinstance(m, LAYERS_WITH_WEIGHTS)]
    return last[-1]
