"""2D toys: toy/* metrics (modes, high quality, reverse KL, exact W1), GAN
Lab's scatter over D's surface, and the run's evolution.gif."""

from pathlib import Path

import numpy as np
import torch

from gan_cli.models.inference import generate

# The real points every evaluation of every run is judged against.
EVAL_SEED = 2_500


class ToyEvaluation:
    def __init__(self, data, cfg, device: torch.device, grid_columns: int):
        self.toy = data

    def picture(self, G, D, objective, fixed_z, fixed_y) -> tuple[str, torch.Tensor]:
        """Real (green) and generated (red) points over D's surface."""
        from gan_cli.evaluation.toy_picture import scatter

        return "toy/scatter", scatter(self.toy, G, D, fixed_z, fixed_y, objective)

    @torch.no_grad()
    def metrics(self, G, latent, num_classes: int) -> dict[str, float]:
        """toy/* metrics of eval_points generated points (cgan: every class
        equally often, as in the mixture) against as many real points."""
        from gan_cli.metrics.toy import mixture_metrics, w1

        toy, n = self.toy, self.toy.eval_points
        y = torch.arange(n, device=latent.device) % num_classes if num_classes else None
        fake = generate(G, latent.sample(n), y).cpu().numpy()
        real = toy.draw(n, torch.Generator().manual_seed(EVAL_SEED))[0].numpy()
        keys = ("toy/high_quality", "toy/modes", "toy/reverse_kl", "toy/w1")
        if not np.isfinite(fake).all():  # diverged
            return {k: float("nan") for k in (keys if toy.centres is not None else keys[-1:])}
        if toy.centres is None:
            return {"toy/w1": w1(fake, real)}
        return mixture_metrics(fake, real, toy.centres.numpy(), toy.std)

    def finish(self, run_dir) -> None:
        """samples/evolution.gif from every frame of the run."""
        from gan_cli.evaluation.toy_picture import write_gif

        samples = Path(run_dir) / "samples"
        write_gif(samples, samples / "evolution.gif")
