"""A small CNN of our own that scores generated images offline.

Inception weights need a download and say little about 8x8 or 28x28 digits;
this classifier is trained on the run's own labelled data, deterministically
from a fixed seed, and kept in a cache folder keyed by the data set's name,
split and a hash of its pixels and labels, so a changed data set never reuses
a stale classifier. Its penultimate layer gives the features of eval/fd.
"""

import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gan_cli.data.sampler import to_unit_range
from gan_cli.errors import UserError, os_reason
from gan_cli.metrics.image import class_accuracy, feature_stats, frechet_distance
from gan_cli.optimizers import without_dynamo_import
from gan_cli.output.files import save_atomic

FORMAT = "gan-cli-classifier/1"
SEED = 0  # one classifier per data set: every run is scored alike
WIDTH = 16  # channels of the first conv layer
FEATURES = 128  # size of the feature vector eval/fd compares
BATCH = 128
# Adam updates: 25 passes over the data, at least 300 and at most 2000 (4.3
# passes over MNIST's 60,000); docs/metrics.md gives the held-out
# accuracies this reaches.
EPOCHS, MIN_STEPS, MAX_STEPS = 25, 300, 2000


def steps_for(num_images: int) -> int:
    return int(min(MAX_STEPS, max(MIN_STEPS, round(EPOCHS * num_images / BATCH))))


HOLDOUT_FRACTION = 0.2  # held out, stratified, when the data set has no test split


class SmallCNN(nn.Module):
    """Three conv blocks and an adaptive pool, so any side works (8x8 digits,
    28x28 MNIST, 32x32 RGB): [B, C, S, S] in [-1, 1] -> [B, K] logits."""

    def __init__(self, channels: int, num_classes: int, width: int = WIDTH):
        super().__init__()

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.body = nn.Sequential(
            *block(channels, width),
            nn.MaxPool2d(2, ceil_mode=True),  # S/2
            *block(width, 2 * width),
            nn.MaxPool2d(2, ceil_mode=True),  # S/4
            *block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(2),  # 2x2
            nn.Flatten(),
            nn.Linear(16 * width, FEATURES),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURES, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@dataclass
class Classifier:
    """A trained SmallCNN and what is known about it."""

    net: SmallCNN
    record: dict  # the cached dict: accuracy, fd_floor, key, ...

    @property
    def accuracy(self) -> float:
        return self.record["heldout_accuracy"]

    @property
    def real_stats(self):
        """(mean, covariance) of the features of the data set it was trained
        for, as float64 numpy arrays; None if the record predates them."""
        if "real_mu" not in self.record:
            return None
        return self.record["real_mu"].numpy(), self.record["real_sigma"].numpy()

    @torch.no_grad()
    def score(self, images: torch.Tensor, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """images [N, C, H, W] floats in [-1, 1] (any device) -> (features [N, F],
        probabilities [N, K]), both float32 on the CPU."""
        device = next(self.net.parameters()).device
        feats, probs = [], []
        for chunk in images.split(batch):
            h = self.net.features(chunk.to(device, torch.float32))
            feats.append(h.cpu())
            probs.append(F.softmax(self.net.head(h), dim=1).cpu())
        return torch.cat(feats), torch.cat(probs)


# --- where classifiers live ----------------------------------------------------
def cache_root(configured: str | None = None) -> Path:
    """eval.cache_dir, else $GAN_CLI_CACHE, else $XDG_CACHE_HOME/gan-cli, else ~/.cache/gan-cli."""
    if configured:
        return Path(os.path.expanduser(str(configured)))
    if os.environ.get("GAN_CLI_CACHE"):
        return Path(os.path.expanduser(os.environ["GAN_CLI_CACHE"]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gan-cli"


def data_hash(images: torch.Tensor, labels: torch.Tensor) -> str:
    digest = hashlib.sha256()
    digest.update(str(tuple(images.shape)).encode())
    digest.update(images.contiguous().numpy().tobytes())
    digest.update(labels.to(torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def cache_file(root: Path, name: str, split: str | None, images, labels) -> Path:
    return root / "classifiers" / f"{name}-{split or 'all'}-{data_hash(images, labels)}.pt"


# --- training ------------------------------------------------------------------
def stratified_split(labels: torch.Tensor, fraction: float, seed: int):
    """(train indices, held-out indices): `fraction` of every class held out."""
    g = torch.Generator().manual_seed(seed)
    train, held = [], []
    for k in labels.unique().tolist():
        idx = (labels == k).nonzero().view(-1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        n = int(round(fraction * len(idx))) if len(idx) > 1 else 0
        held.append(idx[:n])
        train.append(idx[n:])
    return torch.cat(train).sort().values, torch.cat(held).sort().values


def _shift(x: torch.Tensor, g: torch.Generator, max_shift: int) -> torch.Tensor:
    """Each image moved by up to max_shift pixels (background -1 fills in): a
    classifier that has seen shifted digits is less fooled by off-centre fakes."""
    if max_shift == 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, [max_shift] * 4, value=-1.0)
    dy, dx = (torch.randint(0, 2 * max_shift + 1, (2, b), generator=g)).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # [B, H, 1]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # [B, 1, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def fit(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    device: torch.device,
    steps: int,
    seed: int = SEED,
    log=None,
) -> SmallCNN:
    """Train a SmallCNN on uint8 images [N, C, H, W]; the same inputs and seed
    give the same weights. The caller's random state is left as it was."""
    # Batches of 8x8 images are too small to split across threads: one thread
    # is as fast on an idle machine and several times faster on a busy one.
    threads = torch.get_num_threads()
    if device.type == "cpu" and images.shape[-1] <= 16:
        torch.set_num_threads(1)
    try:
        return _fit(images, labels, num_classes, device, steps, seed, log)
    finally:
        torch.set_num_threads(threads)


def _fit(images, labels, num_classes, device, steps, seed, log) -> SmallCNN:
    # fork_rng restores the CPU and every CUDA generator afterwards, so training
    # a classifier in the middle of a run leaves the run's noise untouched.
    with torch.random.fork_rng(), torch.enable_grad():
        torch.manual_seed(seed)
        net = SmallCNN(images.shape[1], num_classes).to(device)
        g = torch.Generator().manual_seed(seed)
        x_all, y_all = to_unit_range(images).to(device), labels.to(device)
        opt = without_dynamo_import(torch.optim.Adam)(net.parameters(), lr=2e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
        max_shift = max(1, images.shape[-1] // 14)
        order, pos = torch.randperm(len(images), generator=g), 0
        net.train()
        for step in range(steps):
            if pos + BATCH > len(order):
                order, pos = torch.randperm(len(images), generator=g), 0
            idx = order[pos : pos + BATCH].to(device)
            pos += BATCH
            loss = F.cross_entropy(net(_shift(x_all[idx], g, max_shift)), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if log and (step + 1) % max(steps // 4, 1) == 0:
                log(f"  step {step + 1}/{steps}  loss {loss.item():.4f}")
        net.eval()
    return net


def train_classifier(
    name: str,
    split: str | None,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    held_out=None,
    device="cpu",
    steps: int | None = None,
    log=None,
) -> Classifier:
    """Train on `images` and measure on `held_out` = (images, labels) (e.g. the
    test split), or, without one, on a seeded stratified 20% held out of `images`."""
    device = torch.device(device)
    if held_out is None:
        train_idx, held_idx = stratified_split(labels, HOLDOUT_FRACTION, SEED)
        held_images, held_labels = images[held_idx], labels[held_idx]
        fit_images, fit_labels = images[train_idx], labels[train_idx]
        held_source = f"stratified {HOLDOUT_FRACTION:.0%} of {name}"
    else:
        held_images, held_labels = held_out
        fit_images, fit_labels = images, labels
        held_source = f"{name} test split"
    if len(held_images) < 2 or len(fit_images) < 2:
        raise UserError(f"dataset {name} is too small to train and test a classifier ({len(images)} images)")
    steps = steps or steps_for(len(fit_images))
    started = time.perf_counter()
    net = fit(fit_images, fit_labels, num_classes, device, steps=steps, log=log)
    clf = Classifier(net, {})

    # Every image scored once. Its features give the statistics eval/fd
    # compares generated images with (all the images the key names, computed
    # here instead of in every run); held-out and training parts are rows of it.
    all_f, all_p = clf.score(to_unit_range(images))
    if held_out is None:
        held_f, held_p, fit_f = all_f[held_idx], all_p[held_idx], all_f[train_idx]
    else:
        (held_f, held_p), fit_f = clf.score(to_unit_range(held_images)), all_f
    real_mu, real_sigma = feature_stats(all_f)
    accuracy, _ = class_accuracy(held_p.argmax(1), held_labels, num_classes)
    clf.record = {
        "format": FORMAT,
        "dataset": name,
        "split": split,
        "shape": list(images.shape[1:]),
        "num_classes": num_classes,
        "width": WIDTH,
        "seed": SEED,
        "steps": steps,
        "data_hash": data_hash(images, labels),
        "heldout_accuracy": accuracy,
        "heldout_count": len(held_images),
        "heldout_source": held_source,
        "train_count": len(fit_images),
        # Real-vs-real floor: features of held-out real images against the real
        # images it was trained on. A perfect generator scores about this.
        "fd_floor": frechet_distance(*feature_stats(held_f), *feature_stats(fit_f)),
        "real_mu": torch.from_numpy(real_mu),
        "real_sigma": torch.from_numpy(real_sigma),
        "seconds": time.perf_counter() - started,
        "state_dict": {k: v.cpu() for k, v in net.state_dict().items()},
    }
    return clf


# --- cache ---------------------------------------------------------------------
def save(clf: Classifier, path: Path) -> None:
    save_atomic(clf.record, path)  # tmp file + fsync + rename: never half written


def load(path: Path, device="cpu") -> Classifier | None:
    """The cached classifier, or None when the file is absent or unreadable."""
    if not path.is_file():
        return None
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            return None
        net = SmallCNN(record["shape"][0], record["num_classes"], record["width"])
        net.load_state_dict(record["state_dict"])
    except Exception:  # truncated, corrupt, another version: retrain
        return None
    return Classifier(net.to(device).eval(), record)


def obtain(
    name: str,
    split: str | None,
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    cache_dir=None,
    device="cpu",
    held_out=None,
    force=False,
    say=None,
) -> tuple[Classifier, Path, bool]:
    """(classifier, its cache file, whether it was trained now). `held_out` may
    be a callable returning (images, labels) or None, called only to train."""
    say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
    path = cache_file(cache_root(cache_dir), name, split, images, labels)
    clf = None if force else load(path, device)
    if clf is not None:
        return clf, path, False
    try:  # the folder first: a cache that cannot be made is said before the training, not after it
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot write the classifier to {path}: {os_reason(exc)}; set eval.cache_dir "
            f"(or GAN_CLI_CACHE) to a writable folder"
        ) from None
    say(f"no classifier for {name} in {path.parent}; training one on the local data (once per data set)")
    held = held_out() if callable(held_out) else held_out
    clf = train_classifier(name, split, images, labels, num_classes, held, device, log=say)
    save(clf, path)  # a failure now (a full disk) is one line naming the file
    r = clf.record
    say(
        f"classifier for {name}: held-out accuracy {r['heldout_accuracy']:.2%} on "
        f"{r['heldout_count']} images ({r['heldout_source']}), real-vs-real FD floor "
        f"{r['fd_floor']:.3g}, {r['seconds']:.0f} s; saved {path}"
    )
    clf.net.to(device)
    return clf, path, True
