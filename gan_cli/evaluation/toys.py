"""2D toys: toy/* metrics (modes, high quality, reverse KL, exact W1), GAN
Lab's scatter over D's surface, and the run's evolution.gif."""

from pathlib import Path

import numpy as np
import torch

from gan_cli.metrics.manifold import precision_recall
from gan_cli.models.inference import generate
from gan_cli.output.layout import SAMPLES

# The real points every evaluation of every run is judged against.
EVAL_SEED = 2_500
MANIFOLD = ("precision", "recall", "density", "coverage")


class ToyEvaluation:
    def __init__(self, data, cfg, device: torch.device, grid_columns: int):
        self.toy = data
        # W1, precision & co. of a second real sample against the same real
        # points: what a perfect G scores (docs/toys.md, "W1 against its floor")
        self.floors = None

    def picture(self, G, D, objective, fixed_z, fixed_y) -> tuple[str, torch.Tensor]:
        """Real (green) and generated (red) points over D's surface."""
        # Late, as below: matplotlib loads only when a picture is drawn.
        from gan_cli.evaluation.toy_picture import scatter

        return "toy/scatter", scatter(self.toy, G, D, fixed_z, fixed_y, objective)

    @torch.no_grad()
    def metrics(self, G, latent, num_classes: int) -> dict[str, float]:
        """toy/* metrics of eval_points generated points (cgan: every class
        equally often, as in the mixture) against as many real points."""
        # Late: SciPy and POT load only when a run evaluates.
        from gan_cli.metrics.toy import mixture_metrics, w1

        toy, n = self.toy, self.toy.eval_points
        y = torch.arange(n, device=latent.device) % num_classes if num_classes else None
        fake = generate(G, latent.sample(n), y).cpu().numpy()
        real = toy.draw(n, torch.Generator().manual_seed(EVAL_SEED))[0].numpy()
        keys = ("toy/high_quality", "toy/modes", "toy/reverse_kl", "toy/w1")
        if not np.isfinite(fake).all():  # diverged
            kept = keys if toy.centres is not None else keys[-1:]
            return {k: float("nan") for k in (*kept, *(f"toy/{m}" for m in MANIFOLD))}
        if toy.centres is None:
            values = {"toy/w1": w1(fake, real)}
        else:
            values = mixture_metrics(fake, real, toy.centres.numpy(), toy.std)
        if self.floors is None:
            other = toy.draw(n, torch.Generator().manual_seed(EVAL_SEED + 1))[0].numpy()
            self.floors = {f"toy/{k}_floor": v for k, v in precision_recall(real, other).items()}
            self.floors["toy/w1_floor"] = w1(other, real)
        values.update({f"toy/{k}": v for k, v in precision_recall(real, fake).items()})
        return {**values, **self.floors}

    def finish(self, run_dir) -> None:
        """samples/evolution.gif from every frame of the run."""
        # Late: matplotlib and PIL load only at the end of a toy run.
        from gan_cli.evaluation.toy_picture import write_gif

        samples = Path(run_dir) / SAMPLES
        write_gif(samples, samples / "evolution.gif")
