"""gan-sample: draw from a trained generator, using its checkpoint alone."""

import sys
from pathlib import Path

from gan_cli.errors import OneLineParser, UserError, command, os_reason, writing
from gan_cli.output.layout import check_not_the_source, safe_output_file

PNG_BATCH = 256  # images generated at a time for --png-dir: memory stays flat for 50,000


def parse_args(argv=None):
    parser = OneLineParser(
        prog="gan-sample",
        description="Draw samples from a run's generator (checkpoints/last.pt) or a checkpoint file.",
    )
    parser.add_argument("path", help="a run dir (uses checkpoints/last.pt) or a checkpoint .pt file")
    parser.add_argument("--num", type=int, default=64, help="number of samples (default 64)")
    parser.add_argument("--out", type=safe_output_file, help="write samples (and labels) to this .npz")
    parser.add_argument("--grid", type=safe_output_file, help="write a picture of the samples to this .png")
    parser.add_argument(
        "--png-dir",
        type=Path,
        help="write each sample as its own 8-bit PNG into this new (or empty) "
        "folder, e.g. for clean-fid or torch-fidelity",
    )
    parser.add_argument("--label", type=int, help="conditional models: draw only this class")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent noise (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument(
        "--sampler",
        choices=("drs", "mh", "threshold", "jacobian"),  # config.checks.SAMPLERS, without importing torch
        help="refine G's samples with the run's discriminator: drs (rejection sampling, Azadi et "
        "al. 2019), mh (Metropolis-Hastings, Turner et al. 2019) or threshold (drop the samples D "
        "rates below almost all real data); D is first calibrated on real data, so the data set "
        "must be at hand. Or with G alone: jacobian (drop the samples where G stretches its noise "
        "most, Tanielian et al. 2020)",
    )
    parser.add_argument(
        "--drs-percentile",
        type=float,
        help="drs: the percentile of F that sets gamma (default 95)",
    )
    parser.add_argument("--mh-chain", type=int, help="mh: proposals per sample (default 100)")
    parser.add_argument(
        "--threshold-percentile",
        type=float,
        help="threshold: keep the samples D scores at least this percentile of its scores of "
        "held-out real data (default 1)",
    )
    parser.add_argument(
        "--jacobian-drop",
        type=float,
        help="jacobian: the percentage of G's samples with the largest Jacobian norm to drop (default 5)",
    )
    add_refine_steps(parser, "(default 2000, evaluation.ratio.STEPS)")
    add_generator_choice(parser)
    add_truncation(parser)
    return parser.parse_args(argv)


def add_truncation(parser) -> None:
    parser.add_argument(
        "--truncation",
        type=float,
        metavar="PSI",
        help="feed G PSI times its noise (a normal prior only): below 1 sharper and less varied "
        "samples, above 1 the reverse (default 1: G's own)",
    )


def add_refine_steps(parser, default: str) -> None:
    """--refine-steps: D's fine-tuning as a ratio estimator (gan-sample and
    gan-eval); None when not given, so the reader picks the default."""
    parser.add_argument(
        "--refine-steps",
        type=int,
        help="drs/mh/threshold: Adam steps that first train a copy of D with the logistic loss on real "
        f"data against the frozen G, as a density-ratio estimator; 0: D as trained {default}",
    )


def check_jacobian_drop(drop: float | None) -> None:
    if drop is not None and not 0 <= drop < 100:
        raise UserError(f"--jacobian-drop must be a percentage in [0, 100), got {drop:g}")


def check_sampler_settings(args) -> None:
    """gan-sample's settings of the D-reading samplers, before any file is read."""
    if args.drs_percentile is not None and not 0 < args.drs_percentile < 100:
        raise UserError(f"--drs-percentile must be in (0, 100), got {args.drs_percentile:g}")
    if args.mh_chain is not None and args.mh_chain < 1:
        raise UserError(f"--mh-chain must be >= 1, got {args.mh_chain}")
    if args.threshold_percentile is not None and not 0 < args.threshold_percentile < 100:
        raise UserError(f"--threshold-percentile must be in (0, 100), got {args.threshold_percentile:g}")


# The samplers each sampler option acts on (config.checks.READS_DISCRIMINATOR
# read D, which --refine-steps fine-tunes first).
SAMPLER_OPTIONS = {
    "--drs-percentile": ("drs",),
    "--mh-chain": ("mh",),
    "--threshold-percentile": ("threshold",),
    "--jacobian-drop": ("jacobian",),
    "--refine-steps": ("drs", "mh", "threshold"),
}


def refuse_unused_sampler_options(given: dict[str, object], method: str | None) -> None:
    """A sampler option given where the sampler in use (`method`, None for
    G's own samples) does not read it would change nothing: one line says so."""
    for option, value in given.items():
        if value is not None and method not in SAMPLER_OPTIONS[option]:
            used = f"the sampler here is {method}" if method else "no sampler is in use"
            raise UserError(f"{option} acts on --sampler {'/'.join(SAMPLER_OPTIONS[option])} only; {used}")


def check_refine_steps(steps: int | None) -> None:
    if steps is not None and steps < 0:
        raise UserError(f"--refine-steps must be >= 0 (0: D as trained), got {steps}")


def add_generator_choice(parser) -> None:
    """--ema / --raw: which G of a checkpoint (gan-sample and gan-eval)."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--ema",
        dest="ema",
        action="store_true",
        default=None,
        help="G's moving average (the default where the run kept one, train.ema > 0)",
    )
    which.add_argument(
        "--raw", dest="ema", action="store_false", help="the trained G itself, not its moving average"
    )


def draw_batches(
    state: dict,
    num: int,
    label: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    batch: int | None = None,
    ema: bool | None = None,
    refine: dict | None = None,
    truncation: float | None = None,
):
    """An iterator of (samples [n, *shape] float32 on the CPU in the data's [-1, 1]
    scale, labels [n] or None) for `num` samples, `batch` at a time (all at
    once by default). The noise is drawn for all `num` first, so the samples
    are those of one draw whatever the batch. ema: G's moving average (None:
    where the run kept one), or the trained G (False). refine: {"method": "drs"
    or another of config.checks.SAMPLERS, and its options}, to refine the samples with the run's D; its cost
    is printed on stderr at the end."""
    import torch

    from gan_cli.device import pick_device
    from gan_cli.latent import Latent
    from gan_cli.models.inference import generate, truncated
    from gan_cli.run.checkpoint import generator_from_checkpoint

    dev = pick_device(device, key="--device")
    G = truncated(
        generator_from_checkpoint(state, dev, ema), truncation, state["config"]["latent"]["distribution"]
    )
    z = Latent.from_config(state["config"]["latent"], dev, seed, portable=True).sample(num)
    classes = G.num_classes
    labels = None
    if classes:
        if label is None:
            labels = torch.arange(num, device=dev) % classes  # every class in turn
        elif 0 <= label < classes:
            labels = torch.full((num,), label, dtype=torch.long, device=dev)
        else:
            raise UserError(f"--label must be a class from 0 to {classes - 1}, got {label}")
    elif label is not None:
        raise UserError("--label needs a conditional model (e.g. objective=cgan); this one has no classes")
    batch = batch or num
    refiner = _refiner(state, G, dev, seed, refine) if refine else None

    def batches():  # the checks above run now, before anything is written
        for start in range(0, num, batch):
            part = slice(start, start + batch)
            y = None if labels is None else labels[part]
            x = generate(G, z[part], y) if refiner is None else refiner.draw(len(z[part]), y)
            yield x.cpu(), None if y is None else y.cpu()
        if refiner is not None:
            method = refiner.method
            cost = refiner.cost.as_metrics(method)
            d_evals = cost[f"{method}/d_evals_per_sample"]  # 0 for jacobian, which reads G alone
            d_evaluations = f"{d_evals:.1f} D evaluations and " if d_evals else ""
            print(
                f"gan-sample: {method}: acceptance {cost[f'{method}/acceptance']:.3f}, "
                f"{d_evaluations}{cost[f'{method}/seconds_per_1000']:.2f} s per 1,000 samples",
                file=sys.stderr,
            )
            if unaccepted := refiner.cost.extra.get("unaccepted"):
                print(
                    f"gan-sample: {method}: {unaccepted} samples were never accepted, so the best-scored "
                    f"of {refiner.cost.proposed} proposals stand in: G's samples are far from the data",
                    file=sys.stderr,
                )

    return batches()


def _refiner(state: dict, G, device, seed: int, refine: dict):
    """The checkpoint's D, calibrated on the run's data set, ready to refine
    G's samples; for jacobian, which reads G alone, neither D nor the data."""
    from gan_cli.config.build import build_data
    from gan_cli.config.checks import READS_DISCRIMINATOR, refuse_sampler_without_discriminator
    from gan_cli.evaluation.refine import build_refiner
    from gan_cli.run.checkpoint import discriminator_from_checkpoint

    options = {k: v for k, v in refine.items() if v is not None}  # None: build_refiner's default
    method = options.pop("method")
    reads_d = method in READS_DISCRIMINATOR  # jacobian reads G alone: neither D nor the data
    D = discriminator_from_checkpoint(state, device) if reads_d else None
    config = state["config"]
    # before the data set is built: say what is wrong first
    refuse_sampler_without_discriminator(
        method, f"--sampler {method}", config["objective"]["name"], D is not None
    )
    data = build_data(config["dataset"]) if reads_d else None
    return build_refiner(method, G, D, data, config["latent"], device, seed, **options)


def draw(
    state: dict,
    num: int,
    label: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    ema: bool | None = None,
):
    """(samples [N, *shape] float32 in the data's [-1, 1] scale, labels [N] or None)."""
    [(samples, labels)] = draw_batches(state, num, label, seed, device, ema=ema)
    return samples, labels


def to_pixels(samples):
    """[N, C, H, W] floats in [-1, 1] -> uint8 [N, H, W, C], rounded exactly as
    the run's sample grids are: (x + 1) / 2 clamped to [0, 1], then 8 bits."""
    from gan_cli.output import pictures

    return pictures.to_pixels(((samples + 1) / 2).clamp(0, 1))


def png_name(index: int, label: int | None, digits: int) -> str:
    """000123.png, or 000123_class7.png for a conditional model's class 7."""
    return f"{index:0{digits}d}" + ("" if label is None else f"_class{label}") + ".png"


def check_png_dir(folder: Path, data_shape) -> None:
    """--png-dir never overwrites: a new folder, or an empty one; and only
    image samples (1 or 3 channels) make PNGs."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--png-dir {folder} is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise UserError(
            f"--png-dir {folder} already exists and is not empty; gan-sample never "
            f"overwrites: give a new or empty folder"
        )
    shape = list(data_shape)
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise UserError(
            f"--png-dir writes images of 1 or 3 channels; this model's samples have shape {shape}"
        )


def write_pngs(batches, folder: Path, num: int) -> int:
    """One 8-bit PNG per sample (grey for 1 channel, RGB for 3) from
    draw_batches' output; returns how many were written. A failed write
    removes its partial file and raises one line naming it."""
    from PIL import Image

    digits = max(6, len(str(num - 1)))
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    index = 0
    for samples, labels in batches:
        pixels = to_pixels(samples)
        for i, image in enumerate(pixels):
            label = None if labels is None else int(labels[i])
            path = folder / png_name(index, label, digits)
            picture = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
            try:
                picture.save(path, format="PNG")
            except OSError as error:
                path.unlink(missing_ok=True)  # no half-written image among the good ones
                raise UserError(
                    f"cannot write {path}: {os_reason(error)} ({index} of {num} written)"
                ) from error
            index += 1
    return index


@command("gan-sample")
def main(argv=None) -> None:
    args = parse_args(argv)
    if args.num < 1:
        raise UserError(f"--num must be >= 1, got {args.num}")
    if args.out and args.grid and args.out.resolve() == args.grid.resolve():
        raise UserError(f"--out and --grid both name {args.out}; the picture would replace the samples")
    check_not_the_source(args.path, {"--out": args.out, "--grid": args.grid})
    check_refine_steps(args.refine_steps)
    check_jacobian_drop(args.jacobian_drop)
    check_sampler_settings(args)
    refuse_unused_sampler_options(
        {option: getattr(args, option[2:].replace("-", "_")) for option in SAMPLER_OPTIONS}, args.sampler
    )
    from gan_cli.rng import MAX_SEED
    from gan_cli.run.checkpoint import load_checkpoint

    if not 0 <= args.seed <= MAX_SEED:
        raise UserError(f"--seed must be a whole number in [0, {MAX_SEED}], got {args.seed}")

    state = load_checkpoint(args.path)
    if args.png_dir:
        check_png_dir(args.png_dir, state["model_args"]["data_shape"])
    out = args.out if args.out or args.grid or args.png_dir else Path("samples.npz")
    keep_all = bool(out or args.grid)
    batches = draw_batches(
        state,
        args.num,
        args.label,
        args.seed,
        args.device,
        batch=PNG_BATCH if args.png_dir else None,
        ema=args.ema,
        truncation=args.truncation,
        refine=None
        if args.sampler is None
        else {
            "method": args.sampler,
            "percentile": args.drs_percentile,
            "chain": args.mh_chain,
            "refine_steps": args.refine_steps,
            "threshold_percentile": args.threshold_percentile,
            "jacobian_drop": args.jacobian_drop,
        },
    )
    kept = []
    if args.png_dir:
        written = write_pngs(_keeping(batches, kept if keep_all else None), args.png_dir, args.num)
        print(f"wrote {written} PNG files to {args.png_dir}")
    else:
        kept = list(batches)
    if keep_all:
        write_arrays(kept, out, args.grid)


def _keeping(batches, kept: list | None):
    """Pass batches on, keeping a copy when --out or --grid need them all."""
    for item in batches:
        if kept is not None:
            kept.append(item)
        yield item


def write_arrays(batches: list, out: Path | None, grid: Path | None) -> None:
    """--out's .npz and --grid's picture from all the samples."""
    import numpy as np
    import torch

    samples = torch.cat([s for s, _ in batches])
    labels = None if batches[0][1] is None else torch.cat([y for _, y in batches])
    if out:
        arrays = {"samples": samples.numpy().astype("float32")}
        if labels is not None:
            arrays["labels"] = labels.numpy().astype("int64")
        with writing(out):
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "wb") as file:  # a path np.savez would add ".npz" to
                np.savez(file, **arrays)
        print(f"wrote {len(samples)} samples {list(samples.shape[1:])} to {out}")
    if grid:
        from gan_cli.output.pictures import save_png

        if samples.dim() != 4:
            raise UserError("--grid draws images; this model's samples are not images")
        with writing(grid):
            grid.parent.mkdir(parents=True, exist_ok=True)
            save_png((samples + 1) / 2, grid, nrow=grid_columns(len(samples), labels))
        print(f"wrote a grid of {len(samples)} samples to {grid}")


def grid_columns(num: int, labels) -> int:
    """Square-ish grid; with labels cycling through K classes, K columns
    put one class per column."""
    if labels is not None and num > 1:
        classes = int(labels.max()) + 1
        if len(set(labels.tolist())) == classes:
            return classes
    return max(1, round(num**0.5))


if __name__ == "__main__":
    sys.exit(main())
