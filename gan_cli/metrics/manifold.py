"""Fidelity and coverage told apart, as pure functions of two feature sets.

Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem
et al. 2020) compare k-nearest-neighbour balls around real and generated
points: precision is the share of generated points inside some real ball (are
they sharp?), recall the share of real points inside some generated ball (do
they cover?); density counts the real balls around each generated point
(near 1 for a sample like the real one), coverage the real points whose ball
holds a generated one. They are computed by the authors' own package, prdc.

The kernel inception distance (Bińkowski et al. 2018) is an unbiased estimate
of the squared MMD with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3,
averaged over random subsets, as torch-fidelity computes it: unlike the
Fréchet distance it has no bias for small samples, so runs of different
sizes compare.
"""

import contextlib
import io

import numpy as np
import torch

NEAREST_K = 5  # k of the papers
KID_SUBSETS = 100  # as torch-fidelity
KID_SUBSET_SIZE = 1000


def _features(x) -> np.ndarray:
    array = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"expected features [N, D], got shape {array.shape}")
    return array


def precision_recall(real, fake, k: int = NEAREST_K) -> dict[str, float]:
    """precision, recall, density and coverage of `fake` [N, D] against
    `real` [M, D], with k-nearest-neighbour balls; both sets need more than k
    points."""
    real, fake = _features(real), _features(fake)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"need more than k={k} points in each set, got {len(real)} real, {len(fake)} fake")
    # Late: prdc loads scikit-learn (about a second), needed only when scoring.
    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):  # it prints the two set sizes
        values = compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    return {name: float(values[name]) for name in ("precision", "recall", "density", "coverage")}


def kid(
    real, fake, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE, seed: int = 0
) -> tuple[float, float]:
    """(mean, standard deviation) over `subsets` random subsets of the unbiased
    squared MMD between `real` and `fake` with the kernel (x.y / d + 1)^3.
    A subset holds min(subset_size, len(real), len(fake)) points of each."""
    # Products in float32 (a quarter of float64's time), sums in float64: the
    # estimate is a small difference of sums over a million kernel values.
    real, fake = (torch.from_numpy(_features(v)) for v in (real, fake))
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        raise ValueError(f"need at least 2 points in each set, got {len(real)} real, {len(fake)} fake")
    if m == len(real) == len(fake):
        # Every subset is then both whole sets, and the estimate does not
        # depend on the order of the points: one is all of them.
        subsets = 1
    dim = real.shape[1]
    draw = np.random.default_rng(seed)
    values = torch.empty(subsets, dtype=torch.float64)
    for i in range(subsets):
        x = real[torch.from_numpy(draw.choice(len(real), m, replace=False))]
        y = fake[torch.from_numpy(draw.choice(len(fake), m, replace=False))]
        kxx, kyy, kxy = ((a @ b.T).div_(dim).add_(1).pow_(3) for a, b in ((x, x), (y, y), (x, y)))
        total = {name: k.sum(dtype=torch.float64) for name, k in (("xx", kxx), ("yy", kyy), ("xy", kxy))}
        diagonal = kxx.diagonal().sum(dtype=torch.float64) + kyy.diagonal().sum(dtype=torch.float64)
        within = (total["xx"] + total["yy"] - diagonal) / (m * (m - 1))
        values[i] = within - 2 * total["xy"] / m**2
    return float(values.mean()), float(values.std(correction=0))
