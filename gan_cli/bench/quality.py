"""gan-bench --quality: sample quality against training time. Each
configuration trains for a wall-clock budget, pausing the clock every
`--every` seconds to score its generator with the run's own evaluation; the
result is a table and a picture of the metric against seconds, one curve per
configuration, so a user can pick the one that gets good fastest here."""

import json
import math
import sys
import time
from pathlib import Path

from gan_cli.errors import UserError, command

# name -> overrides: the default job, and objectives as their papers ran them
# (G itself, no moving average).
CONFIGS = {
    "default": [],
    "wgan": ["objective=wgan", "train.ema=0"],
    "gan": ["objective=gan", "train.ema=0"],
    "wgan_gp": ["objective=wgan_gp", "train.ema=0"],
    "cgan": ["objective=cgan", "train.ema=0"],
    "hinge": ["objective=hinge", "train.ema=0"],
}
DEFAULT_CONFIGS = ["default", "wgan", "gan", "wgan_gp"]
# Metrics (by their ending) where more is better; lower is better for the rest.
HIGHER_IS_BETTER = (
    "modes",
    "present",
    "confidence",
    "accuracy",
    "high_quality",
    "precision",
    "recall",
    "density",
    "coverage",
)


def prepared(overrides: list[str], metric: str):
    """One configuration built and scored at step 0 (off the clock: this
    loads, or trains, the classifier), with `metric` among its metrics."""
    from gan_cli.config.checks import validate
    from gan_cli.config.compose import compose_config
    from gan_cli.training.experiment import Experiment

    cfg = compose_config([*overrides, "run_dir=."])
    validate(cfg)
    exp = Experiment(cfg)
    if exp.objective.closed_form:
        raise UserError("a closed-form objective has no training time to measure")
    first = exp.evaluate_all()[0]  # as a run reports it
    if metric not in first:
        raise UserError(
            f"--metric {metric} is not among this run's metrics: "
            f"{', '.join(sorted(k for k in first if not k[-1].isdigit()))}"
        )
    return exp, first


def quality_curve(exp, first: dict, budget: float, every: float) -> list[dict]:
    """[{seconds, steps, <metrics>}] of one prepared configuration: its
    evaluation at 0 and after every `every` seconds of training, until
    `budget` seconds. Its evaluations are not counted; training is."""
    import torch

    from gan_cli.training.cuda_graphs import trainer
    from gan_cli.training.meter import Meter

    points = [{"seconds": 0.0, "steps": 0, **first}]
    run_steps = trainer(exp.cfg, exp.parts, exp.device)
    sync = torch.cuda.synchronize if exp.device.type == "cuda" else (lambda: None)
    trained, step = 0.0, 0
    while trained < budget - 1e-9:
        target = min(trained + every, budget)
        began = time.perf_counter()

        def go_on(_step: int, trained=trained, began=began, target=target) -> bool:
            return trained + time.perf_counter() - began < target

        step = run_steps(exp.parts, step, sys.maxsize, Meter(), go_on)
        sync()
        trained += time.perf_counter() - began
        points.append({"seconds": round(trained, 3), "steps": step, **exp.evaluate_all()[0]})
    return points


def seconds_to_reach(points: list[dict], metric: str, threshold: float, lower_is_better: bool):
    """The first measured time at which `metric` reached `threshold`, or None."""
    for point in points:
        value = point.get(metric, math.nan)
        if (value <= threshold) if lower_is_better else (value >= threshold):
            return point["seconds"]
    return None


def table(curves: dict[str, list[dict]], metric: str) -> str:
    base = metric.removesuffix("_refined")  # a refined metric reads as G's own does
    lower = not base.endswith(HIGHER_IS_BETTER)
    best_final = (min if lower else max)(c[-1][metric] for c in curves.values())
    lines = [
        f"| config | steps | steps/s | {metric} at 1/4 | at 1/2 | at the end | "
        f"seconds to within 10% of the best final |",
        "| --- " * 7 + "|",
    ]
    for name, points in curves.items():
        end = points[-1]
        quarter = points[max(1, round((len(points) - 1) / 4))]
        half = points[max(1, round((len(points) - 1) / 2))]
        goal = best_final * (1.1 if lower else 0.9)
        reached = seconds_to_reach(points, metric, goal, lower)
        rate = end["steps"] / end["seconds"] if end["seconds"] else 0.0
        lines.append(
            f"| {name} | {end['steps']} | {rate:.1f} | {quarter[metric]:.4g} | "
            f"{half[metric]:.4g} | {end[metric]:.4g} | "
            f"{'-' if reached is None else f'{reached:.0f}'} |"
        )
    return "\n".join(lines)


def plot(curves: dict[str, list[dict]], metric: str, path: Path) -> None:
    """One curve per configuration of `metric` against training seconds."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, points in curves.items():
        ax.plot(
            [p["seconds"] for p in points], [p[metric] for p in points], marker="o", markersize=3, label=name
        )
    if metric in ("eval/fd",):
        ax.set_yscale("log")
    ax.set(xlabel="training seconds", ylabel=metric, title=f"{metric} against training time")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.print_png(str(path))


def parse_args(argv=None):
    from gan_cli.errors import OneLineParser, output_folder

    parser = OneLineParser(prog="gan-bench --quality", description=__doc__)
    parser.add_argument(
        "--configs",
        default=",".join(DEFAULT_CONFIGS),
        help=f"comma-separated, from: {', '.join(CONFIGS)} (default: {', '.join(DEFAULT_CONFIGS)})",
    )
    parser.add_argument(
        "--budget", type=float, default=300.0, help="training seconds per configuration (default 300)"
    )
    parser.add_argument(
        "--every", type=float, default=30.0, help="training seconds between evaluations (default 30)"
    )
    parser.add_argument("--metric", default="eval/fd", help="the metric to compare (default eval/fd)")
    parser.add_argument(
        "--out",
        type=output_folder,
        default=Path("quality"),
        help="folder for quality.md, quality.json and quality.png (default ./quality)",
    )
    parser.add_argument(
        "overrides", nargs="*", help="overrides for every configuration, e.g. dataset=digits device=cpu"
    )
    return parser.parse_args(argv)


@command("gan-bench", writing="cannot write the quality report")
def main(argv=None) -> None:
    args = parse_args(argv)
    names = [n for n in args.configs.split(",") if n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise UserError(f"unknown config {unknown[0]!r}; choose from {', '.join(CONFIGS)}")
    if not args.budget > 0 or not args.every > 0:
        raise UserError("--budget and --every must be > 0 seconds")
    # Every configuration is built and scored before any trains, so that one
    # the metric or an override does not fit is refused before the first budget.
    ready = {name: prepared([*CONFIGS[name], *args.overrides], args.metric) for name in names}
    curves = {}
    for name, (exp, first) in ready.items():
        print(
            f"{name}: training for {args.budget:g} s, scored every {args.every:g} s",
            file=sys.stderr,
            flush=True,
        )
        curves[name] = quality_curve(exp, first, args.budget, args.every)
    text = table(curves, args.metric)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.md").write_text(text + "\n")
    (args.out / "quality.json").write_text(json.dumps(curves, indent=1) + "\n")
    plot(curves, args.metric, args.out / "quality.png")
    print(f"wrote {args.out / 'quality.md'}, quality.json and quality.png")
