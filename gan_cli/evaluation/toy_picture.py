"""Pictures of a 2D toy run in the manner of GAN Lab: real points (green) and
generated points (red) over the discriminator's surface, and a GIF of all
frames. Drawn on matplotlib's Agg canvas directly: no display, no pyplot state.
"""

import os
from pathlib import Path

import numpy as np
import torch

from gan_cli.models.inference import eval_mode, evaluating, generate
from gan_cli.output.step_files import step_files, step_of

WIDTH, HEIGHT, DPI = 5.6, 5.0, 100  # inches: a 560 x 500 pixel picture
SURFACE_CELLS = 160  # D is evaluated on a 160 x 160 grid
ARROW_LENGTH = 0.15  # the longest arrow, as a fraction of the frame


def _score_each(D):
    """One score per point, also from a packed D (models/conditioning.py);
    any other callable scores points as they are."""
    return getattr(D, "score_each", D)


def _surface(toy, D, objective, device):
    """D's output on a grid over the frame: (values [n, n], colour-bar label, (lo, hi) or None).
    A conditional D scores each grid point under the label of its nearest centre."""
    e = toy.extent
    ticks = torch.linspace(-e, e, SURFACE_CELLS, device=device)
    gy, gx = torch.meshgrid(ticks, ticks, indexing="ij")
    points = torch.stack([gx.flatten(), gy.flatten()], 1)  # [n*n, 2]
    labels = None
    if getattr(D, "num_classes", 0):
        labels = torch.cdist(points, toy.centres.to(device)).argmin(1)
    with evaluating(D):
        scores = _score_each(D)(points, labels).float()
    if getattr(objective, "d_output", "score") == "logit":  # D(x) = sigmoid(logit)
        values, label, limits = scores.sigmoid(), "D(x) = P(real)", (0.0, 1.0)
    else:
        values, label, limits = scores, "critic value d(x)", None
    return values.view(SURFACE_CELLS, SURFACE_CELLS).cpu().numpy(), label, limits


def _generator_moves(D, objective, fake, fixed_y, count):
    """(points [m, 2], -dL_G/dx [m, 2]) on m evenly spaced generated points:
    the direction in which G's update pushes each point (GAN Lab's
    "generator gradients"), as D in eval mode sees them."""
    pick = torch.linspace(0, len(fake) - 1, min(count, len(fake)), device=fake.device).long()
    x = fake[pick].detach().requires_grad_(True)
    y = None if fixed_y is None else fixed_y[pick]
    # Eval mode: a training-mode D would advance its spectral-norm vectors
    # and batch-norm statistics, so drawing pictures would change the run.
    with eval_mode(D), torch.enable_grad():
        loss = objective.g_loss(_score_each(D)(x, y)) * len(x)  # per-point gradients
        (grad,) = torch.autograd.grad(loss, x)  # D's weights untouched
    return x.detach(), -grad


def scatter(toy, G, D, fixed_z, fixed_y, objective=None) -> torch.Tensor:
    """[3, H, W] picture in [0, 1]: G(fixed_z) in red, toy.real in green, over
    D's surface (none for mse). Axes are fixed by the data so frames compare."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    e = toy.extent
    fake = generate(G, fixed_z, fixed_y)
    fig = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.07, 0.07, 0.72, 0.86))
    ax.set(xlim=(-e, e), ylim=(-e, e), aspect="equal")
    ax.set_title(f"{toy.name}: real (green), generated (red)", fontsize=10)

    if D is not None:
        values, label, limits = _surface(toy, D, objective, fixed_z.device)
        lo, hi = limits if limits else (float(values.min()), float(values.max()))
        image = ax.imshow(
            values,
            origin="lower",
            extent=(-e, e, -e, e),
            cmap="Blues",
            vmin=lo,
            vmax=hi,
            interpolation="bilinear",
        )
        cax = fig.add_axes((0.80, 0.07, 0.03, 0.86))
        fig.colorbar(image, cax=cax).set_label(label, fontsize=9)

    real = toy.real.numpy()
    ax.scatter(real[:, 0], real[:, 1], s=4, c="#1a9641", alpha=0.6, linewidths=0)
    # Points that left the frame sit on its edge, so escaping mass stays visible.
    shown = fake.cpu().numpy().clip(-e, e)
    if fixed_y is not None and toy.centres is not None:
        # A conditional G: a faint line from each point to the centre of the
        # class it was asked for; short lines mean the label is honoured.
        targets = toy.centres.numpy()[fixed_y.cpu().numpy()]
        ax.add_collection(
            LineCollection(np.stack([shown, targets], 1), colors="#d7191c", linewidths=0.4, alpha=0.25)
        )
    ax.scatter(shown[:, 0], shown[:, 1], s=7, c="#d7191c", alpha=0.8, linewidths=0)

    if D is not None and toy.arrows and objective is not None:
        points, moves = _generator_moves(D, objective, fake, fixed_y, toy.arrows)
        longest = moves.norm(dim=1).max().clamp_min(1e-12)
        moves = (moves / longest * ARROW_LENGTH * 2 * e).cpu().numpy()
        points = points.cpu().numpy()
        ax.quiver(
            points[:, 0],
            points[:, 1],
            moves[:, 0],
            moves[:, 1],
            angles="xy",
            scale_units="xy",
            scale=1,
            color="#7b3294",
            width=0.004,
        )

    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return torch.from_numpy(rgba[..., :3].copy()).permute(2, 0, 1).float().div_(255)


def write_gif(folder: Path, path: Path, frame_ms: int = 300, last_ms: int = 2000) -> Path | None:
    """Animate every samples/step_<N>.png in step order, the step written on each frame."""
    from PIL import Image, ImageDraw, ImageFont

    files = step_files(folder, ".png")
    if not files:
        return None
    try:
        font = ImageFont.load_default(size=14)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        font = ImageFont.load_default()
    frames = []
    for file in files:
        with Image.open(file) as image:
            frame = image.convert("RGB")
        ImageDraw.Draw(frame).text((6, 4), f"step {step_of(file)}", fill=(0, 0, 0), font=font)
        frames.append(frame.quantize(colors=256))
    durations = [frame_ms] * (len(frames) - 1) + [last_ms]
    tmp = path.with_name(f".{path.name}.tmp")
    frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    os.replace(tmp, path)
    return path
