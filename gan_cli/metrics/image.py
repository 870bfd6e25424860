"""Image quality metrics as pure functions of classifier outputs.

Features and probabilities come from gan_cli.classifier; nothing here
knows about models or runs, so each formula can be checked on its own.
"""

import numpy as np
import torch


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean [F] and covariance [F, F] (float64) of features [N, F]."""
    x = np.asarray(features.cpu() if isinstance(features, torch.Tensor) else features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need features [N >= 2, F], got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues
    below zero, which rounding makes, are clipped)."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)), the squared
    Wasserstein-2 distance between two Gaussians. tr((S1 S2)^(1/2)) is taken
    as tr((S1^(1/2) S2 S1^(1/2))^(1/2)): the same eigenvalues, but of a
    symmetric matrix, so eigh is exact where sqrtm of S1 S2 can go complex."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    root1 = _sqrt_psd(s1)
    middle = root1 @ s2 @ root1
    w = np.linalg.eigvalsh((middle + middle.T) / 2)
    cross = np.sqrt(np.clip(w, 0, None)).sum()
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross)
    return max(value, 0.0)


def class_histogram(predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Share of the predictions [N] falling in each class: [K], sums to 1."""
    counts = torch.bincount(predicted.view(-1).cpu(), minlength=num_classes)[:num_classes]
    return counts.double() / max(len(predicted), 1)


def classes_present(histogram: torch.Tensor, min_share: float | None = None) -> int:
    """Classes holding at least a tenth of their uniform share (1% of the
    images for 10 classes): a few stray misclassifications do not count."""
    threshold = 0.1 / len(histogram) if min_share is None else min_share
    return int((histogram >= threshold).sum())


def kl_to_uniform(histogram: torch.Tensor) -> float:
    """KL(p || uniform) = log K - H(p), in nats: 0 when every class is equally
    frequent, log K when all images fall in one class."""
    p = histogram.double()
    nz = p[p > 0]
    return float((nz * (nz * len(p)).log()).sum())


def place_kls(numbers: torch.Tensor, places: int, base: int = 10) -> list[float]:
    """kl_to_uniform of each place's digit histogram, most significant first,
    for numbers [N] of `places` digits. The numbers' own KL is exactly their
    sum plus the places' total correlation (Σ H(place) - H(number)): how
    uneven each place's digits are, and how much the places depend on each other."""
    return [
        kl_to_uniform(class_histogram((numbers // base ** (places - 1 - i)) % base, base))
        for i in range(places)
    ]


def confidence(probabilities: torch.Tensor) -> float:
    """Mean top-class probability: how sure the classifier is of each image."""
    return float(probabilities.max(dim=1).values.double().mean())


def class_accuracy(
    predicted: torch.Tensor, wanted: torch.Tensor, num_classes: int
) -> tuple[float, list[float]]:
    """How often the prediction is the class asked for: overall and per class
    (nan for a class never asked for)."""
    hit = (predicted.view(-1).cpu() == wanted.view(-1).cpu()).double()
    wanted = wanted.view(-1).cpu()
    per_class = []
    for k in range(num_classes):
        mask = wanted == k
        per_class.append(float(hit[mask].mean()) if mask.any() else float("nan"))
    return float(hit.mean()), per_class
