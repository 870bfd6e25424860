"""The latent distribution p(z) that feeds the generator."""

import torch

# The mixture's centres are part of the prior, not of a run's randomness: every
# run, gan-sample and gan-eval draw the same ones from this seed.
CENTRES_SEED = 12345


def mixture_centres(components: int, dim: int) -> torch.Tensor:
    """The mixture prior's K centres [K, dim], drawn from N(0, I) on the CPU."""
    generator = torch.Generator(device="cpu").manual_seed(CENTRES_SEED)
    return torch.randn((components, dim), generator=generator)


class Latent:
    """Draws z from N(0, I), U(0, 1)^dim or a mixture of `components` equally
    likely Gaussians N(c_k, component_std^2 I) with fixed centres c_k ~ N(0, I),
    with its own seeded generator, so the latent stream does not depend on how
    many batches the data sampler drew.

    Why a mixture: a continuous G maps a connected latent space onto a connected
    set, so on data made of separate clusters it must spend some samples on
    bridges between them. Between well separated latent components the prior
    has almost no mass, so G can put its passages from cluster to cluster
    there (it still sends many components across clusters: docs/toys.md).

    portable=True draws on the CPU and moves z to `device`: the same seed then
    gives the same z on any device (CUDA's generator yields other numbers than
    the CPU's), which pictures, evaluations and gan-sample need; training
    draws on its own device, which is faster there."""

    def __init__(
        self,
        dim: int,
        distribution: str,
        device: torch.device,
        seed: int,
        portable: bool = False,
        components: int = 0,
        component_std: float = 0.0,
    ):
        self.dim = dim
        self.distribution = distribution
        self.device = torch.device(device)
        self.draw_device = torch.device("cpu") if portable else self.device
        self.generator = torch.Generator(device=self.draw_device).manual_seed(seed)
        self.centres = None
        if distribution == "mixture":
            self.centres = mixture_centres(components, dim).to(self.draw_device)
            self.component_std = component_std

    @classmethod
    def from_config(cls, latent, device, seed: int, portable: bool = False) -> "Latent":
        """From a config's `latent` node (or its plain dict in a checkpoint; a
        checkpoint from before the mixture prior has no mixture keys)."""
        mixture = latent["distribution"] == "mixture"
        return cls(
            latent["dim"],
            latent["distribution"],
            device,
            seed,
            portable,
            components=latent["components"] if mixture else 0,
            component_std=latent["component_std"] if mixture else 0.0,
        )

    def sample(self, n: int) -> torch.Tensor:
        shape, where = (n, self.dim), dict(generator=self.generator, device=self.draw_device)
        if self.centres is not None:
            k = torch.randint(len(self.centres), (n,), **where)
            z = self.centres[k] + self.component_std * torch.randn(shape, **where)
        else:
            z = (torch.rand if self.distribution == "uniform" else torch.randn)(shape, **where)
        return z.to(self.device)

    def uniform(self, n: int) -> torch.Tensor:
        """n numbers from U(0, 1) off the same stream (e.g. WGAN-GP's mixing
        coefficients), so they too are split between processes like z."""
        return torch.rand(n, generator=self.generator, device=self.draw_device).to(self.device)


def evaluation_latent(latent, device, run_seed: int) -> Latent:
    """The noise every evaluation of a run starts from, in the run and in
    gan-eval alike: its own seed (apart from training noise, seed + 1, and the
    pictures', seed + 2), drawn on the CPU so any device scores the same images.
    latent: the config's latent node."""
    return Latent.from_config(latent, device, seed=run_seed + 3, portable=True)
