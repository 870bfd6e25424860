"""Fidelity and coverage told apart, as pure functions of two feature sets.

Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem
et al. 2020) compare k-nearest-neighbour balls around real and generated
points: precision is the share of generated points inside some real ball (are
they sharp?), recall the share of real points inside some generated ball (do
they cover?); density counts the real balls around each generated point
(near 1 for a sample like the real one), coverage the real points whose ball
holds a generated one. They follow the authors' own package, prdc, to the
float (precision_recall says how).

The kernel inception distance (Bińkowski et al. 2018) is an unbiased estimate
of the squared MMD with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3,
averaged over random subsets, as torch-fidelity computes it: unlike the
Fréchet distance it has no bias for small samples, so runs of different
sizes compare.
"""

import numpy as np
import torch

NEAREST_K = 5  # k of the papers
FEWEST_POINTS = NEAREST_K + 1  # on each side: a k-NN ball needs k other points
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
    points. The formulas and distances of the authors' package, prdc
    (compute_prdc: Euclidean distances computed in float64 and kept as
    float32, a point's radius the distance to its k-th nearest other
    point), which tests/test_manifold_metrics.py checks this against; here
    in torch, a block of rows at a time, without prdc's scikit-learn import
    (about 2 s of a run) or its three whole distance matrices."""
    real, fake = (torch.from_numpy(_features(v)) for v in (real, fake))
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"need more than k={k} points in each set, got {len(real)} real, {len(fake)} fake")
    real_radii, fake_radii = _radii(real, k), _radii(fake, k)
    inside_some = torch.zeros(len(fake), dtype=torch.bool)  # precision: in some real ball
    balls_around = torch.zeros(len(fake), dtype=torch.int64)  # density: real balls holding it
    recalled = torch.empty(len(real), dtype=torch.bool)  # recall: in some fake ball
    covered = torch.empty(len(real), dtype=torch.bool)  # coverage: its ball holds a fake
    for rows in _blocks(len(real), len(fake)):
        d = _distances(real[rows], fake)
        inside = d < real_radii[rows, None]
        inside_some |= inside.any(dim=0)
        balls_around += inside.sum(dim=0)
        recalled[rows] = (d < fake_radii[None, :]).any(dim=1)
        covered[rows] = d.min(dim=1).values < real_radii[rows]
    return {
        "precision": inside_some.double().mean().item(),
        "recall": recalled.double().mean().item(),
        "density": (1.0 / k) * (balls_around.sum().item() / len(fake)),  # prdc's order of operations
        "coverage": covered.double().mean().item(),
    }


def _blocks(rows: int, columns: int, budget: int = 2**22):
    """Slices of `rows` whose distance blocks hold about `budget` values."""
    step = max(1, budget // max(columns, 1))
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)]


def _distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Euclidean distances [len(x), len(y)] as scikit-learn computes them for
    float32 features: |x|^2 - 2 x.y + |y|^2 in float64, rounded to float32."""
    x, y = x.double(), y.double()
    squared = torch.addmm((y * y).sum(1)[None, :], x, y.T, alpha=-2).add_((x * x).sum(1)[:, None])
    return squared.clamp_(min=0).sqrt_().float()


def _radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Each point's distance to its k-th nearest other point (the (k+1)-th
    smallest of its row, its own distance 0 first)."""
    radii = torch.empty(len(x))
    for rows in _blocks(len(x), len(x)):
        d = _distances(x[rows], x)
        d[torch.arange(d.shape[0]), torch.arange(rows.start, rows.stop)] = 0.0  # itself, exactly
        radii[rows] = d.topk(k + 1, dim=1, largest=False).values[:, -1]  # topk: 8x kthvalue's speed
    return radii


def kid(
    real, fake, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE, seed: int = 0
) -> tuple[float, float]:
    """(mean, standard deviation) over `subsets` random subsets of the unbiased
    squared MMD between `real` and `fake` with the kernel (x.y / d + 1)^3.
    A subset holds min(subset_size, len(real), len(fake)) points of each."""
    # Each subset's kernel sum is u.K.v for 0/1 vectors u, v marking its points:
    # the kernels are computed once, a block of rows at a time (products in
    # float32, a quarter of float64's time), and multiplied by all subsets'
    # marks at once in float64, since the estimate is a small difference of
    # sums over a million kernel values. Half the arithmetic of a product per
    # subset, and the same estimate (to about 1e-12).
    real, fake = (torch.from_numpy(_features(v)) for v in (real, fake))
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        raise ValueError(f"need at least 2 points in each set, got {len(real)} real, {len(fake)} fake")
    if m == len(real) == len(fake):
        # Every subset is then both whole sets, and the estimate does not
        # depend on the order of the points: one is all of them.
        subsets = 1
    draw = np.random.default_rng(seed)
    marks = {"x": torch.zeros(len(real), subsets, dtype=torch.float64)}
    marks["y"] = torch.zeros(len(fake), subsets, dtype=torch.float64)
    for i in range(subsets):
        marks["x"][torch.from_numpy(draw.choice(len(real), m, replace=False)), i] = 1
        marks["y"][torch.from_numpy(draw.choice(len(fake), m, replace=False)), i] = 1
    dim = real.shape[1]
    total, diagonal = {}, torch.zeros(subsets, dtype=torch.float64)
    for name, a, b, u, v in (
        ("xx", real, real, "x", "x"),
        ("yy", fake, fake, "y", "y"),
        ("xy", real, fake, "x", "y"),
    ):
        total[name] = torch.zeros(subsets, dtype=torch.float64)
        for rows in _blocks(len(a), len(b)):
            k = (a[rows] @ b.T).div_(dim).add_(1).pow_(3)
            total[name] += (marks[u][rows] * (k.double() @ marks[v])).sum(0)
            if name != "xy":  # k(x, x), left out of the unbiased estimate
                own = k[torch.arange(k.shape[0]), torch.arange(rows.start, rows.stop)]
                diagonal += own.double() @ marks[u][rows]
    within = (total["xx"] + total["yy"] - diagonal) / (m * (m - 1))
    values = within - 2 * total["xy"] / m**2
    return float(values.mean()), float(values.std(correction=0))
