"""Stacked MNIST: how many of the 1,000 three-digit numbers G generates, each
channel read by the source data set's digit classifier (as VEEGAN and PacGAN
count modes), the Fréchet distance, precision and recall in that classifier's
features of the three channels, and a grid of its colour images.

The classifier was trained on the digits as they are (28x28): a padded stack
(dataset.size=32) has its border cropped off first (`digits_of`), so each
channel is read exactly as the classifier learnt digits."""

import torch

from gan_cli import classifier as classifiers
from gan_cli.data.sampler import to_unit_range
from gan_cli.evaluation import real_features
from gan_cli.evaluation.images import grid
from gan_cli.metrics.image import (
    class_accuracy,
    class_histogram,
    feature_stats,
    frechet_distance,
    kl_to_uniform,
    place_kls,
)
from gan_cli.metrics.manifold import precision_recall
from gan_cli.models.inference import generate
from gan_cli.output.log import log

CHUNK = 1000  # images generated and read at a time: bounded memory
REAL_SEED = 11  # the real stacks the features are compared with: the same in every run
FLOOR_SEED = 12  # a second real draw: the real-vs-real floors


def digits_of(images: torch.Tensor, border: int) -> torch.Tensor:
    """Stacked images [N, 3, H, W] as the classifier reads them: the `border`
    pixels a padded stack has on every side cropped off."""
    if not border:
        return images
    return images[..., border:-border, border:-border]


def source_classifier(data, cache_dir, device, force: bool = False, say=None):
    """classifier.obtain's (classifier, cache file, trained now) for the digit
    classifier of stacked `data`'s source, which reads each channel."""
    source = (data.source, None, data.digits, data.labels, 10)
    return classifiers.obtain(*source, cache_dir=cache_dir, device=device, force=force, say=say)


def read_features(clf, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(numbers [N], sureness [N], features [N, 3 F]) of stacked images, as
    read_numbers gives them, and each image's three channels' classifier
    features side by side."""
    channels = images.shape[1]
    feats, probs = clf.score(images.flatten(0, 1).unsqueeze(1))  # [N * 3, F], [N * 3, 10]
    numbers, sure = _numbers(probs, channels)
    return numbers, sure, feats.view(-1, channels * feats.shape[1])


def read_numbers(clf, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(numbers [N], each image's least sure channel's top probability [N])
    of stacked images [N, 3, H, W] in [-1, 1]: channel c's digit is the
    (2 - c)th decimal place."""
    _, probs = clf.score(images.flatten(0, 1).unsqueeze(1))  # [N * 3, 10]
    return _numbers(probs, images.shape[1])


def _numbers(probs: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    top, digit = probs.view(-1, channels, probs.shape[1]).max(dim=2)  # [N, 3]
    places = 10 ** torch.arange(channels - 1, -1, -1)
    return (digit * places).sum(1), top.min(1).values


def mode_metrics(
    numbers: torch.Tensor, sureness: torch.Tensor, num_modes: int, wanted: torch.Tensor | None = None
) -> dict[str, float]:
    """eval/modes: numbers generated at least once; eval/modes_kl: KL of their
    histogram to uniform (PacGAN's reverse KL), split exactly into
    eval/modes_kl_digits (each channel's digits against uniform, summed) and
    eval/modes_kl_dependence (how much the channels' digits depend on each
    other); eval/confidence: the mean sureness of the least sure channel."""
    hist = class_histogram(numbers, num_modes)
    kl = kl_to_uniform(hist)
    digits = sum(place_kls(numbers, places=len(str(num_modes - 1))))
    values = {
        "eval/modes": float((hist > 0).sum()),
        "eval/modes_kl": kl,
        "eval/modes_kl_digits": digits,
        "eval/modes_kl_dependence": kl - digits,
        "eval/confidence": float(sureness.double().mean()),
    }
    if wanted is not None:
        values["eval/class_accuracy"] = class_accuracy(numbers, wanted, num_modes)[0]
    return values


def manifold(real_features: torch.Tensor, fake_features: torch.Tensor) -> dict[str, float]:
    """eval/precision, recall, density, coverage (k = 5): the image scorer's
    manifold metrics without eval/kid, which Stacked MNIST's evaluation has
    never reported (its modes and KL are what the benchmark's tables compare)."""
    return {f"eval/{k}": v for k, v in precision_recall(real_features, fake_features).items()}


class StackedEvaluation:
    """eval/modes, eval/modes_kl, eval/confidence over dataset.eval_samples
    generated stacks; eval/fd, eval/precision, recall, density and coverage
    over the first eval.num_samples of them against as many real stacks
    (drawn from a fixed seed), each with its real-vs-real floor (a second
    real draw of as many)."""

    def __init__(self, data, cfg, device: torch.device, grid_columns: int):
        self.data, self.device, self.columns = data, torch.device(device), grid_columns
        options = cfg.get("eval") if cfg is not None else None
        self.enabled = not options or options.get("classifier", "auto") != "off"
        self.cache_dir = options.get("cache_dir") if options else None
        self.num_samples = int(options.get("num_samples", 5000)) if options else 5000
        self.classifier = None
        self.real = None  # (feature stats, features for precision & co.) of the real stacks
        self.floors = None

    def picture(self, G, D, objective, fixed_z, fixed_y) -> tuple[str, torch.Tensor]:
        return "samples", grid(G, fixed_z, fixed_y, self.columns)

    def read(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """read_features of stacked images in [-1, 1] as the data set draws
        them: the one place their border comes off before the classifier."""
        return read_features(self.classifier, digits_of(images, self.data.border))

    def prepare(self) -> None:
        """The source's digit classifier (cached) and the real stacks'
        features, once."""
        if self.classifier is not None:
            return
        d = self.data
        self.classifier, path, _ = source_classifier(d, self.cache_dir, self.device, say=log.info)
        n = min(self.num_samples, d.eval_samples)
        key = {"kind": "stacked", "samples": n, "seeds": [REAL_SEED, FLOOR_SEED], "border": d.border}
        real = real_features.cached(path, key, lambda: self._real_side(n))
        reference = real["features"]
        self.real = feature_stats(reference), reference
        self.floors = real["floors"]

    def _real_side(self, n: int) -> dict:
        """n real stacks' features, and the floors: another n against them."""
        reference, second = (self._real_features(seed, n) for seed in (REAL_SEED, FLOOR_SEED))
        floors = {f"{k}_floor": v for k, v in manifold(reference, second).items()}
        floors["eval/fd_floor"] = frechet_distance(*feature_stats(second), *feature_stats(reference))
        return {"features": reference, "floors": floors}

    def _real_features(self, seed: int, n: int) -> torch.Tensor:
        """Features of n real stacks drawn from `seed`."""
        generator = torch.Generator().manual_seed(seed)
        feats = []
        for start in range(0, n, CHUNK):
            images, _ = self.data.draw(min(CHUNK, n - start), generator)
            feats.append(self.read(to_unit_range(images))[2])
        return torch.cat(feats)

    def metrics(self, G, latent, num_classes: int) -> dict[str, float]:
        if not self.enabled:
            return {}
        self.prepare()
        numbers, sureness, feats, wanted = [], [], [], []
        n = self.data.eval_samples
        for start in range(0, n, CHUNK):
            size = min(CHUNK, n - start)
            y = torch.arange(start, start + size, device=latent.device) % num_classes if num_classes else None
            got, sure, f = self.read(generate(G, latent.sample(size), y))
            numbers.append(got)
            sureness.append(sure)
            feats.append(f)
            if y is not None:
                wanted.append(y.cpu())
        values = mode_metrics(
            torch.cat(numbers),
            torch.cat(sureness),
            self.data.num_classes,
            torch.cat(wanted) if wanted else None,
        )
        stats, reference = self.real
        feats = torch.cat(feats)[: len(reference)]
        values["eval/fd"] = frechet_distance(*feature_stats(feats), *stats)
        values.update(manifold(reference, feats))
        values.update(self.floors)
        return values

    def finish(self, run_dir) -> None:
        pass
