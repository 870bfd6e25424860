"""Mode-coverage metrics for 2D mixtures, as pure functions of point sets.

The definitions follow the mode-collapse literature (VEEGAN, PacGAN, GDPP):
a generated point is *high quality* when it lies within 3 standard deviations
(Euclidean) of its nearest centre; a mode is *covered* when it receives at
least 1% of all samples as high-quality points, so points sprayed everywhere
do not count; the reverse KL compares the high-quality points' histogram over
modes with the uniform one. W1 is the exact optimal-transport distance between
two equally large point sets, for any distribution.
"""

import math

import numpy as np
from scipy.spatial.distance import cdist

HQ_RADIUS = 3.0  # in standard deviations
MODE_FRACTION = 0.01  # of all samples, as high-quality points, to cover a mode


def _points(x) -> np.ndarray:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"expected points [N, D], got shape {array.shape}")
    return array


def nearest_centre(points, centres) -> tuple[np.ndarray, np.ndarray]:
    """(index [N] of each point's nearest centre, distance [N] to it)."""
    distances = cdist(_points(points), _points(centres))  # [N, K]
    index = distances.argmin(axis=1)
    return index, distances[np.arange(len(index)), index]


def high_quality_mask(points, centres, std: float) -> tuple[np.ndarray, np.ndarray]:
    """(nearest centre [N], whether the point is within 3 std of it [N])."""
    index, distance = nearest_centre(points, centres)
    return index, distance <= HQ_RADIUS * std


def high_quality(points, centres, std: float) -> float:
    """Fraction of points within 3 std of their nearest centre."""
    _, good = high_quality_mask(points, centres, std)
    return float(good.mean())


def mode_counts(points, centres, std: float) -> np.ndarray:
    """High-quality points per centre, [K]."""
    index, good = high_quality_mask(points, centres, std)
    return np.bincount(index[good], minlength=len(centres))


def modes(points, centres, std: float, min_fraction: float = MODE_FRACTION) -> int:
    """Centres that receive at least min_fraction of all points as high-quality points."""
    counts = mode_counts(points, centres, std)
    return int((counts >= min_fraction * len(points)).sum())


def reverse_kl(points, centres, std: float) -> float:
    """KL(p || uniform) of the high-quality points' histogram p over the K modes:
    0 when every mode gets the same share, log K when one mode gets everything.
    With no high-quality point at all there is no histogram; that counts as
    the worst case, log K."""
    counts = mode_counts(points, centres, std)
    k = len(centres)
    if counts.sum() == 0:
        return math.log(k)
    p = counts[counts > 0] / counts.sum()
    return float((p * np.log(p * k)).sum())


def w1(a, b) -> float:
    """Exact Wasserstein-1 distance between two sets of N points each (equal
    weights, Euclidean ground cost) by POT's network simplex. SciPy's
    assignment solver gives the same optimum (with equal weights an optimal
    plan is a permutation) but is far slower on collapsed samples, so it is
    only the fallback."""
    a, b = _points(a), _points(b)
    if len(a) != len(b):
        raise ValueError(f"w1 needs equally many points, got {len(a)} and {len(b)}")
    cost = cdist(a, b)
    try:
        import ot
    except ImportError:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(cost)
        return float(cost[rows, cols].mean())
    weights = np.full(len(a), 1.0 / len(a))
    return float(ot.emd2(weights, weights, cost, numItermax=10_000_000))


def mixture_metrics(points, real, centres, std: float) -> dict[str, float]:
    """The toy/* scalars for a Gaussian mixture."""
    return {
        "toy/high_quality": high_quality(points, centres, std),
        "toy/modes": float(modes(points, centres, std)),
        "toy/reverse_kl": reverse_kl(points, centres, std),
        "toy/w1": w1(points, real),
    }
