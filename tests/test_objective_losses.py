"""The losses of wgan_gp, hinge, rpgan, lsgan and fgan on fixed tensors, against
values computed by hand."""

import math

import numpy as np
import pytest
import torch

from gan_cli.errors import UserError
from gan_cli.objectives import fdiv, losses

# Two discrete distributions on {x0, x1}: P = (1/2, 1/2), Q = (1/4, 3/4).
# A batch of 4 samples represents each exactly, so a batch mean is an expectation.
P, Q = np.array([0.5, 0.5]), np.array([0.25, 0.75])
REAL_POINTS, FAKE_POINTS = [0, 0, 1, 1], [0, 1, 1, 1]


def on_batches(values_at_points):
    """Per-point values [v(x0), v(x1)] -> (real batch, fake batch) tensors."""
    v = torch.tensor(values_at_points, dtype=torch.float64)
    return v[REAL_POINTS], v[FAKE_POINTS]


# --- gradient penalty ---------------------------------------------------------


def test_interpolate_uses_one_coefficient_per_sample():
    real = torch.ones(3, 1, 2, 2)
    fake = torch.zeros(3, 1, 2, 2)
    mixed = losses.interpolate(real, fake, torch.tensor([0.0, 1.0, 0.25]))
    assert mixed.shape == (3, 1, 2, 2)
    assert mixed[:, 0, 0, 0].tolist() == [0.0, 1.0, 0.25]
    assert (mixed == mixed[:, :1, :1, :1]).all()  # one value across each sample


def test_gradient_penalty_is_zero_for_a_unit_norm_linear_critic():
    w = torch.tensor([0.6, 0.0, 0.8])  # ||w|| = 1
    points = torch.randn(5, 3)
    assert losses.gradient_penalty(lambda x: x @ w + 2.0, points).item() == pytest.approx(0, abs=1e-12)


def test_gradient_penalty_for_another_norm_and_its_gradient_reaches_the_critic():
    w = torch.tensor([[1.2, 0.0], [0.0, 1.6]]).flatten().requires_grad_(True)  # ||w|| = 2
    points = torch.randn(4, 2, 2)  # images flattened inside
    penalty = losses.gradient_penalty(lambda x: x.flatten(1) @ w, points)
    assert penalty.item() == pytest.approx((2 - 1) ** 2)
    penalty.backward()  # create_graph=True made this possible
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = w
    assert torch.allclose(w.grad, w.detach())


def test_gradient_penalty_per_sample_for_a_quadratic_critic():
    # critic(x) = ||x||^2 / 2 has gradient x: norms 5 and 1 give (4^2 + 0^2) / 2 = 8.
    points = torch.tensor([[3.0, 4.0], [0.6, 0.8]])
    assert losses.gradient_penalty(lambda x: (x**2).sum(1) / 2, points).item() == pytest.approx(8.0)


# --- hinge --------------------------------------------------------------------


def test_hinge_losses_by_hand():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])
    # real: max(0, 1-2) = 0, max(0, 0.5) = 0.5; fake: max(0, -2) = 0, max(0, 1) = 1
    assert losses.hinge_discriminator_loss(real, fake).item() == pytest.approx(0.25 + 0.5)
    assert losses.hinge_generator_loss(fake).item() == pytest.approx(1.5)


def test_hinge_estimate_is_the_total_variation_at_the_optimal_d_and_below_it_elsewhere():
    tv = 0.5 * np.abs(P - Q).sum()  # 1/4
    best = on_batches(np.sign(P - Q))  # d = sign(p - q)
    estimate = losses.total_variation_estimate(losses.hinge_discriminator_loss(*best)).item()
    assert estimate == pytest.approx(tv) and tv == pytest.approx(0.25)
    for d in ([0.0, 0.0], [2.0, -2.0], [0.3, -0.1], [-1.0, 1.0]):
        worse = losses.total_variation_estimate(losses.hinge_discriminator_loss(*on_batches(d))).item()
        assert worse < tv - 1e-3


# --- relativistic pairing -----------------------------------------------------


def test_relativistic_losses_by_hand():
    real, fake = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 3.0])  # pairs (1, 0) and (2, 3)
    softplus = lambda t: math.log1p(math.exp(t))  # noqa: E731
    assert losses.relativistic_discriminator_loss(real, fake).item() == pytest.approx(
        (softplus(-1.0) + softplus(1.0)) / 2
    )
    assert losses.relativistic_generator_loss(real, fake).item() == pytest.approx(
        (softplus(1.0) + softplus(-1.0)) / 2
    )
    constant = torch.full((4,), 0.7)  # a d that tells nothing apart: loss log 2, estimate 0
    loss = losses.relativistic_discriminator_loss(constant, constant)
    assert loss.item() == pytest.approx(math.log(2))
    assert losses.relativistic_estimate(loss).item() == pytest.approx(0.0, abs=1e-7)


def _every_pair(d):
    """Per-point scores -> (real, fake) over all 4 x 4 pairs of the two batches:
    each real point meets each fake one, so the batch mean is the expectation
    over independent x ~ P and x~ ~ Q."""
    real, fake = on_batches(d)
    return real.repeat_interleave(len(fake)), fake.repeat(len(real))


def test_relativistic_estimate_is_the_divergence_at_the_optimal_d_and_below_it_elsewhere():
    # Only t = d(x0) - d(x1) matters. Pairs (x0 real, x1 fake) come with
    # probability a = P0 Q1 = 3/8, (x1, x0) with b = P1 Q0 = 1/8, the rest tie
    # at log sigmoid(0). The best t is log(a / b), where sup_C E[log sigmoid(
    # C(x) - C(x~))] + log 2 = (a + b) (log 2 - H(a / (a + b))), H in nats.
    a, b = P[0] * Q[1], P[1] * Q[0]
    share = a / (a + b)
    divergence = (a + b) * (math.log(2) + share * math.log(share) + (1 - share) * math.log(1 - share))
    assert divergence == pytest.approx(0.0654, abs=1e-4)
    best = _every_pair([math.log(a / b), 0.0])
    estimate = losses.relativistic_estimate(losses.relativistic_discriminator_loss(*best)).item()
    assert estimate == pytest.approx(divergence, rel=1e-9)
    for d in ([0.0, 0.0], [3.0, 0.0], [0.5, 0.0], [-1.0, 1.0]):
        worse = losses.relativistic_estimate(losses.relativistic_discriminator_loss(*_every_pair(d)))
        assert worse.item() < divergence - 1e-3


def test_relativistic_estimate_nears_log_two_where_the_supports_are_apart():
    # A d that scores every real point `gap` above every fake one: loss
    # softplus(-gap), which falls to 0 as the gap grows; the bound rises to log 2.
    estimates = []
    for gap in (2.0, 10.0, 30.0):
        loss = losses.relativistic_discriminator_loss(torch.full((8,), gap).double(), torch.zeros(8).double())
        estimates.append(losses.relativistic_estimate(loss).item())
        assert estimates[-1] == pytest.approx(math.log(2) - math.log1p(math.exp(-gap)), rel=1e-6)
    assert estimates[0] < estimates[1] < estimates[2] == pytest.approx(math.log(2), abs=1e-12)


# --- least squares --------------------------------------------------------------


def test_least_squares_losses_by_hand():
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    # a=-1, b=1: 1/2 mean(0, 1) + 1/2 mean(0, 4) = 0.25 + 1.0
    assert losses.least_squares_discriminator_loss(real, fake, a=-1, b=1).item() == pytest.approx(1.25)
    # c=0: 1/2 mean(1, 1) = 0.5; c=1: 1/2 mean(4, 0) = 1
    assert losses.least_squares_generator_loss(fake, c=0).item() == pytest.approx(0.5)
    assert losses.least_squares_generator_loss(fake, c=1).item() == pytest.approx(1.0)


@pytest.mark.parametrize("a,b", [(-1.0, 1.0), (0.0, 1.0)])
def test_least_squares_estimate_is_the_chi2_of_mao_et_al_at_the_optimal_d(a, b):
    chi2 = ((P - Q) ** 2 / (P + Q)).sum()  # 1/12 + 1/20 = 2/15
    assert chi2 == pytest.approx(2 / 15)
    best = on_batches((b * P + a * Q) / (P + Q))  # Mao et al.'s optimal D
    loss = losses.least_squares_discriminator_loss(*best, a=a, b=b)
    assert losses.chi2_estimate(loss, a, b).item() == pytest.approx(chi2)
    worse = losses.least_squares_discriminator_loss(*on_batches([b, a]), a=a, b=b)
    assert losses.chi2_estimate(worse, a, b).item() < chi2 - 1e-3


# --- f-divergences ----------------------------------------------------------------

U = P / Q
TRUE_DIVERGENCE = {  # the textbook formulas, not the table's f
    "kl": (P * np.log(P / Q)).sum(),
    "reverse_kl": (Q * np.log(Q / P)).sum(),
    "pearson": ((P - Q) ** 2 / Q).sum(),
    "hellinger": ((np.sqrt(P) - np.sqrt(Q)) ** 2).sum(),
    "jensen_shannon": (P * np.log(2 * P / (P + Q)) + Q * np.log(2 * Q / (P + Q))).sum(),  # 2 JS
    "gan": (P * np.log(P / (P + Q)) + Q * np.log(Q / (P + Q))).sum(),  # 2 JS - log 4
}
OPTIMAL_T = {  # T* = f'(p/q), derived by hand
    "kl": 1 + np.log(U),
    "reverse_kl": -1 / U,
    "pearson": 2 * (U - 1),
    "hellinger": 1 - 1 / np.sqrt(U),
    "jensen_shannon": np.log(2 * U / (1 + U)),
    "gan": np.log(U / (1 + U)),
}
RAW_OUTPUT = {  # v with g_f(v) = t, inverted by hand
    "kl": lambda t: t,
    "reverse_kl": lambda t: -np.log(-t),
    "pearson": lambda t: t,
    "hellinger": lambda t: -np.log(1 - t),
    "jensen_shannon": lambda t: -np.log(2 * np.exp(-t) - 1),
    "gan": lambda t: -np.log(np.exp(-t) - 1),
}
CONJUGATE_POINTS = {  # t inside dom f*
    "kl": [-1.0, 0.0, 0.5, 1.0],
    "reverse_kl": [-2.0, -1.0, -0.5],
    "pearson": [-1.5, 0.0, 1.0],
    "hellinger": [-1.0, 0.0, 0.5],
    "jensen_shannon": [-1.0, 0.0, 0.5],
    "gan": [-2.0, -0.5],
}


def test_every_divergence_of_the_issue_is_in_the_table():
    assert (
        set(fdiv.DIVERGENCES)
        == set(TRUE_DIVERGENCE)
        == {"kl", "reverse_kl", "pearson", "hellinger", "jensen_shannon", "gan"}
    )


@pytest.mark.parametrize("name", sorted(TRUE_DIVERGENCE))
def test_f_at_one_and_the_divergence_it_gives(name):
    div = fdiv.DIVERGENCES[name]
    # f(1) = 0 (D_f(P || P) = 0), except the table's gan f: 2 JS - log 4 is -log 4 at P = Q.
    at_one = -math.log(4) if name == "gan" else 0.0
    assert div.f(torch.tensor(1.0, dtype=torch.float64)).item() == pytest.approx(at_one, abs=1e-12)
    d_f = (Q * div.f(torch.tensor(U)).numpy()).sum()  # E_Q[f(p/q)]
    assert d_f == pytest.approx(TRUE_DIVERGENCE[name])


@pytest.mark.parametrize("name", sorted(TRUE_DIVERGENCE))
def test_conjugate_is_the_sup_of_ut_minus_f(name):
    div = fdiv.DIVERGENCES[name]
    u = torch.logspace(-9, 4, 400_001, dtype=torch.float64)
    for t in CONJUGATE_POINTS[name]:
        numeric = (u * t - div.f(u)).max().item()
        assert div.conjugate(torch.tensor(t, dtype=torch.float64)).item() == pytest.approx(numeric, abs=1e-6)


@pytest.mark.parametrize("name", sorted(TRUE_DIVERGENCE))
def test_stable_conjugate_of_activation_matches_the_composition(name):
    div = fdiv.DIVERGENCES[name]
    v = torch.linspace(-3, 3, 13, dtype=torch.float64)
    assert torch.allclose(div.conjugate_of_activation(v), div.conjugate(div.activation(v)))


@pytest.mark.parametrize("name", sorted(TRUE_DIVERGENCE))
def test_bound_equals_the_true_divergence_at_the_optimal_critic(name):
    div = fdiv.DIVERGENCES[name]
    truth = TRUE_DIVERGENCE[name]
    t_star = OPTIMAL_T[name]
    assert fdiv.variational_bound(*on_batches(t_star), div).item() == pytest.approx(truth)
    # The same through the loss D minimises, from raw outputs v with g_f(v) = T*.
    v_real, v_fake = on_batches(RAW_OUTPUT[name](t_star))
    assert -fdiv.fgan_discriminator_loss(v_real, v_fake, div).item() == pytest.approx(truth)
    # Any other critic gives less: it is a lower bound.
    for shift in (-0.3, 0.2):
        moved = fdiv.fgan_discriminator_loss(*on_batches(RAW_OUTPUT[name](t_star) + [shift, -shift]), div)
        assert -moved.item() < truth - 1e-4


def test_fgan_generator_losses_for_the_gan_divergence():
    v = torch.tensor([0.0, math.log(3.0)])
    div = fdiv.DIVERGENCES["gan"]
    # The alternative update is the non-saturating -E[log D(G(z))] ...
    assert fdiv.fgan_generator_loss_alternative(v, div).item() == pytest.approx(
        losses.non_saturating_generator_loss(v).item()
    )
    # ... the saddle point objective is E[log(1 - D(G(z)))]: -(log 2 + log 4) / 2.
    assert fdiv.fgan_generator_loss_saddle(v, div).item() == pytest.approx(-(math.log(2) + math.log(4)) / 2)


def test_unknown_divergence_lists_the_allowed_ones():
    with pytest.raises(
        UserError,
        match="objective.divergence must be one of kl, reverse_kl, "
        "pearson, hellinger, jensen_shannon, gan, got 'chi'",
    ):
        fdiv.divergence("chi")
