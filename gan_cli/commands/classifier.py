"""gan-classifier: train (or show) the classifier that scores a data set's
generated images, from the local data alone."""

import argparse
import sys

from gan_cli.errors import OneLineParser, UserError, command


def parse_args(argv=None) -> argparse.Namespace:
    parser = OneLineParser(
        prog="gan-classifier",
        description="Train the small CNN behind the eval/* metrics for a labelled data set and "
        "keep it in the cache (eval.cache_dir). Takes gan-train's overrides, e.g. "
        "`gan-classifier dataset=mnist dataset.download=false`.",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="config overrides: dataset=..., dataset.<key>=..., eval.cache_dir=..., device=...",
    )
    parser.add_argument(
        "--force", action="store_true", help="train again even if the cache holds one for this data"
    )
    return parser.parse_args(argv)


@command("gan-classifier")
def main(argv=None) -> None:
    args = parse_args(argv)
    from gan_cli import classifier as classifiers
    from gan_cli.config.build import build_data
    from gan_cli.config.checks import validate
    from gan_cli.config.compose import compose_config
    from gan_cli.device import pick_device
    from gan_cli.evaluation.scorer import held_out_split
    from gan_cli.evaluation.stacked import source_classifier

    cfg = compose_config([*args.overrides, "run_dir=."], job_runtime=True)
    validate(cfg)  # gan-train's checks: a value it would refuse is refused here too
    data = build_data(cfg.dataset)
    device = pick_device(cfg.device)
    if data.kind == "stacked":  # each channel is read by its source's digit classifier
        clf, path, trained = source_classifier(data, cfg.eval.cache_dir, device, force=args.force)
        name = f"{data.name} (each channel read by {data.source}'s digit classifier)"
    else:
        if getattr(data, "labels", None) is None or not getattr(data, "num_classes", 0):
            raise UserError(f"dataset {data.name} has no class labels; a classifier needs them")
        if data.images.dim() != 4:
            raise UserError(f"dataset {data.name} is not images [N, C, H, W]")
        clf, path, trained = classifiers.obtain(
            data.name,
            cfg.dataset.get("split"),
            data.images,
            data.labels,
            data.num_classes,
            cache_dir=cfg.eval.cache_dir,
            device=device,
            held_out=held_out_split(cfg.dataset),
            force=args.force,
        )
        name = data.name
    r = clf.record
    state = "trained" if trained else "cached"
    print(f"{name}: {state} classifier {path}")
    print(
        f"held-out accuracy {r['heldout_accuracy']:.4f} on {r['heldout_count']} images "
        f"({r['heldout_source']}); trained on {r['train_count']}"
    )
    if data.kind != "stacked":  # a stacked run's floors are of three channels, computed in its evaluation
        print(f"real-vs-real FD floor {r['fd_floor']:.4g} (eval/fd of held-out vs training images)")


if __name__ == "__main__":
    sys.exit(main())
