"""The f-divergences of f-GAN (Nowozin, Cseke & Tomioka 2016), Table 2.

D_f(P || Q) = E_Q[f(p/q)] for a convex f with f(1) = 0. With the convex
conjugate f*(t) = sup_u (u t - f(u)), every critic T gives a lower bound

    D_f(P || Q) >= E_P[T(x)] - E_Q[f*(T(x))],

tight at T(x) = f'(p(x)/q(x)). The network's raw output v is mapped into the
domain of f* by the divergence's output activation, T = g_f(v). For each
divergence below: f, g_f, f*, and f*(g_f(v)) written so it cannot overflow
where the composition would (e.g. reverse KL: f*(-exp(-v)) = v - 1).

Note on jensen_shannon: the table's f(u) = u log u - (u + 1) log((1 + u)/2)
gives D_f = 2 JS(P, Q) (in [0, 2 log 2]); the table's formula column carries
a factor 1/2 that its f does not. We keep f, g_f and f* as tabulated, so the
logged estimate is 2 JS. For `gan`, D_f = 2 JS - log 4 (its f(1) = -log 4, so
the estimate is -log 4, not 0, where P_G = P_data).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gan_cli.errors import UserError

LOG2 = math.log(2.0)
Fn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Divergence:
    name: str
    f: Fn  # generator function f(u), u = p/q > 0
    activation: Fn  # g_f: R -> dom f*
    conjugate: Fn  # f*(t)
    conjugate_of_activation: Fn  # f*(g_f(v)), numerically safe


DIVERGENCES = {
    d.name: d
    for d in [
        # KL(P || Q): f = u log u; g_f = v; f*(t) = exp(t - 1).
        Divergence(
            "kl",
            f=lambda u: u * torch.log(u),
            activation=lambda v: v,
            conjugate=lambda t: torch.exp(t - 1),
            conjugate_of_activation=lambda v: torch.exp(v - 1),
        ),
        # KL(Q || P): f = -log u; g_f = -exp(-v); f*(t) = -1 - log(-t).
        Divergence(
            "reverse_kl",
            f=lambda u: -torch.log(u),
            activation=lambda v: -torch.exp(-v),
            conjugate=lambda t: -1 - torch.log(-t),
            conjugate_of_activation=lambda v: v - 1,
        ),
        # Pearson chi^2: f = (u - 1)^2; g_f = v; f*(t) = t^2/4 + t.
        Divergence(
            "pearson",
            f=lambda u: (u - 1) ** 2,
            activation=lambda v: v,
            conjugate=lambda t: t**2 / 4 + t,
            conjugate_of_activation=lambda v: v**2 / 4 + v,
        ),
        # Squared Hellinger: f = (sqrt u - 1)^2; g_f = 1 - exp(-v); f*(t) = t / (1 - t).
        Divergence(
            "hellinger",
            f=lambda u: (torch.sqrt(u) - 1) ** 2,
            activation=lambda v: 1 - torch.exp(-v),
            conjugate=lambda t: t / (1 - t),
            conjugate_of_activation=lambda v: torch.expm1(v),
        ),
        # Jensen-Shannon (x2, see above): g_f = log 2 - log(1 + exp(-v)); f*(t) = -log(2 - exp(t)).
        Divergence(
            "jensen_shannon",
            f=lambda u: u * torch.log(u) - (u + 1) * torch.log((1 + u) / 2),
            activation=lambda v: LOG2 - F.softplus(-v),
            conjugate=lambda t: -torch.log(2 - torch.exp(t)),
            conjugate_of_activation=lambda v: F.softplus(v) - LOG2,
        ),
        # GAN: f = u log u - (u + 1) log(u + 1); g_f = -log(1 + exp(-v)); f*(t) = -log(1 - exp(t)).
        Divergence(
            "gan",
            f=lambda u: u * torch.log(u) - (u + 1) * torch.log(u + 1),
            activation=lambda v: -F.softplus(-v),
            conjugate=lambda t: -torch.log(1 - torch.exp(t)),
            conjugate_of_activation=lambda v: F.softplus(v),
        ),
    ]
}


def divergence(name: str) -> Divergence:
    if name not in DIVERGENCES:
        raise UserError(f"objective.divergence must be one of {', '.join(DIVERGENCES)}, got {name!r}")
    return DIVERGENCES[name]


def variational_bound(real_t: torch.Tensor, fake_t: torch.Tensor, div: Divergence) -> torch.Tensor:
    """E_P[T] - E_Q[f*(T)] for critic values T already in dom f*."""
    return real_t.mean() - div.conjugate(fake_t).mean()


def fgan_discriminator_loss(real_v: torch.Tensor, fake_v: torch.Tensor, div: Divergence) -> torch.Tensor:
    """-(E_P[g_f(v(x))] - E_Q[f*(g_f(v(x)))]): D maximises the bound on D_f."""
    return div.conjugate_of_activation(fake_v).mean() - div.activation(real_v).mean()


def fgan_generator_loss_alternative(fake_v: torch.Tensor, div: Divergence) -> torch.Tensor:
    """-E_Q[g_f(v(G(z)))]: the paper's alternative update (Section 3.2), which
    for divergence=gan is the non-saturating -E[log D(G(z))]."""
    return -div.activation(fake_v).mean()


def fgan_generator_loss_saddle(fake_v: torch.Tensor, div: Divergence) -> torch.Tensor:
    """-E_Q[f*(g_f(v(G(z))))]: G minimises the bound itself (the saddle point)."""
    return -div.conjugate_of_activation(fake_v).mean()
