"""Differentiable augmentation (DiffAugment, Zhao et al. 2020): the same
random transformations applied to real and generated images before every
evaluation of D, G's step included, so D cannot memorise a small data set
while G still gets gradients through the transformation. The operations
follow the authors' code: colour (brightness, saturation, contrast),
translation by up to 1/8 of the side (zero padding), and cutout of a square
half the side. Randomness is drawn as uniforms from the run's training noise
(`noise.uniform(n)`: gan_cli.latent), so it is checkpointed, a resumed run
draws the same, and several processes each take their rows of the draws for
the global batch, as they do for z."""

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def _uniform(x: torch.Tensor, noise, low: float, high: float) -> torch.Tensor:
    """One number per image in [low, high), shaped [B, 1, 1, 1]."""
    u = noise.uniform(x.shape[0]).to(x.device, x.dtype)
    return (low + (high - low) * u).view(-1, 1, 1, 1)


def color(x: torch.Tensor, noise) -> torch.Tensor:
    x = x + _uniform(x, noise, -0.5, 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * _uniform(x, noise, 0.0, 2.0) + mean  # saturation
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * _uniform(x, noise, 0.5, 1.5) + mean  # contrast


def _grid(x: torch.Tensor, rows: int, cols: int):
    b = torch.arange(x.shape[0], device=x.device)[:, None, None]
    r = torch.arange(rows, device=x.device)[None, :, None]
    c = torch.arange(cols, device=x.device)[None, None, :]
    return b, r, c


def _offsets(x: torch.Tensor, noise, low: int, high: int) -> torch.Tensor:
    """Whole numbers in [low, high], one per image, shaped [B, 1, 1]."""
    u = noise.uniform(x.shape[0]).to(x.device)
    whole = torch.clamp((u * (high - low + 1)).long(), max=high - low) + low
    return whole.view(-1, 1, 1)


def translation(x: torch.Tensor, noise, ratio: float = 0.125) -> torch.Tensor:
    h, w = x.shape[2], x.shape[3]
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy, dx = _offsets(x, noise, -sh, sh), _offsets(x, noise, -sw, sw)
    b, r, c = _grid(x, h, w)
    rows = torch.clamp(r + dy + 1, 0, h + 1)
    cols = torch.clamp(c + dx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])  # a border of zeros
    return padded.permute(0, 2, 3, 1)[b, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, noise, ratio: float = 0.5) -> torch.Tensor:
    h, w = x.shape[2], x.shape[3]
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = _offsets(x, noise, 0, h - ch % 2)
    ox = _offsets(x, noise, 0, w - cw % 2)
    b, r, c = _grid(x, ch, cw)
    rows = torch.clamp(r + oy - ch // 2, 0, h - 1)
    cols = torch.clamp(c + ox - cw // 2, 0, w - 1)
    mask = torch.ones(x.shape[0], h, w, dtype=x.dtype, device=x.device)
    mask[b, rows, cols] = 0
    return x * mask.unsqueeze(1)


OPERATIONS = {"color": color, "translation": translation, "cutout": cutout}


class DiffAugment:
    """Callable on images [B, C, H, W]: the listed operations in order."""

    def __init__(self, policy, noise):
        self.policy = list(policy)
        self.noise = noise  # anything with uniform(n): the run's Latent

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.policy:
            x = OPERATIONS[name](x, self.noise)
        return x
