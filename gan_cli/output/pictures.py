"""Image grids and PNG files, laid out and rounded exactly as torchvision's
make_grid and save_image do, without importing torchvision (about 2 s of
every run's start-up on a small CPU machine, for two small functions)."""

import math

import torch


def make_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 0.0) -> torch.Tensor:
    """[N, C, H, W] (or one [C, H, W]) -> one [C', H', W'] picture: nrow images
    per row, `padding` pixels around each; one channel becomes three (grey)."""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.size(1) == 1:
        images = images.expand(-1, 3, -1, -1)
    if images.size(0) == 1:
        return images[0].clone()
    count = images.size(0)
    columns = min(nrow, count)
    rows = math.ceil(count / columns)
    height, width = images.size(2) + padding, images.size(3) + padding
    grid = images.new_full((images.size(1), height * rows + padding, width * columns + padding), pad_value)
    for k in range(count):
        row, column = divmod(k, columns)
        grid[
            :, row * height + padding : (row + 1) * height, column * width + padding : (column + 1) * width
        ] = images[k]
    return grid


def to_pixels(pictures: torch.Tensor):
    """[..., C, H, W] floats in [0, 1] -> uint8 [..., H, W, C] numpy, rounded as
    save_image does: * 255 + 0.5, clamped, truncated."""
    return pictures.mul(255).add_(0.5).clamp_(0, 255).movedim(-3, -1).to("cpu", torch.uint8).numpy()


def save_png(images: torch.Tensor, file, nrow: int = 8, padding: int = 2) -> None:
    """images [N, C, H, W] or [C, H, W] in [0, 1] as one PNG (a path or a binary file)."""
    from PIL import Image

    Image.fromarray(to_pixels(make_grid(images.detach(), nrow, padding))).save(file, format="png")
