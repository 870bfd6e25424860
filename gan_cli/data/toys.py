"""2D toy distributions, drawn fresh every batch: Gaussian mixtures whose
modes make mode collapse measurable (ring8, grid25) and continuous shapes
without modes (spiral, moons, circles)."""

import math
from dataclasses import dataclass, field

import torch

from gan_cli.data.sampler import DrawSampler

MIXTURES = ("ring8", "grid25")
SHAPES = ("spiral", "moons", "circles")
TOYS = MIXTURES + SHAPES

# A fixed seed for the real points pictures show, so every frame of every run
# compares with the same points.
PICTURE_SEED = 1_000
PICTURE_REAL_POINTS = 1_000


def ring_centres(k: int = 8, radius: float = 2.0) -> torch.Tensor:
    """[k, 2]: angles 2*pi*i/k, i = 0..k-1."""
    angles = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    return (radius * torch.stack([angles.cos(), angles.sin()], 1)).float()


def grid_centres(values=(-4.0, -2.0, 0.0, 2.0, 4.0)) -> torch.Tensor:
    """[25, 2]: every pair of values, row by row."""
    v = torch.tensor(values)
    return torch.cartesian_prod(v, v)


def _uniform(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device)


def _shape_points(name: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """[n, 2] noiseless points on a continuous shape, spanning about [-3, 3]."""
    u = _uniform(n, generator)
    if name == "spiral":  # scikit-learn's 2D swiss roll, scaled by 1/5
        t = 1.5 * math.pi * (1 + 2 * u)
        return torch.stack([t * t.cos(), t * t.sin()], 1) / 5
    half = _uniform(n, generator) < 0.5  # which moon / which circle
    if name == "moons":  # scikit-learn's two moons, centred, scaled by 2
        t = math.pi * u
        outer = torch.stack([t.cos(), t.sin()], 1)
        inner = torch.stack([1 - t.cos(), 0.5 - t.sin()], 1)
        points = torch.where(half[:, None], outer, inner)
        # scalars, not a tensor made from a list: no host copy, so a CUDA graph can capture it
        return 2 * torch.stack([points[:, 0] - 0.5, points[:, 1] - 0.25], 1)
    t = 2 * math.pi * u  # circles: radius 2 and, inside it, 1
    radius = torch.where(half, 2.0, 1.0)
    return radius[:, None] * torch.stack([t.cos(), t.sin()], 1)


@dataclass
class ToySet:
    """A 2D distribution: its components (the labels, for mixtures), fixed
    real points for pictures, and fresh batches from a seeded sampler."""

    name: str
    centres: torch.Tensor | None  # [K, 2] for mixtures, None for shapes
    std: float  # of each Gaussian, or of the shapes' noise
    arrows: int = 0  # generator-gradient arrows drawn per picture
    eval_points: int = 2_500  # generated and real points behind each evaluation
    real: torch.Tensor = field(init=False)  # fixed real points shown in pictures
    extent: float = field(init=False)  # pictures show [-extent, extent]^2
    kind = "toy"  # picks the evaluation room's metrics and pictures

    def __post_init__(self):
        self.real = self.draw(PICTURE_REAL_POINTS, torch.Generator().manual_seed(PICTURE_SEED))[0]
        # Fixed axes, so the frames of an animation do not jump.
        self.extent = 1.3 * self.draw(20_000, torch.Generator().manual_seed(0))[0].abs().max().item()

    @property
    def shape(self) -> tuple[int, ...]:
        return (2,)

    @property
    def num_classes(self) -> int:
        """The mixture component is the label (for cgan); shapes have none."""
        return 0 if self.centres is None else len(self.centres)

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """n points [n, 2] and their components [n] (None for shapes), on the generator's device."""
        device = generator.device
        noise = torch.randn(n, 2, generator=generator, device=device) * self.std
        if self.centres is None:
            return _shape_points(self.name, n, generator) + noise, None
        centres = self._centres_on(device)
        y = torch.randint(len(centres), (n,), generator=generator, device=device)
        return centres[y] + noise, y

    def _centres_on(self, device: torch.device) -> torch.Tensor:
        """The centres on `device`, copied there once rather than every batch."""
        cache = self.__dict__.setdefault("_centres_by_device", {})
        if device not in cache:
            cache[device] = self.centres.to(device)
        return cache[device]

    def sampler(self, batch_size: int, device: torch.device, seed: int) -> DrawSampler:
        return DrawSampler(self.draw, batch_size, device, seed)


def load_toy(name: str, std: float, arrows: int = 0, eval_points: int = 2_500) -> ToySet:
    """A toy set by name (values checked by gan_cli.config.checks). std: each
    Gaussian's standard deviation (ring8 0.02, grid25 0.05), or the noise
    added to a shape."""
    centres = {"ring8": ring_centres, "grid25": grid_centres}.get(name)
    return ToySet(name, centres() if centres else None, float(std), arrows, eval_points)


# Read by gan_cli.config.checks.validate: the names, and that batches are drawn
# fresh (no fixed examples for mse's fixed pairing).
load_toy.choices = {"name": TOYS}
load_toy.streaming = True
