"""Precision, recall, density, coverage and KID on point sets with known answers."""

import contextlib
import io
import itertools

import numpy as np
import pytest

from gan_cli.metrics.manifold import kid, precision_recall


def _gaussian(n: int, dim: int, seed: int, centre: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(centre, 1.0, size=(n, dim)).astype(np.float32)


def test_a_sample_scored_against_itself_has_precision_recall_and_coverage_one(capsys):
    points = _gaussian(400, 4, seed=0)
    values = precision_recall(points, points)
    assert values["precision"] == values["recall"] == values["coverage"] == 1.0
    assert capsys.readouterr().out == ""  # the package's own prints stay out of a run's output


def test_a_sample_of_one_of_two_clusters_is_precise_but_recalls_half():
    real = np.concatenate([_gaussian(500, 2, seed=1, centre=-20.0), _gaussian(500, 2, seed=2, centre=20.0)])
    one_cluster = _gaussian(1000, 2, seed=3, centre=20.0)
    values = precision_recall(real, one_cluster)
    assert values["precision"] >= 0.97
    assert 0.45 <= values["recall"] <= 0.55
    assert 0.45 <= values["coverage"] <= 0.55


def test_two_samples_of_one_distribution_have_density_near_one():
    values = precision_recall(_gaussian(2000, 8, seed=4), _gaussian(2000, 8, seed=5))
    assert 0.85 <= values["density"] <= 1.15
    assert values["precision"] >= 0.6 and values["recall"] >= 0.6  # k = 5 balls in 8 dimensions


def test_a_blurred_sample_loses_precision_and_a_collapsed_one_loses_recall():
    real = _gaussian(1000, 4, seed=6)
    blurred = precision_recall(real, 3 * _gaussian(1000, 4, seed=7))  # spread far past the data
    collapsed = precision_recall(real, 0.2 * _gaussian(1000, 4, seed=8))  # all near the mean
    assert blurred["precision"] < 0.5 < blurred["recall"]
    assert collapsed["recall"] < 0.5 < collapsed["precision"]


@pytest.mark.parametrize(
    "real_n, fake_n, dim, spread, k",
    [(1200, 900, 16, 1.3, 5), (300, 400, 2, 0.5, 5), (500, 500, 64, 1.0, 3), (2000, 2000, 128, 1.05, 5)],
)
def test_precision_recall_density_and_coverage_equal_the_authors_prdc(real_n, fake_n, dim, spread, k):
    """Same numbers as prdc.compute_prdc (Naeem et al.'s package) on the same
    features, whole sets or a block of rows at a time, ties at the radius included."""
    prdc = pytest.importorskip("prdc")
    real = _gaussian(real_n, dim, seed=real_n)
    fake = spread * _gaussian(fake_n, dim, seed=fake_n + 1) + 0.1
    fake[:20] = real[:20]  # duplicates: distance 0, on the boundary of nothing
    with contextlib.redirect_stdout(io.StringIO()):
        expected = prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    got = precision_recall(real, fake, k=k)
    assert got == {name: float(value) for name, value in expected.items()}
    assert 0 < got["precision"] < 1 and 0 < got["recall"] < 1  # not a degenerate case


def test_kid_sums_every_subset_as_the_loop_over_subsets_does():
    """The marked-sum form equals the direct one: each subset's three kernel
    matrices summed, diagonals out."""
    real, fake = _gaussian(700, 6, seed=20), _gaussian(650, 6, seed=21, centre=0.2)
    mean, std = kid(real, fake, subsets=7, subset_size=300, seed=3)
    draw, values = np.random.default_rng(3), []
    for _ in range(7):
        x = real[draw.choice(700, 300, replace=False)].astype(np.float64)
        y = fake[draw.choice(650, 300, replace=False)].astype(np.float64)
        kxx, kyy, kxy = ((a @ b.T / 6 + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (300 * 299)
        values.append(within - 2 * kxy.mean())
    assert mean == pytest.approx(np.mean(values), rel=1e-5) and std == pytest.approx(np.std(values), rel=1e-4)


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    real, fake = _gaussian(5, 3, seed=9), _gaussian(5, 3, seed=10, centre=0.5)

    def k(a, b):
        return (float(a @ b) / 3 + 1) ** 3

    m = 5
    xx = sum(k(real[i], real[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(fake[i], fake[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(real[i], fake[j]) for i in range(m) for j in range(m)) / m**2
    mean, std = kid(real, fake, subsets=1, subset_size=10)  # one subset holding every point
    assert mean == pytest.approx(xx + yy - 2 * xy, rel=1e-6)  # float32 points
    assert std == 0.0


def test_kid_of_two_whole_sets_is_one_estimate_whatever_the_order():
    real, fake = _gaussian(60, 4, seed=14), _gaussian(60, 4, seed=15, centre=0.3)
    order = np.random.default_rng(0).permutation(60)
    whole = kid(real, fake)  # 100 subsets asked for, each would hold both whole sets
    assert whole[1] == 0.0
    assert whole[0] == pytest.approx(kid(real[order], fake[order[::-1]], subsets=1)[0], rel=1e-12)
    some = kid(real, fake, subsets=10, subset_size=50)  # true subsets: the estimates vary
    assert some[1] > 0


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    real = _gaussian(2000, 8, seed=11)
    same, _ = kid(real, _gaussian(2000, 8, seed=12), subsets=20, subset_size=500)
    shifted, _ = kid(real, _gaussian(2000, 8, seed=13, centre=0.5), subsets=20, subset_size=500)
    assert abs(same) < 0.01
    assert shifted > 0.1


def test_too_few_points_is_refused():
    with pytest.raises(ValueError, match="more than k=5 points"):
        precision_recall(_gaussian(5, 2, seed=0), _gaussian(50, 2, seed=1))
    with pytest.raises(ValueError, match="features \\[N, D\\]"):
        kid(np.zeros(10), np.zeros(10))
