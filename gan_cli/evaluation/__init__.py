"""The evaluation room: from the data set's kind, which metrics a run logs and
which pictures it draws. It reads G (and D, and the objective's G loss for a
picture's arrows) and the data set; data sets never call it, and it writes no
files but the ones a run folder's pictures need.

A new kind of data set gets one module here with a class offering
`picture`, `metrics` and `finish`, registered in KINDS. With eval.sampler
the same class measures G's samples refined by D too (`refined`).
"""

import contextlib
import random

import numpy as np
import torch

from gan_cli.evaluation.images import ImageEvaluation
from gan_cli.evaluation.refine import COST, RefinedGenerator, as_refined, evaluation_refiner, refined_key
from gan_cli.evaluation.stacked import StackedEvaluation
from gan_cli.evaluation.toys import ToyEvaluation
from gan_cli.latent import evaluation_latent

KINDS = {"images": ImageEvaluation, "stacked": StackedEvaluation, "toy": ToyEvaluation}


class Evaluation:
    """What a run calls on its cadence. Every call runs with the process-wide
    random generators saved and restored, so what a run draws next never
    depends on whether it evaluated or drew a picture (its checkpoints are
    the same wherever the run stopped)."""

    def __init__(self, data, cfg, device: torch.device, grid_columns: int):
        self.room = KINDS[data.kind](data, cfg, device, grid_columns)
        self.data, self.cfg, self.device = data, cfg, torch.device(device)
        options = cfg.get("eval") if cfg is not None else None
        self.sampler = options.get("sampler") if options else None

    def picture(self, G, D, objective, fixed_z, fixed_y) -> tuple[str, torch.Tensor]:
        """(TensorBoard tag, [C, H, W] picture in [0, 1]) of G on the fixed noise."""
        with own_randomness(fixed_z.device):
            return self.room.picture(G, D, objective, fixed_z, fixed_y)

    def metrics(self, G, latent, num_classes: int) -> dict[str, float]:
        """The data set's quality metrics of G; `latent` (seeded) gives G its noise."""
        with own_randomness(latent.device):
            return self.room.metrics(G, latent, num_classes)

    def refined(
        self, G, D, objective, fixed_z, fixed_y, num_classes: int
    ) -> tuple[dict[str, float], tuple[str, torch.Tensor]] | None:
        """eval.sampler: (the metrics `metrics` gives, of G's samples refined
        by D, each named by refine.refined_key, less the real-vs-real floors,
        plus the sampler's cost refine/*; (TensorBoard tag, picture) as
        `picture` draws it, of as many refined samples as the fixed noise
        has); None when eval.sampler is off. D is calibrated afresh against
        G at each call, from seeded generators of its own."""
        if self.sampler is None:
            return None
        cfg = self.cfg
        with own_randomness(self.device):
            refiner = evaluation_refiner(cfg, G, D, self.data, self.device)
            refined = RefinedGenerator(refiner)
            latent = evaluation_latent(cfg.latent, self.device, cfg.seed)  # only counts: RefinedGenerator
            values = as_refined(self.room.metrics(refined, latent, num_classes))
            tag, picture = self.room.picture(refined, D, objective, fixed_z, fixed_y)
            values.update(refiner.cost.as_metrics(COST))  # all it drew at this evaluation
        return values, (refined_key(tag), picture)

    def finish(self, run_dir) -> None:
        """Once when training ends (toys: samples/evolution.gif)."""
        with own_randomness(torch.device("cpu")):
            self.room.finish(run_dir)


@contextlib.contextmanager
def own_randomness(device: torch.device):
    """Restore torch's (CPU and the device's), numpy's and Python's global
    generators afterwards, whatever a library drew from them meanwhile."""
    devices = [device] if device.type == "cuda" else []
    numpy_state, python_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        try:
            yield
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)
