"""gan-eval: the eval/* metrics of any checkpoint, from the checkpoint alone
(plus its data set and the cached classifier, trained first if missing)."""

import json
import re
import sys
from pathlib import Path

from gan_cli.errors import OneLineParser, UserError, command
from gan_cli.output.layout import check_not_the_source, safe_output_file

PER_CLASS = re.compile(r"^(.*)/(\d+)$")


def parse_args(argv=None):
    parser = OneLineParser(
        prog="gan-eval",
        description="Score a run's generator (checkpoints/last.pt) or a checkpoint file with the "
        "same eval/* metrics a run logs.",
    )
    parser.add_argument("path", help="a run dir (uses checkpoints/last.pt) or a checkpoint .pt file")
    parser.add_argument(
        "--num-samples", type=int, help="generated images to score (default: the run's eval.num_samples)"
    )
    parser.add_argument(
        "--cache-dir",
        help="classifier cache (default: the run's eval.cache_dir, else $GAN_CLI_CACHE or ~/.cache/gan-cli)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument(
        "--inception",
        type=Path,
        help="also eval/fid_inception, eval/is and eval/kid_inception (torch-fidelity) from this Inception "
        "weights file (default: the run's eval.inception); works for unlabelled image data too",
    )
    parser.add_argument(
        "--sampler",
        choices=("drs", "mh", "threshold", "jacobian"),  # config.checks.SAMPLERS, without importing torch
        help="also the metrics of samples refined by the run's discriminator (or, for jacobian, "
        "by G's own Jacobian), as eval.sampler gives them in a run (default: the run's eval.sampler, "
        "with its eval.drs_percentile, eval.mh_chain, eval.threshold_percentile and "
        "eval.jacobian_drop); see docs/refined_sampling.md",
    )
    parser.add_argument(
        "--jacobian-drop",
        type=float,
        help="jacobian: the percentage of G's samples with the largest Jacobian norm to drop "
        "(default: the run's eval.jacobian_drop)",
    )
    parser.add_argument("--json", type=safe_output_file, help="also write the metrics to this JSON file")
    from gan_cli.commands.sample import add_generator_choice, add_refine_steps, add_truncation

    add_truncation(parser)

    add_refine_steps(parser, "(default: the run's eval.refine_steps)")
    add_generator_choice(parser)
    return parser.parse_args(argv)


def evaluate_checkpoint(
    state: dict,
    num_samples: int | None = None,
    cache_dir=None,
    device: str = "cpu",
    ema: bool | None = None,
    inception=None,
    sampler: str | None = None,
    refine_steps: int | None = None,
    truncation: float | None = None,
    jacobian_drop: float | None = None,
) -> dict[str, float]:
    """What the run's evaluation at this checkpoint's step gives: the same
    classifier, the same real images (the toys: the same real points) and
    the same seeded noise; with
    `inception` (a weights file; default the run's eval.inception) the
    Inception metrics too; with `sampler` (default the run's eval.sampler)
    the same metrics of samples refined by the run's D, and its cost
    (`refine_steps`: D's fine-tuning, default the run's eval.refine_steps;
    `jacobian_drop`: the share jacobian drops, default eval.jacobian_drop);
    with `truncation` ψ, of G fed ψ·z (models.inference.Truncated)."""
    from omegaconf import OmegaConf

    from gan_cli.commands.sample import check_jacobian_drop, check_refine_steps, refuse_unused_sampler_options
    from gan_cli.config.build import build_data
    from gan_cli.config.checks import (
        READS_DISCRIMINATOR,
        check_inception_weights,
        refuse_sampler_without_discriminator,
    )
    from gan_cli.device import pick_device
    from gan_cli.evaluation.images import make_scorer
    from gan_cli.evaluation.inception import inception_scores
    from gan_cli.evaluation.refine import COST, RefinedGenerator, as_refined, evaluation_refiner
    from gan_cli.evaluation.stacked import StackedEvaluation
    from gan_cli.evaluation.toys import ToyEvaluation
    from gan_cli.latent import evaluation_latent
    from gan_cli.metrics.manifold import FEWEST_POINTS
    from gan_cli.models.inference import truncated
    from gan_cli.run.checkpoint import discriminator_from_checkpoint, generator_from_checkpoint

    config = state["config"]
    options = {**config["eval"], "classifier": "auto"}  # the checkpoint's config, upgraded at load
    if num_samples is not None:
        if num_samples < FEWEST_POINTS:  # as eval.num_samples
            raise UserError(f"--num-samples must be >= {FEWEST_POINTS}, got {num_samples}")
        options["num_samples"] = num_samples
    if cache_dir is not None:
        options["cache_dir"] = cache_dir
    if inception is not None:
        options["inception"] = str(check_inception_weights(inception, f"--inception {inception}"))
    if sampler is not None:
        options["sampler"] = sampler
    check_jacobian_drop(jacobian_drop)
    check_refine_steps(refine_steps)
    if jacobian_drop is not None:
        options["jacobian_drop"] = jacobian_drop
    if refine_steps is not None:
        options["refine_steps"] = refine_steps
    refuse_unused_sampler_options(
        {"--jacobian-drop": jacobian_drop, "--refine-steps": refine_steps}, options.get("sampler")
    )
    cfg = OmegaConf.create({**config, "eval": options})
    dev = pick_device(device, key="--device")
    data = build_data(cfg.dataset)
    scorer = make_scorer(data, cfg, dev, say=None) if data.kind == "images" else None
    if data.kind == "stacked":  # modes over dataset.eval_samples, fd & co. over eval.num_samples
        scorer = StackedEvaluation(data, cfg, dev, grid_columns=8).metrics
    if data.kind == "toy":  # toy/* over dataset.eval_points
        if num_samples is not None:  # it would change nothing
            raise UserError(
                f"--num-samples counts generated images; a 2D toy run scores its "
                f"dataset.eval_points={cfg.dataset.eval_points} points"
            )
        scorer = ToyEvaluation(data, cfg, dev, grid_columns=8).metrics
    weights = cfg.eval.inception if data.kind == "images" else None
    if scorer is None and weights is None:
        raise UserError(
            f"dataset {getattr(data, 'name', '?')} has no class labels: the eval/* "
            f"metrics need a labelled image data set (or --inception WEIGHTS for any image data)"
        )
    D = None
    if cfg.eval.sampler in READS_DISCRIMINATOR:  # before any scoring: say what is wrong first
        D = discriminator_from_checkpoint(state, dev)
        refuse_sampler_without_discriminator(
            cfg.eval.sampler, f"--sampler {cfg.eval.sampler}", cfg.objective.name, D is not None
        )
    G = truncated(generator_from_checkpoint(state, dev, ema), truncation, config["latent"]["distribution"])

    def scores(generator) -> dict[str, float]:
        latent = evaluation_latent(config["latent"], dev, config["seed"])
        start = latent.generator.get_state()
        values = scorer(generator, latent, G.num_classes) if scorer is not None else {}
        if weights is not None:
            latent.generator.set_state(start)  # the same noise as the run's, whether or not it scored classes
            values.update(
                inception_scores(generator, latent, G.num_classes, data, weights, cfg.eval.num_samples, dev)
            )
        return values

    values = scores(G)
    if cfg.eval.sampler is not None:  # as the run's Evaluation.refined draws them
        refiner = evaluation_refiner(cfg, G, D, data, dev)
        values.update(as_refined(scores(RefinedGenerator(refiner))))
        values.update(refiner.cost.as_metrics(COST))
    return values


def format_metrics(values: dict[str, float]) -> str:
    """One line per metric; per-class values on one line per family."""
    lines, families = [], {}
    for key in sorted(values):
        m = PER_CLASS.match(key)
        if m:
            families.setdefault(m.group(1), []).append((int(m.group(2)), values[key]))
        else:
            lines.append(f"{key:<24} {values[key]:.4g}")
    for family, items in families.items():
        shown = " ".join(f"{v:.3f}" for _, v in sorted(items))
        lines.append(f"{family + '/<k>':<24} {shown}")
    return "\n".join(lines)


@command("gan-eval")
def main(argv=None) -> None:
    args = parse_args(argv)
    check_not_the_source(args.path, {"--json": args.json})
    from gan_cli.run.checkpoint import find_checkpoint, load_checkpoint

    state = load_checkpoint(args.path)
    values = evaluate_checkpoint(
        state,
        args.num_samples,
        args.cache_dir,
        args.device,
        args.ema,
        args.inception,
        args.sampler,
        args.refine_steps,
        args.truncation,
        args.jacobian_drop,
    )
    shown = "" if args.truncation in (None, 1) else f", G fed {args.truncation:g} times its noise"
    print(f"{find_checkpoint(args.path)} (step {state['step']}{shown})")
    print(format_metrics(values))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(values, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
