"""Labelled or not, image data sets get a sample grid; labelled ones the
classifier-based eval/* metrics (gan_cli.evaluation.scorer)."""

import torch

from gan_cli.errors import UserError
from gan_cli.evaluation.inception import inception_scores
from gan_cli.evaluation.scorer import ImageScorer, held_out_split
from gan_cli.models.inference import generate
from gan_cli.output.log import log
from gan_cli.output.pictures import make_grid


class ImageEvaluation:
    def __init__(self, data, cfg, device: torch.device, grid_columns: int):
        self.columns = grid_columns
        self.scorer = make_scorer(data, cfg, device)
        self.data, self.device = data, device
        self.inception = cfg.eval.inception if cfg is not None else None
        self.num_samples = cfg.eval.num_samples if cfg is not None else None

    def picture(self, G, D, objective, fixed_z, fixed_y) -> tuple[str, torch.Tensor]:
        """An 8 x 8 grid, or one row per class for conditional models."""
        return "samples", grid(G, fixed_z, fixed_y, self.columns)

    def metrics(self, G, latent, num_classes: int) -> dict[str, float]:
        start = latent.generator.get_state()
        values = self.scorer(G, latent, num_classes) if self.scorer is not None else {}
        if self.inception is not None:
            latent.generator.set_state(start)  # the same noise whether or not the classifier ran
            values.update(
                inception_scores(
                    G, latent, num_classes, self.data, self.inception, self.num_samples, self.device
                )
            )
        return values

    def finish(self, run_dir) -> None:
        pass


def grid(G, fixed_z, fixed_y, columns: int) -> torch.Tensor:
    """G's images for the fixed noise as one [C, H, W] picture in [0, 1]."""
    images = generate(G, fixed_z, fixed_y)
    return make_grid((images.cpu() + 1) / 2, nrow=columns, padding=2).clamp_(0, 1)


def make_scorer(data, cfg, device, say=log.info) -> ImageScorer | None:
    """An ImageScorer for labelled image data when eval.classifier is auto;
    None for eval.classifier=off or unlabelled images. Its classifier is
    loaded (or trained, saying so) at the first evaluation, so building a run
    that never evaluates (gan-bench) costs nothing. `say` reports a
    classifier being trained (a run's log; None: stderr)."""
    options = cfg.get("eval") if hasattr(cfg, "get") else None
    if not options or options.get("classifier", "auto") == "off":
        return None
    if data.labels is None or not data.num_classes:
        return None
    if data.images.dim() != 4:
        raise UserError(
            f"eval.classifier=auto needs images [N, C, H, W]; {data.name} is "
            f"{list(data.images.shape)} (set eval.classifier=off)"
        )
    dataset_cfg = cfg.get("dataset")
    split = dataset_cfg.get("split") if dataset_cfg is not None else None
    return ImageScorer(
        data,
        split,
        int(options.get("num_samples", 5000)),
        options.get("cache_dir"),
        device,
        held_out_split(dataset_cfg),
        say=say,
    )
