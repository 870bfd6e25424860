"""The latent distribution p(z) that feeds the generator."""

import torch



class Latent:
    """Draws z from N(0, I) or U(0, 1)^dim with its own seeded generator, so the
    latent stream does not depend on how many batches the data sampler drew.

    portable=True draws on the CPU and moves z to `device`: the same seed then
    gives the same z on any device (CUDA's generator yields other numbers than
    the CPU's), which pictures, evaluations and gan-sample need; training
    draws on its own device, which is faster there."""

    def __init__(self, dim: int, distribution: str, device: torch.device, seed: int,
                 portable: bool = False):
        self.dim = dim
        self.distribution = distribution
        self.device = torch.device(device)
        self.draw_device = torch.device("cpu") if portable else self.device
        self.generator = torch.Generator(device=self.draw_device).manual_seed(seed)

    def sample(self, n: int) -> torch.Tensor:
        shape = (n, self.dim)
        draw = torch.rand if self.distribution == "uniform" else torch.randn
        return draw(shape, generator=self.generator, device=self.draw_device).to(self.device)

    def uniform(self, n: int) -> torch.Tensor:
        """n numbers from U(0, 1) off the same stream (e.g. WGAN-GP's mixing
        coefficients), so they too are split between processes like z."""
        return torch.rand(n, generator=self.generator, device=self.draw_device).to(self.device)


def evaluation_latent(dim: int, distribution: str, device, run_seed: int) -> Latent:
    """The noise every evaluation of a run starts from, in the run and in
    gan-eval alike: its own seed (apart from training noise, seed + 1, and the
    pictures', seed + 2), drawn on the CPU so any device scores the same images."""
    return Latent(dim, distribution, device, seed=run_seed + 3, portable=True)
