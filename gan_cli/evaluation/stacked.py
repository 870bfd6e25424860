"""Stacked MNIST: how many of the 1,000 three-digit numbers G generates, each
channel read by the source data set's digit classifier (as VEEGAN and PacGAN
count modes), and a grid of its colour images."""

import torch

from gan_cli import classifier as classifiers
from gan_cli.evaluation.images import grid
from gan_cli.metrics.image import class_accuracy, class_histogram, kl_to_uniform
from gan_cli.models.inference import generate
from gan_cli.output.log import log

CHUNK = 1000  # images generated and read at a time: bounded memory


def read_numbers(clf, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(numbers [N], each image's least sure channel's top probability [N])
    of stacked images [N, 3, H, W] in [-1, 1]: channel c's digit is the
    (2 - c)th decimal place."""
    channels = images.shape[1]
    _, probs = clf.score(images.flatten(0, 1).unsqueeze(1))  # [N * 3, 10]
    top, digit = probs.view(-1, channels, probs.shape[1]).max(dim=2)  # [N, 3]
    places = 10 ** torch.arange(channels - 1, -1, -1)
    return (digit * places).sum(1), top.min(1).values


def mode_metrics(
    numbers: torch.Tensor, sureness: torch.Tensor, num_modes: int, wanted: torch.Tensor | None = None
) -> dict[str, float]:
    """eval/modes: numbers generated at least once; eval/modes_kl: KL of their
    histogram to uniform (PacGAN's reverse KL); eval/confidence: the mean
    sureness of the least sure channel."""
    hist = class_histogram(numbers, num_modes)
    values = {
        "eval/modes": float((hist > 0).sum()),
        "eval/modes_kl": kl_to_uniform(hist),
        "eval/confidence": float(sureness.double().mean()),
    }
    if wanted is not None:
        values["eval/class_accuracy"] = class_accuracy(numbers, wanted, num_modes)[0]
    return values


class StackedEvaluation:
    def __init__(self, data, cfg, device: torch.device, grid_columns: int):
        self.data, self.device, self.columns = data, torch.device(device), grid_columns
        options = cfg.get("eval") if cfg is not None else None
        self.enabled = not options or options.get("classifier", "auto") != "off"
        self.cache_dir = options.get("cache_dir") if options else None
        self.classifier = None

    def picture(self, G, D, objective, fixed_z, fixed_y) -> tuple[str, torch.Tensor]:
        return "samples", grid(G, fixed_z, fixed_y, self.columns)

    def metrics(self, G, latent, num_classes: int) -> dict[str, float]:
        if not self.enabled:
            return {}
        if self.classifier is None:  # the source's digits classifier, cached
            d = self.data
            self.classifier, _, _ = classifiers.obtain(
                d.source,
                None,
                d.digits,
                d.labels,
                10,
                cache_dir=self.cache_dir,
                device=self.device,
                say=log.info,
            )
        numbers, sureness, wanted = [], [], []
        n = self.data.eval_samples
        for start in range(0, n, CHUNK):
            size = min(CHUNK, n - start)
            y = torch.arange(start, start + size, device=latent.device) % num_classes if num_classes else None
            got, sure = read_numbers(self.classifier, generate(G, latent.sample(size), y))
            numbers.append(got)
            sureness.append(sure)
            if y is not None:
                wanted.append(y.cpu())
        return mode_metrics(
            torch.cat(numbers),
            torch.cat(sureness),
            self.data.num_classes,
            torch.cat(wanted) if wanted else None,
        )

    def finish(self, run_dir) -> None:
        pass
