"""Loss functions as small pure functions of D's raw outputs (logits / scores).

Sign convention: every function returns a loss to *minimise*. For the minimax
GAN, V(D, G) = E[log D(x)] + E[log(1 - D(G(z)))] with D = sigmoid(logit);
log D = -softplus(-logit) and log(1 - D) = -softplus(logit), which stay finite
where D saturates.
"""

import math

import torch
import torch.nn.functional as F

LOG2 = math.log(2.0)


# --- minimax GAN (Goodfellow et al. 2014) -------------------------------------


def minimax_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-V: D maximises V by minimising this. Equals 2 log 2 where D = 1/2 everywhere."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def saturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """E[log(1 - D(G(z)))], the term of V that G minimises in the game itself.
    Its gradient vanishes when D confidently rejects the fakes."""
    return -F.softplus(fake_logits).mean()


def non_saturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-E[log D(G(z))]: same fixed point, strong gradients early in training."""
    return F.softplus(-fake_logits).mean()


def js_estimate(discriminator_loss: torch.Tensor) -> torch.Tensor:
    """JS(P_data || P_G) from the batch's V = -loss: at the optimal D,
    V = -2 log 2 + 2 JS, so JS = V / 2 + log 2."""
    return -discriminator_loss / 2 + LOG2


# --- Wasserstein GAN (Arjovsky et al. 2017) -----------------------------------


def wasserstein_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """-(E[d(real)] - E[d(fake)]): the critic maximises the W1 estimate."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """-E[d(G(z))]."""
    return -fake_scores.mean()


@torch.no_grad()
def clip_parameters_(module: torch.nn.Module, clip_value: float) -> None:
    """Clamp every parameter to [-c, c] in place: WGAN's Lipschitz constraint."""
    for p in module.parameters():
        p.clamp_(-clip_value, clip_value)


# --- regression, no discriminator --------------------------------------------


def squared_error(generated: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch and pixels of (g(z_i) - y_i)^2."""
    return F.mse_loss(generated, targets)


# --- WGAN with gradient penalty (Gulrajani et al. 2017) -----------------------


def interpolate(real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_hat = eps x + (1 - eps) x~ with one coefficient eps [B] per sample."""
    eps = eps.view(-1, *([1] * (real.dim() - 1))).to(real.dtype)
    return eps * real + (1 - eps) * fake


def gradient_penalty(critic, points: torch.Tensor, pack: int = 1) -> torch.Tensor:
    """E[(||grad_x critic(x)||_2 - 1)^2] over `points` [B, ...]: the two-sided
    penalty. create_graph=True so the penalty itself can be differentiated
    with respect to the critic's weights. With packing, x is one of the B/pack
    joined inputs the critic scores, so the norm runs over each group."""
    points = points.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(points).sum(), points, create_graph=True)
    return ((grad.reshape(len(grad) // pack, -1).norm(2, dim=1) - 1) ** 2).mean()


# --- R1 and R2 (Mescheder et al. 2018) -------------------------------------------


def zero_centred_penalty(scores: torch.Tensor, inputs: torch.Tensor, pack: int = 1) -> torch.Tensor:
    """E[||grad_x D(x)||^2] over the scored inputs x [B, ...], which required
    grad when D scored them (scores [B / pack]); with packing each input is a
    group of `pack` samples. On real x it is R1, on G's samples R2; the caller
    weighs it by gamma / 2. create_graph=True: the penalty is differentiated
    with respect to D's weights."""
    (grad,) = torch.autograd.grad(scores.sum(), inputs, create_graph=True)
    return grad.pow(2).reshape(len(grad) // pack, -1).sum(1).mean()


# --- relativistic pairing GAN (Jolicoeur-Martineau 2019; R3GAN, Huang et al. 2024) --


def relativistic_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """E[softplus(d(fake_i) - d(real_i))] over the batch's pairs: D wants each
    real example to score above the fake one it is paired with. log 2 where d
    is constant."""
    return F.softplus(fake_scores - real_scores).mean()


def relativistic_generator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """E[softplus(d(real_i) - d(fake_i))]: G wants each fake to score above its real partner."""
    return F.softplus(real_scores - fake_scores).mean()


def relativistic_estimate(discriminator_loss: torch.Tensor) -> torch.Tensor:
    """log 2 - loss: a lower bound on the relativistic divergence
    sup_C E[log sigmoid(C(x) - C(G(z)))] + log 2 (Jolicoeur-Martineau 2019),
    equal to it at the optimal d. It is 0 when P_G = P_data (a constant d is
    then optimal, by symmetry and concavity) and log 2 where the supports are
    apart (d(real) - d(fake) can grow without bound)."""
    return LOG2 - discriminator_loss


# --- hinge loss (Lim & Ye 2017; Miyato et al. 2018) ---------------------------


def hinge_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """E[max(0, 1 - d(real))] + E[max(0, 1 + d(fake))]."""
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def hinge_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """-E[d(G(z))]."""
    return -fake_scores.mean()


def total_variation_estimate(hinge_loss: torch.Tensor) -> torch.Tensor:
    """TV(P_data, P_G) = 1/2 integral |p - q| from the hinge loss: pointwise the
    best d is sign(p - q), where the loss is 2 integral min(p, q) = 2 (1 - TV).
    So 1 - loss / 2 is a lower bound on TV, equal to it at the optimal d."""
    return 1 - hinge_loss / 2


# --- least squares GAN (Mao et al. 2017) --------------------------------------


def least_squares_discriminator_loss(
    real_scores: torch.Tensor, fake_scores: torch.Tensor, a: float, b: float
) -> torch.Tensor:
    """1/2 E[(d(real) - b)^2] + 1/2 E[(d(fake) - a)^2]: real coded b, fake a."""
    return 0.5 * ((real_scores - b) ** 2).mean() + 0.5 * ((fake_scores - a) ** 2).mean()


def least_squares_generator_loss(fake_scores: torch.Tensor, c: float) -> torch.Tensor:
    """1/2 E[(d(G(z)) - c)^2]: G wants D to say c for its samples."""
    return 0.5 * ((fake_scores - c) ** 2).mean()


def chi2_estimate(least_squares_loss: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """Pearson chi^2(P_data + P_G || 2 P_G) = integral (p - q)^2 / (p + q), the
    divergence of Mao et al.'s Theorem 1, in [0, 2]. The optimal d is
    (b p + a q) / (p + q), where the loss is (b - a)^2 (2 - chi^2) / 8; so
    2 - 8 loss / (b - a)^2 is a lower bound, equal to it at the optimal d."""
    return 2 - 8 * least_squares_loss / (b - a) ** 2


def mode_seeking_ratio(fake_a, fake_b, z_a, z_b) -> torch.Tensor:
    """MSGAN's ratio (Mao et al. 2019): mean |fake_a - fake_b| over mean
    |z_a - z_b|, the images' spread per unit of the noise's."""
    return (fake_a - fake_b).abs().mean() / (z_a - z_b).abs().mean()
