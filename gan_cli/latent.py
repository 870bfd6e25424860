"""The latent distribution p(z) that feeds the generator."""

import torch

from gan_cli.errors import UserError

DISTRIBUTIONS = ("normal", "uniform")


class Latent:
    """Draws z from N(0, I) or U(0, 1)^dim with its own seeded generator, so the
    latent stream does not depend on how many batches the data sampler drew."""

    def __init__(self, dim: int, distribution: str, device: torch.device, seed: int):
        if distribution not in DISTRIBUTIONS:
            raise UserError(
                f"latent.distribution must be one of {', '.join(DISTRIBUTIONS)}, got {distribution!r}"
            )
        self.dim = dim
        self.distribution = distribution
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def sample(self, n: int) -> torch.Tensor:
        shape = (n, self.dim)
        if self.distribution == "uniform":
            return torch.rand(shape, generator=self.generator, device=self.device)
        return torch.randn(shape, generator=self.generator, device=self.device)
