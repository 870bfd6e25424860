"""gan-sample: draw from a trained generator, using its checkpoint alone."""

import argparse
import sys
from pathlib import Path

from gan_cli.errors import UserError, reported


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gan-sample",
        description="Draw samples from a run's generator (checkpoints/last.pt) or a checkpoint file.")
    parser.add_argument("path", help="a run dir (uses checkpoints/last.pt) or a checkpoint .pt file")
    parser.add_argument("--num", type=int, default=64, help="number of samples (default 64)")
    parser.add_argument("--out", type=Path, help="write samples (and labels) to this .npz")
    parser.add_argument("--grid", type=Path, help="write a picture of the samples to this .png")
    parser.add_argument("--label", type=int, help="conditional models: draw only this class")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent noise (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    add_generator_choice(parser)
    return parser.parse_args(argv)


def add_generator_choice(parser: argparse.ArgumentParser) -> None:
    """--ema / --raw: which G of a checkpoint (gan-sample and gan-eval)."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--ema", dest="ema", action="store_true", default=None,
                       help="G's moving average (the default where the run kept one, train.ema > 0)")
    which.add_argument("--raw", dest="ema", action="store_false",
                       help="the trained G itself, not its moving average")


def draw(state: dict, num: int, label: int | None = None, seed: int = 0, device: str = "cpu",
         ema: bool | None = None):
    """(samples [N, *shape] float32 in the data's [-1, 1] scale, labels [N] or None)."""
    import torch

    from gan_cli.checkpoint import generator_from_checkpoint
    from gan_cli.latent import Latent
    from gan_cli.models.inference import generate
    from gan_cli.experiment import pick_device

    dev = pick_device(device)
    G = generator_from_checkpoint(state, dev, ema)
    latent_cfg = state["config"]["latent"]
    z = Latent(latent_cfg["dim"], latent_cfg["distribution"], dev, seed, portable=True).sample(num)
    classes = G.num_classes
    labels = None
    if classes:
        if label is None:
            labels = torch.arange(num, device=dev) % classes      # every class in turn
        elif 0 <= label < classes:
            labels = torch.full((num,), label, dtype=torch.long, device=dev)
        else:
            raise UserError(f"--label must be a class from 0 to {classes - 1}, got {label}")
    elif label is not None:
        raise UserError("--label needs a conditional model (e.g. objective=cgan); this one has no classes")
    samples = generate(G, z, labels).cpu()
    return samples, None if labels is None else labels.cpu()


def main(argv=None) -> None:
    args = parse_args(argv)
    with reported("gan-sample"):
        if args.num < 1:
            raise UserError(f"--num must be >= 1, got {args.num}")
        from gan_cli.checkpoint import load_checkpoint

        state = load_checkpoint(args.path)
        samples, labels = draw(state, args.num, args.label, args.seed, args.device, args.ema)
        out = args.out if args.out or args.grid else Path("samples.npz")
        if out:
            import numpy as np

            arrays = {"samples": samples.numpy().astype("float32")}
            if labels is not None:
                arrays["labels"] = labels.numpy().astype("int64")
            out.parent.mkdir(parents=True, exist_ok=True)
            np.savez(out, **arrays)
            print(f"wrote {len(samples)} samples {list(samples.shape[1:])} to {out}")
        if args.grid:
            from torchvision.utils import save_image

            if samples.dim() != 4:
                raise UserError("--grid draws images; this model's samples are not images")
            args.grid.parent.mkdir(parents=True, exist_ok=True)
            columns = grid_columns(len(samples), labels)
            save_image((samples + 1) / 2, args.grid, nrow=columns, padding=2)
            print(f"wrote a grid of {len(samples)} samples to {args.grid}")


def grid_columns(num: int, labels) -> int:
    """Square-ish grid; with labels cycling through K classes, K columns
    put one class per column."""
    if labels is not None and num > 1:
        classes = int(labels.max()) + 1
        if len(set(labels.tolist())) == classes:
            return classes
    return max(1, round(num ** 0.5))


if __name__ == "__main__":
    sys.exit(main())
