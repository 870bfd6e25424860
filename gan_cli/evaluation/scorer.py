"""The eval/* metrics of a generator on a labelled image set: its images go
through the data set's own classifier (gan_cli.classifier) and are
compared with the real images' features and with the classes asked for."""

import torch

from gan_cli import classifier as classifiers
from gan_cli.data.sampler import to_unit_range
from gan_cli.evaluation import real_features
from gan_cli.metrics.image import (
    class_accuracy,
    class_histogram,
    classes_present,
    confidence,
    feature_stats,
    frechet_distance,
    kl_to_uniform,
)
from gan_cli.metrics.manifold import kid, precision_recall
from gan_cli.models.inference import generate
from gan_cli.output.log import log

CHUNK = 500  # images generated and scored at a time: bounded memory
REAL_SEED = 11  # the real images precision and recall compare with: the same in every run


def score(
    probabilities: torch.Tensor,
    features: torch.Tensor,
    real_stats,
    num_classes: int,
    wanted: torch.Tensor | None = None,
) -> dict[str, float]:
    """eval/* from classifier outputs of N images; `wanted` [N] are the classes
    a conditional generator was asked for (None: unconditional)."""
    predicted = probabilities.argmax(dim=1)
    hist = class_histogram(predicted, num_classes)
    values = {
        "eval/fd": frechet_distance(*feature_stats(features), *real_stats),
        "eval/classes_present": float(classes_present(hist)),
        "eval/classes_kl": kl_to_uniform(hist),
        "eval/confidence": confidence(probabilities),
    }
    values.update({f"eval/class_share/{k}": float(share) for k, share in enumerate(hist)})
    if wanted is not None:
        overall, per_class = class_accuracy(predicted, wanted, num_classes)
        values["eval/class_accuracy"] = overall
        values.update({f"eval/class_accuracy/{k}": a for k, a in enumerate(per_class)})
    return values


class ImageScorer:
    """Called as scorer(G, latent, num_classes). The classifier and the
    real images' feature statistics are obtained once (prepare), and kept."""

    def __init__(self, data, split: str | None, num_samples: int, cache_dir, device, held_out=None, say=None):
        self.data, self.split, self.num_samples = data, split, num_samples
        self.cache_dir, self.device, self.held_out = cache_dir, torch.device(device), held_out
        self.say = say
        self.classifier = None
        self.real_stats = None
        self.real_features = None  # of a seeded sample as large as each generated one
        self.floors = None

    def prepare(self) -> None:
        if self.classifier is not None:
            return
        d = self.data
        self.classifier, path, _ = classifiers.obtain(
            d.name,
            self.split,
            d.images,
            d.labels,
            d.num_classes,
            cache_dir=self.cache_dir,
            device=self.device,
            held_out=self.held_out,
            say=self.say,
        )
        stats = self.classifier.real_stats  # kept in the cache file
        if stats is None:
            stats = feature_stats(self.classifier.score(d.scaled())[0])
        self.real_stats = stats
        key = {"kind": "images", "num_samples": self.num_samples, "seed": REAL_SEED, "count": len(d)}
        real = real_features.cached(path, key, self._real_side)
        self.real_features, self.floors = real["features"], real["floors"]

    def _real_side(self) -> dict:
        """Precision, recall & co. compare k-NN balls, so the real sample is as
        large as the generated one; the floors compare two halves of the real
        images with each other (a generator as good as the data scores them)."""
        d = self.data
        order = torch.randperm(len(d), generator=torch.Generator().manual_seed(REAL_SEED))
        pick = order[: min(self.num_samples, len(d))].sort().values
        features = self.classifier.score(to_unit_range(d.images[pick]))[0]
        half = len(order) // 2
        halves = [order[:half][: self.num_samples], order[half:][: self.num_samples]]
        a, b = (self.classifier.score(to_unit_range(d.images[h.sort().values]))[0] for h in halves)
        return {"features": features, "floors": {f"{k}_floor": v for k, v in manifold_metrics(a, b).items()}}

    def __call__(self, G, latent, num_classes: int) -> dict[str, float]:
        self.prepare()
        feats, probs, wanted = [], [], []
        for start in range(0, self.num_samples, CHUNK):
            n = min(CHUNK, self.num_samples - start)
            # Conditional: every class in turn, so each is asked for equally often.
            y = torch.arange(start, start + n, device=latent.device) % num_classes if num_classes else None
            f, p = self.classifier.score(generate(G, latent.sample(n), y))
            feats.append(f)
            probs.append(p)
            if y is not None:
                wanted.append(y.cpu())
        values = score(
            torch.cat(probs),
            torch.cat(feats),
            self.real_stats,
            self.data.num_classes,
            torch.cat(wanted) if wanted else None,
        )
        values["eval/fd_floor"] = self.classifier.record["fd_floor"]
        values.update(manifold_metrics(self.real_features, torch.cat(feats)))
        values.update(self.floors)
        return values


def manifold_metrics(real_features: torch.Tensor, fake_features: torch.Tensor) -> dict[str, float]:
    """eval/precision, recall, density, coverage (k = 5) and kid, in the classifier's features."""
    values = {f"eval/{k}": v for k, v in precision_recall(real_features, fake_features).items()}
    values["eval/kid"] = kid(real_features, fake_features)[0]
    return values


def held_out_split(dataset_cfg):
    """For a data set with a train/test split, a callable loading the test split
    (the classifier's held-out set); None (hold out 20%) otherwise."""
    if dataset_cfg is None or dataset_cfg.get("split") != "train":
        return None

    def load():
        from hydra.utils import instantiate

        try:
            test = instantiate(dataset_cfg, split="test")
        except Exception as exc:  # no test files here: fall back to a stratified split
            log.info(
                f"{dataset_cfg.get('name')}: no test split ({_first_line(exc)}); "
                f"holding out 20% of the training images instead"
            )
            return None
        return test.images, test.labels

    return load


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
