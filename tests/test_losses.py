"""Each loss on fixed tensors, against values computed by hand."""

import math

import pytest
import torch

from gan_cli.objectives import losses

LOG2 = math.log(2)


def test_minimax_loss_at_d_one_half_is_two_log_two():
    zeros = torch.zeros(7)  # logit 0 <=> D = 1/2
    assert losses.minimax_discriminator_loss(zeros, zeros).item() == pytest.approx(2 * LOG2)
    # V = -2 log 2 there, so the JS estimate is 0: P_data = P_G as far as D can tell.
    assert losses.js_estimate(losses.minimax_discriminator_loss(zeros, zeros)).item() == pytest.approx(
        0.0, abs=1e-7
    )


def test_minimax_loss_matches_log_formula():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    v = torch.log(d_real).mean() + torch.log(1 - d_fake).mean()
    assert losses.minimax_discriminator_loss(real, fake).item() == pytest.approx(-v.item(), rel=1e-6)
    assert losses.js_estimate(-v).item() == pytest.approx(v.item() / 2 + LOG2, rel=1e-6)


def test_js_estimate_reaches_log_two_for_a_perfect_discriminator():
    # D(real) -> 1, D(fake) -> 0: V -> 0, JS -> log 2 (disjoint supports).
    big = torch.full((4,), 50.0)
    assert losses.js_estimate(losses.minimax_discriminator_loss(big, -big)).item() == pytest.approx(
        LOG2, abs=1e-6
    )


def test_generator_losses():
    fake = torch.tensor([0.0, math.log(3.0)])  # D = 1/2 and 3/4
    d = torch.sigmoid(fake)
    assert losses.non_saturating_generator_loss(fake).item() == pytest.approx(-torch.log(d).mean().item())
    assert losses.saturating_generator_loss(fake).item() == pytest.approx(torch.log(1 - d).mean().item())


def test_saturating_loss_gradient_vanishes_where_d_rejects_fakes():
    fake = torch.tensor([-20.0], requires_grad=True)  # D(G(z)) ~ 2e-9
    losses.saturating_generator_loss(fake).backward()
    saturating = fake.grad.abs().item()
    fake.grad = None
    losses.non_saturating_generator_loss(fake).backward()
    assert saturating < 1e-8 < 0.9 < fake.grad.abs().item()


def test_wasserstein_losses():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])
    assert losses.wasserstein_critic_loss(real, fake).item() == pytest.approx(-2.5)
    assert losses.wasserstein_generator_loss(fake).item() == pytest.approx(0.5)


def test_clip_parameters_bounds_every_parameter():
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 1)
    losses.clip_parameters_(net, 0.01)
    values = torch.cat([p.flatten() for p in net.parameters()])
    assert values.abs().max().item() == pytest.approx(0.01)


def test_squared_error():
    a, b = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 4.0]])
    assert losses.squared_error(a, b).item() == pytest.approx(2.5)
