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
