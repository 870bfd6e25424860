"""The real side of an evaluation, computed once per classifier: the real
images' features that precision, recall, density, coverage and KID compare
G's with, and their real-vs-real floors. They depend only on the data, the
classifier and the sample size, yet scoring 15,000 real images and two k-NN
comparisons cost several seconds, most of a short run's final evaluation.
So they are kept in a file beside the classifier's, under real/ (as the FD
floor is kept in the classifier's own), and computed again only when the key
stored with them no longer matches: another classifier file, sample size,
seed or format."""

import contextlib
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch

from gan_cli.errors import UserError
from gan_cli.output.files import save_atomic

FORMAT = 1  # bump when the real sample, the features or a floor's formula changes


def cached(classifier_path: Path, key: dict, compute: Callable[[], dict]) -> dict:
    """compute() -> {"features": tensor, "floors": {name: float}, ...} (tensors,
    numbers and strings only), read from beside `classifier_path` when stored
    there under the same `key` (plus the classifier file's size and mtime),
    else computed and stored. A file that cannot be read is computed again;
    one that cannot be written is skipped."""
    try:
        stat = classifier_path.stat()
    except OSError:
        return compute()
    full = {**key, "format": FORMAT, "classifier": [stat.st_size, stat.st_mtime_ns]}
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = classifier_path.parent / "real" / f"{classifier_path.stem}-{name}.pt"
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(stored, dict) and stored.get("key") == full:
            return stored["value"]
    except Exception:  # absent, truncated or from another version: compute it again
        pass
    value = compute()
    with contextlib.suppress(UserError, OSError):  # read-only: the next run computes it again
        save_atomic({"key": full, "value": value}, path)
    return value
