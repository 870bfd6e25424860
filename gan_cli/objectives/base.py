"""What every objective offers the training loop.

An objective is its losses, its critic schedule, the constraint it puts on D
after D's step, and the names of the estimates it logs. The loop only calls
`critic_steps_at`, `discriminator_loss`, `after_discriminator_step` and
`generator_loss`; it never asks which objective it runs.

Its host-side state (the count of D's steps, which decides lazy R1) is read
and moved only through `phase`, `count_d_steps` and `state_dict` /
`load_state_dict`: CUDA graphs (gan_cli.training.cuda_graphs) key their
captures on `phase()` and count the D steps a replay took, which no code of
the objective ran.

A subclass fills in the same hooks every time, each a method that calls pure
functions of D's outputs (losses.py, fdiv.py):
    d_loss(real_out, fake_out)  the loss D minimises
    g_loss(fake_out)            the loss G minimises (g_loss(fake_out, real_out)
                                where `generator_sees_real`: a relativistic loss)
    estimate(d_loss)            the value named `estimate_name`, read off D's loss
    penalty(D, real, fake, y, latent)  a regulariser added to D's loss (optional)
Its values were checked by gan_cli.config.checks before it is built.

Settings every objective with a discriminator shares, handled here so no
subclass needs to know them, two of D's:
    pack      PacGAN (Lin et al. 2018): D judges `pack` samples joined together
              (the models join them; see models/conditioning.py)
    r1        R1 (Mescheder et al. 2018): r1/2 * E[||grad_x D(x)||^2] on real x,
              added to D's loss on every `r1_every`-th D step with weight
              r1 * r1_every (lazy regularisation, as in StyleGAN2)
    r2        R2 (the same paper): the same penalty on G's samples, weighted r2,
              on R1's steps (as R3GAN, Huang et al. 2024, pairs them)
and one of G's:
    mode_seeking  MSGAN (Mao et al. 2019): G's loss gains this weight times
              1 / (|G(z1) - G(z2)| / |z1 - z2|) over pairs sharing a class
"""

import torch

from gan_cli.data import Batch
from gan_cli.eager import eager
from gan_cli.latent import Latent
from gan_cli.objectives import losses


class Objective:
    uses_discriminator = True
    estimate_name: str | None = None  # the divergence or distance D's loss estimates
    # What D's raw output means, for pictures of it: "logit" (of P(real)) or "score".
    d_output = "score"
    # False: D must not use batch norm (config.validate refuses such a model).
    critic_batch_norm = True
    # True: G is solved in closed form by `solve`, not trained step by step.
    closed_form = False
    # True: G's loss compares each of its samples with a real example paired
    # with it, so G's step scores the real batch too.
    generator_sees_real = False
    # Allowed values of this objective's string settings, read by config.validate.
    choices: dict[str, tuple] = {}

    def __init__(
        self,
        name: str,
        critic_steps: int = 1,
        conditional: bool = False,
        pack: int = 1,
        r1: float = 0.0,
        r1_every: int = 1,
        mode_seeking: float = 0.0,
        r2: float = 0.0,
    ):
        self.name = name
        self.critic_steps = critic_steps
        self.conditional = bool(conditional)
        self.pack = int(pack)
        self.r1 = float(r1)
        self.r1_every = int(r1_every)
        self.mode_seeking = float(mode_seeking)
        self.r2 = float(r2)
        self.d_steps = 0  # D's updates so far: which ones get R1 and R2 (checkpointed)

    # --- the hooks a subclass fills in ----------------------------------------
    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake_out: torch.Tensor, real_out: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def estimate(self, d_loss: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def penalty(self, D, real: torch.Tensor, fake: torch.Tensor, y, latent: Latent):
        """(term added to D's loss, {name: value} to log), or None."""
        return None

    # --- schedule and constraint ------------------------------------------------
    def critic_steps_at(self, step: int) -> int:
        return self.critic_steps

    def after_discriminator_step(self, D) -> None:
        pass

    # --- what the loop calls ----------------------------------------------------
    def labels(self, batch: Batch) -> torch.Tensor | None:
        return batch.y if self.conditional else None

    def discriminator_loss(self, G, D, batch: Batch, latent: Latent):
        y = self.labels(batch)
        with torch.no_grad():  # D's step needs no graph through G
            fake = G(latent.sample(len(batch.x)), y)
        # R1 (R2) differentiates D(real) (D(fake)) with respect to its input:
        # the same forward pass serves the loss and the penalty.
        penalty_step = self.d_steps % self.r1_every == 0  # phase() == 0
        r1_now, r2_now = penalty_step and self.r1 > 0, penalty_step and self.r2 > 0
        self.d_steps += 1
        real = batch.x.detach().requires_grad_(True) if r1_now else batch.x
        fake = fake.requires_grad_(True) if r2_now else fake
        with eager(r1_now or r2_now):  # R1's and R2's steps only: D's others stay compiled
            real_out, fake_out = D.score_pair(real, fake, y)
        loss = self.d_loss(real_out, fake_out)
        stats = {} if self.estimate_name is None else {self.estimate_name: self.estimate(loss).detach()}
        extras = [self.penalty(D, batch.x, fake, y, latent)]
        for name, gamma, due, scores, inputs in (
            ("r1", self.r1, r1_now, real_out, real),
            ("r2", self.r2, r2_now, fake_out, fake),
        ):
            if due:
                value = losses.zero_centred_penalty(scores, inputs, self.pack)
                extras.append((gamma * self.r1_every / 2 * value, {f"{name}_penalty": value}))
        for extra in filter(None, extras):
            term, logged = extra
            loss = loss + term
            stats.update({name: value.detach() for name, value in logged.items()})
        return loss, stats

    def generator_loss(self, G, D, batch: Batch, latent: Latent):
        y = self.labels(batch)
        if self.mode_seeking > 0:
            return self._mode_seeking_loss(G, D, batch.x, y, latent)
        fake = G(latent.sample(len(batch.x)), y)
        return self._scored_g_loss(D, fake, batch.x, y), {}

    def _scored_g_loss(self, D, fake: torch.Tensor, real: torch.Tensor, y) -> torch.Tensor:
        if not self.generator_sees_real:
            return self.g_loss(D(fake, y))
        real_out, fake_out = D.score_pair(real, fake, y)
        return self.g_loss(fake_out, real_out)

    def _mode_seeking_loss(self, G, D, real: torch.Tensor, y, latent: Latent):
        """G's loss plus MSGAN's term (Mao et al. 2019): the batch's two halves
        share their classes, and G is pushed to map their different z to
        images as far apart as the z are: mode_seeking / (ratio + 1e-5), the
        ratio being mean |G(z1) - G(z2)| / mean |z1 - z2|, logged."""
        n = len(real)
        half = n // 2
        if y is not None:  # the second half asks for the first half's classes
            y = torch.cat([y[:half], y[:half], y[2 * half :]])
            real = torch.cat([real[:half], real[:half], real[2 * half :]])  # pairs share a class
        z = latent.sample(n)
        fake = G(z, y)
        ratio = losses.mode_seeking_ratio(fake[:half], fake[half : 2 * half], z[:half], z[half : 2 * half])
        loss = self._scored_g_loss(D, fake, real, y) + self.mode_seeking / (ratio + 1e-5)
        return loss, {"mode_seeking_ratio": ratio.detach()}

    # --- what a run needs besides the losses -----------------------------------
    def setup(self, data, latent: Latent) -> None:
        """Once before training: draw what the losses need (mse: one z per example)."""

    def solve(self, G, data) -> dict[str, float]:
        """closed_form objectives: set G to the solution, return its loss."""
        raise NotImplementedError

    def phase(self) -> int:
        """Where the coming D steps fall in lazy R1's (and R2's) cycle (0 without one):
        all the host-side state that makes the coming D steps compute
        differently, so that steps of one phase can replay one captured graph."""
        penalised = self.r1 > 0 or self.r2 > 0
        return self.d_steps % self.r1_every if penalised and self.r1_every > 1 else 0

    def count_d_steps(self, n: int) -> None:
        """n D steps were taken without running this code (a replayed CUDA graph)."""
        self.d_steps += n

    def state_dict(self) -> dict:
        return {"d_steps": self.d_steps}

    def load_state_dict(self, state: dict) -> None:
        self.d_steps = int(state.get("d_steps", 0))
